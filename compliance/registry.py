"""The one shape of this codebase's registries: a name -> class table filled by a `register(name)` class decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar


class Named(Protocol):
    """A registered class: the decorator sets its `name`."""

    name: ClassVar[str]


T = TypeVar("T", bound=type[Named])


def registrar(table: dict[str, T]) -> Callable[[str], Callable[[T], T]]:
    """A `register(name)` class decorator that files classes in `table` under their name (set as `cls.name`).

    Args:
        table: the registry, e.g. rule triggers or snapshot formats.

    Returns:
        The decorator factory.
    """
    def register(name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            cls.name = name
            table[name] = cls
            return cls
        return add
    return register
