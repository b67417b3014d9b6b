"""What an invariant is: one registered class carrying its name, meaning, DuckDB reduction, expectation and messages.

The registry keeps registration order, which is the order of every summary, check list and report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import duckdb

from compliance.settings import Settings
from compliance.store.keys import KeyedHasher

MAX_SAMPLES = 10
_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One row of the frame GX validates; samples and detail stay outside it so Data Docs hold no contact ids.

    `observed`/`expected` and `age_days` are what the expectations read; `weight` is how many contacts or rows
    the row stands for when it fails.
    """

    invariant: str
    check: str
    subject: str
    observed: int = 0
    expected: int = 0
    age_days: float = float("nan")
    weight: int = 1
    samples: tuple[str, ...] = ()
    detail: str = ""


class Run:
    """One check of the store: the connection, the keyed hasher, the settings and the clock, shared by invariants.

    Reductions that several invariants read are computed once per run through `once`.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, hasher: KeyedHasher, settings: Settings, as_of: datetime):
        self.con = con
        self.hasher = hasher
        self.settings = settings
        self.as_of_us = _epoch_us(as_of)
        self.window_us = settings.restore_window_days * _US_PER_DAY
        self._once: dict[Callable[..., Any], Any] = {}

    def once(self, reduction: Callable[[Run], T]) -> T:
        """The value of `reduction(self)`, computed on the first call of this run only."""
        if reduction not in self._once:
            self._once[reduction] = reduction(self)
        return self._once[reduction]

    def words(self) -> dict[str, int]:
        """The settings a pass or fail message may name: {window} and {retention}, in days."""
        return {"window": self.settings.restore_window_days, "retention": self.settings.backup_retention_days}


class Invariant:
    """One invariant of PRODUCT.md section 4.

    A subclass gives `description`, `pass_message` and `fail_message` (templates; the fail message may use {n},
    {s}, {are}, {have}, {do} and {details}, both may use {window} and {retention}) and `measure`; it overrides
    `expectations` when "every row observed 0" is not what it asserts.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    pass_message: ClassVar[str]
    fail_message: ClassVar[str]

    def measure(self, run: Run) -> list[Row]:
        """The few rows GX judges: counts with at most MAX_SAMPLES ids each, or one row per bulk action or backup."""
        raise NotImplementedError

    def expectations(self, e: Any, settings: Settings, **common: Any) -> list[Any]:
        """The GX expectations over this invariant's rows; `e` is `great_expectations.expectations`.

        `common` holds the row condition selecting this invariant's rows, its meta and notes; pass it on.
        """
        return [e.ExpectColumnValuesToBeBetween(column="observed", min_value=0, max_value=0, **common)]

    def count_row(self, check: str, count: int, samples: Sequence[str] | None, detail: str = "") -> Row:
        """A row that holds when `count` is 0; each counted contact or row is one violation."""
        return Row(self.name, check, check, observed=int(count), expected=0, weight=int(count),
                   samples=tuple(samples or ()), detail=detail)


REGISTRY: dict[str, type[Invariant]] = {}


def register(name: str) -> Callable[[type[Invariant]], type[Invariant]]:
    """Class decorator adding an invariant to the registry under `name`, after those registered before it.

    Raises:
        ValueError: `name` is already registered (two invariants would share one check).
    """
    def add(cls: type[Invariant]) -> type[Invariant]:
        if name in REGISTRY:
            raise ValueError(f"invariant {name!r} is already registered ({REGISTRY[name].__name__})")
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return add


def descriptions() -> dict[str, str]:
    """Every registered invariant's name and description, in registry order (one asset check each).

    Returns:
        name -> description, read from the registry at the time of the call.
    """
    return {name: cls.description for name, cls in REGISTRY.items()}


def select(only: Sequence[str] | str | None = None) -> list[Invariant]:
    """The registered invariants to check, in registry order.

    Args:
        only: names to keep (a single name is accepted too); None for every registered invariant.

    Returns:
        One instance per invariant checked.

    Raises:
        ValueError: naming the first unknown invariant and the known ones.
    """
    if only is None:
        return [cls() for cls in REGISTRY.values()]
    if isinstance(only, str):
        only = [only]
    unknown = [name for name in only if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown invariant {unknown[0]!r} (known: {', '.join(REGISTRY)})")
    return [cls() for name, cls in REGISTRY.items() if name in only]


def _epoch_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)
