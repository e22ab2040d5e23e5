"""Plain data classes behave like the dataclasses they replace on the start-up path."""

from __future__ import annotations

import pytest

from calsync.items.lines import Prop
from calsync.plain import Frozen, Plain
from calsync.stores import Listing
from calsync.sync.engine import SyncResult
from calsync.sync.status import Row


class Point(Plain):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        self.x = x
        self.y = y


class Pin(Frozen):
    __slots__ = ("x",)

    def __init__(self, x: int) -> None:
        object.__setattr__(self, "x", x)


def test_equal_by_fields_and_type_and_shown_with_them() -> None:
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(1, 3)
    assert Point(1) != Pin(1)
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    with pytest.raises(TypeError):
        hash(Point(1))  # mutable: not hashable, like a dataclass with ==
    with pytest.raises(AttributeError):
        Point(1).z = 3  # type: ignore[attr-defined]  # slots: no stray attributes


def test_frozen_ones_cannot_change_and_hash_by_fields() -> None:
    pin = Pin(4)
    with pytest.raises(AttributeError):
        pin.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del pin.x
    assert hash(pin) == hash(Pin(4)) and {pin, Pin(4)} == {pin}
    prop = Prop("SUMMARY", (), "x")
    assert prop == Prop("SUMMARY", (), "x") and len({prop, Prop("SUMMARY", (), "x")}) == 1


def test_defaults_are_fresh_for_each_object() -> None:
    one, two = Listing({}), Listing({})
    one.errors["x"] = "bad"
    assert two.errors == {} and SyncResult("p").errors is not SyncResult("p").errors
    row = Row("u", "a", "1", "", "b", "1", "")
    row.a_hash = "h"
    assert row == Row("u", "a", "1", "h", "b", "1", "")
