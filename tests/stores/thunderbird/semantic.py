"""Comparing iCalendar items by meaning, the way Thunderbird's exports differ from input.

Order of properties and parameters, folding, quoting, VTIMEZONE definitions
and calendar-level properties do not matter; CATEGORIES are compared as a
set of names however they are split over lines; a TRIGGER's default
RELATED=START and ``VALUE=DURATION`` are dropped (Thunderbird does).
"""

from __future__ import annotations

from collections import Counter

from calsync.items import Item
from calsync.items.lines import Component, Prop, unquote
from calsync.stores.thunderbird.read import split_unescaped_commas

Props = Counter[str]


def _param_items(prop: Prop) -> tuple[str, ...]:
    out = []
    for key, value in prop.params:
        v = unquote(value) if value is not None else ""
        if prop.name == "TRIGGER" and (key, v.upper()) in (
            ("RELATED", "START"),
            ("VALUE", "DURATION"),
        ):
            continue
        out.append(f"{key}={v}")
    return tuple(sorted(out))


def _props(comp: Component, ignore: frozenset[str]) -> Props:
    out: Props = Counter()
    for prop in comp.props:
        if prop.name in ignore:
            continue
        if prop.name == "CATEGORIES":
            for name in split_unescaped_commas(prop.value):
                out[f"CATEGORIES:{name}"] += 1
            continue
        out[f"{prop.name};{';'.join(_param_items(prop))}:{prop.value.rstrip()}"] += 1
    for sub in comp.subs:
        out[f"{sub.name}:{sorted(_props(sub, ignore).items())}"] += 1
    return out


def components(item: Item, ignore: frozenset[str] = frozenset()) -> dict[str, Props]:
    """RECURRENCE-ID (or "") -> the component's properties, for comparison."""
    out: dict[str, Props] = {}
    for comp in item.components():
        rid = comp.get("RECURRENCE-ID")
        out[rid.value if rid is not None else ""] = _props(comp, ignore)
    return out
