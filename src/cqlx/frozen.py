"""cqlx's frozen dataclasses: equality, hashing, ``repr`` and immutability written once, and each
``__init__`` compiled the first time its class is instantiated.

On Python 3.11 a frozen dataclass gets its methods compiled from generated source with ``exec()``
as its class is created: about 0.7 ms a class, for ~115 classes loaded on every command, most of
which a given run never instantiates (issue 7: a cold ``cqlx convert`` is dominated by this).
Classes declared with :func:`record` instead are plain (non-frozen, ``init=False``) dataclasses,
which costs no ``exec()``, and inherit from :class:`Frozen`:

- ``__eq__``/``__hash__``/``__repr__`` as the generated ones behave: equal when of the same class
  with equal compared fields (``field(compare=False)`` left out, as the span of an IR node), hashed
  on those fields, shown as ``Name(field=value, ...)`` without the ``repr=False`` fields;
- ``__setattr__``/``__delattr__`` raise :class:`dataclasses.FrozenInstanceError`, as a frozen
  dataclass's do;
- ``__init__`` is the one a frozen dataclass would get (fields in order, defaults, default
  factories, each set with ``object.__setattr__``), compiled on first use and put on the class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError, dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")

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
    """The base of a :func:`record` class (or of a dataclass declared ``frozen=True, eq=False,
    repr=False``)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

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


@dataclass_transform(eq_default=False, frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """Declare a frozen dataclass (the class must derive from :class:`Frozen`): fields,
    ``dataclasses.fields()``, ``replace()`` and ``field(...)`` options as usual; its
    ``__init__`` is compiled when the class is first instantiated."""
    if not issubclass(cls, Frozen):
        raise TypeError(f"{cls.__qualname__}: a record derives from Frozen")
    made = dataclass(init=False, eq=False, repr=False)(cls)
    type.__setattr__(made, "__init__", _first_init)
    return made


def _first_init(self: Frozen, *args: Any, **kwargs: Any) -> None:
    """Every record class's ``__init__`` until its first instance: compile the real one, put it
    on the class (each record class carries its own, so a subclass never runs its base's)."""
    cls = type(self)
    init = _compile_init(cls)
    type.__setattr__(cls, "__init__", init)
    init(self, *args, **kwargs)


def _compile_init(cls: type) -> Callable[..., None]:
    # Field names are Python identifiers (dataclasses requires it); defaults and factories go in
    # through the namespace, never as text.
    namespace: dict[str, Any] = {"__cqlx_set__": object.__setattr__, "__cqlx_missing__": MISSING}
    params: list[str] = []
    body: list[str] = []
    for spec in fields(cls):
        name = spec.name
        if spec.default is not MISSING:
            namespace[f"__cqlx_default_{name}__"] = spec.default
            params.append(f"{name}=__cqlx_default_{name}__")
        elif spec.default_factory is not MISSING:
            namespace[f"__cqlx_factory_{name}__"] = spec.default_factory
            params.append(f"{name}=__cqlx_missing__")
            body.append(f"if {name} is __cqlx_missing__: {name} = __cqlx_factory_{name}__()")
        else:
            params.append(name)
        body.append(f"__cqlx_set__(self, {name!r}, {name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    exec(compile(source, f"<cqlx record {cls.__qualname__}>", "exec"), namespace)
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init
