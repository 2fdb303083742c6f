"""cqlx.frozen: the equality, hash and repr cqlx's frozen dataclasses share, and the ``__init__``
a :func:`record` class compiles on first use, behave as the ones dataclasses would generate
(checked against a plain frozen dataclass of the same fields)."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from cqlx import ir
from cqlx.ast import Span
from cqlx.frozen import Frozen, record


@record
class Shared(Frozen):
    name: str
    values: tuple[int, ...] = ()
    where: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Generated:
    name: str
    values: tuple[int, ...] = ()
    where: int = field(default=0, compare=False, repr=False)


@record
class Empty(Frozen):
    pass


@pytest.mark.parametrize(("a", "b"), [
    (("x", (1, 2), 5), ("x", (1, 2), 9)),  # a field left out of comparison does not count
    (("x", (1,), 0), ("y", (1,), 0)),
    (("x", (), 0), ("x", (1,), 0)),
])
def test_equality_and_hash_are_the_generated_ones(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    assert (Shared(*a) == Shared(*b)) == (Generated(*a) == Generated(*b))
    assert Shared(*a) == Shared(*a) and hash(Shared(*a)) == hash(Shared(*a))
    if Shared(*a) == Shared(*b):
        assert hash(Shared(*a)) == hash(Shared(*b))
    assert repr(Shared(*a)).replace("Shared", "Generated") == repr(Generated(*a))


def test_other_classes_are_not_equal_and_instances_stay_frozen() -> None:
    assert Shared("x") != Generated("x") and Shared("x") != "x" and Empty() == Empty() and hash(Empty()) == hash(())
    with pytest.raises(dataclasses.FrozenInstanceError):
        Shared("x").name = "y"  # type: ignore[misc]
    assert {Shared("x", where=1), Shared("x", where=2)} == {Shared("x")}


def test_ir_nodes_compare_without_their_spans() -> None:
    a = ir.Eq("CommandLine", "x", span=Span(1, 1, 1, 5))
    b = ir.Eq("CommandLine", "x", span=Span(3, 2, 3, 9))
    assert a == b and hash(a) == hash(b) and repr(a) == "Eq(field='CommandLine', value='x', ignore_case=False)"
    assert dataclasses.replace(a, value="y") != a


@record
class Defaults(Frozen):
    name: str
    items: list[int] = field(default_factory=list)
    level: int = 3


@dataclass(frozen=True)
class DefaultsGenerated:
    name: str
    items: list[int] = field(default_factory=list)
    level: int = 3


@record
class Child(Defaults):
    extra: str = "e"


@pytest.mark.parametrize(("args", "kwargs"), [
    (("n",), {}),
    (("n", [1]), {"level": 5}),
    ((), {"name": "n", "level": 0}),
])
def test_a_records_init_takes_what_a_frozen_dataclasss_takes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    made, generated = Defaults(*args, **kwargs), DefaultsGenerated(*args, **kwargs)
    assert (made.name, made.items, made.level) == (generated.name, generated.items, generated.level)
    assert Defaults("a").items is not Defaults("a").items  # a fresh default per instance


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), (("n", [], 1, 2), {}), (("n",), {"nope": 1}),
                                              (("n",), {"name": "m"})])
def test_a_records_init_refuses_what_a_frozen_dataclasss_refuses(args: tuple[Any, ...],
                                                                 kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        DefaultsGenerated(*args, **kwargs)
    with pytest.raises(TypeError):
        Defaults(*args, **kwargs)


def test_a_subclass_compiles_its_own_init() -> None:
    assert Defaults("a").level == 3  # the base's __init__ compiled first
    child = Child("c", [1], 2, "x")
    assert (child.name, child.items, child.level, child.extra) == ("c", [1], 2, "x")
    assert Child.__init__ is not Defaults.__init__
    assert [f.name for f in dataclasses.fields(Child)] == ["name", "items", "level", "extra"]


def test_records_stay_frozen_copy_and_pickle() -> None:
    made = Child("c")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.level = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del made.level
    assert pickle.loads(pickle.dumps(made)) == made
    assert dataclasses.replace(made, extra="y").extra == "y" and made.extra == "e"


def test_a_record_derives_from_frozen() -> None:
    with pytest.raises(TypeError, match="derives from Frozen"):
        @record
        class Loose:
            name: str
