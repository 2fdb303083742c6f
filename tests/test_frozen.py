"""cqlx.frozen.Frozen: the equality, hash and repr cqlx's frozen dataclasses share behave as the
ones dataclasses would generate (checked against a plain frozen dataclass of the same fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from cqlx import ir
from cqlx.ast import Span
from cqlx.frozen import Frozen


@dataclass(frozen=True, eq=False, repr=False)
class Shared(Frozen):
    name: str
    values: tuple[int, ...] = ()
    where: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Generated:
    name: str
    values: tuple[int, ...] = ()
    where: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, eq=False, repr=False)
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
