"""Equality, hashing and ``repr`` for cqlx's frozen dataclasses, written once instead of per class.

On Python 3.11 a frozen dataclass gets six methods, each compiled from generated source with
``exec()`` as its class is created: about 0.45 ms a class. cqlx loads about a hundred of them on
every command, a third of a cold ``cqlx convert`` (issue 7). Its frozen dataclasses are declared
``@dataclass(frozen=True, eq=False, repr=False)`` and inherit these three methods instead, which
behave as the generated ones do: equal when of the same class with equal compared fields
(``field(compare=False)`` left out, as the span of an IR node), hashed on those fields, shown as
``Name(field=value, ...)`` without the ``repr=False`` fields. ``__init__`` and the frozen
``__setattr__`` stay dataclasses' own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

_KEYS: dict[type, Callable[[Any], Any]] = {}
_SHOWN: dict[type, tuple[str, ...]] = {}


def _key(cls: type) -> Callable[[Any], Any]:
    """What instances of ``cls`` are compared and hashed on: one C-level getter for the fields."""
    try:
        return _KEYS[cls]
    except KeyError:
        names = [f.name for f in fields(cls) if (f.compare if f.hash is None else f.hash)]
        getter: Callable[[Any], Any] = attrgetter(*names) if names else (lambda _: ())
        _KEYS[cls] = getter
        return getter


class Frozen:
    """The base of a frozen dataclass declared with ``eq=False, repr=False``."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = _key(self.__class__)
        return bool(key(self) == key(other))

    def __hash__(self) -> int:
        return hash(_key(self.__class__)(self))

    def __repr__(self) -> str:
        cls = self.__class__
        shown = _SHOWN.get(cls)
        if shown is None:
            shown = _SHOWN[cls] = tuple(f.name for f in fields(cls) if f.repr)  # type: ignore[arg-type]
        return f"{cls.__qualname__}({', '.join(f'{name}={getattr(self, name)!r}' for name in shown)})"
