"""Rule triggers: one small class per trigger, found by name in a registry; each turns into one SQL predicate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, NamedTuple

import duckdb

from compliance.errors import InputError
from compliance.registry import registrar

# The run's clock reaches trigger SQL as a session variable, set through a query parameter: never pasted as text.
CLOCK_VARIABLE = "retention_as_of"

TRIGGERS: dict[str, type[Trigger]] = {}
register = registrar(TRIGGERS)


class Trigger:
    """A condition over contacts (alias `c`); `value` is what the rule or command line gave."""

    name: ClassVar[str]

    def __init__(self, value: Any):
        self.value = self.validate(value)

    def validate(self, value: Any) -> Any:
        return value

    def sql(self) -> str:
        """The condition as SQL over contacts `c`, its values as `?` (parameters()); the run's clock is
        `getvariable('retention_as_of')`."""
        raise NotImplementedError

    def parameters(self) -> list[Any]:
        """The values of the `?` in sql(), in order: a rule's values are input and never pasted into SQL."""
        return [self.value]


@register("tags_any")
class TagsAny(Trigger):
    """The contact carries at least one of the tags (case-insensitive)."""

    def validate(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v.strip()
                                                                          for v in value):
            raise ValueError("tags_any takes a non-empty list of tag names")
        return tuple(v.strip().lower() for v in value)

    def sql(self) -> str:
        return "list_has_any(list_transform(coalesce(c.tags, []), lambda t: lower(t)), CAST(? AS VARCHAR[]))"

    def parameters(self) -> list[Any]:
        return [list(self.value)]


@register("inactive_days")
class InactiveDays(Trigger):
    """No activity for at least N days before the run's clock (never active: counted from creation)."""

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("inactive_days takes a whole number of days, 0 or more")
        return value

    def sql(self) -> str:
        return (f"coalesce(c.last_activity_at, c.created_at) <= "
                f"getvariable('{CLOCK_VARIABLE}') - to_days(CAST(? AS INTEGER))")


@register("dnd")
class DoNotDisturb(Trigger):
    """The contact's do-not-disturb flag equals the value."""

    def validate(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("dnd takes true or false")
        return value

    def sql(self) -> str:
        return "coalesce(c.dnd, false) = CAST(? AS BOOLEAN)"


@register("location")
class Location(Trigger):
    """The contact belongs to the location (a sub-account)."""

    def validate(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("location takes a location id")
        return value.strip()

    def sql(self) -> str:
        return "c.location_id = CAST(? AS VARCHAR)"


def build_triggers(spec: dict[str, Any]) -> list[Trigger]:
    """Instantiate the triggers a rule or a command names.

    Args:
        spec: trigger name -> value, e.g. {"tags_any": ["Unsubscribed"], "inactive_days": 365}.

    Returns:
        The triggers, all of which must hold.

    Raises:
        ValueError: naming an unknown trigger with the valid names, or a bad value.
    """
    triggers = []
    for name, value in spec.items():
        if name not in TRIGGERS:
            raise ValueError(f"unknown trigger '{name}' (valid: {', '.join(sorted(TRIGGERS))})")
        triggers.append(TRIGGERS[name](value))
    return triggers


class Condition(NamedTuple):
    """A predicate over contacts `c` and the values of its `?` placeholders, in order."""

    sql: str
    parameters: list[Any]


def predicate(spec: dict[str, Any]) -> Condition:
    """One SQL predicate over contacts `c` for all of the triggers (TRUE for none: a select-all).

    Run it on a connection whose clock was set with `bind_clock`, with its parameters after those of the statement
    text before it.
    """
    try:
        triggers = build_triggers(spec)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return Condition(" AND ".join(f"({t.sql()})" for t in triggers) or "TRUE",
                     [value for t in triggers for value in t.parameters()])


def bind_clock(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Set the run's clock that trigger predicates read on this connection."""
    con.execute(f"SET VARIABLE {CLOCK_VARIABLE} = CAST(? AS TIMESTAMPTZ)", [as_of])

