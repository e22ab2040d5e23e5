"""Resolving a conflict (both sides changed one UID): pure, given the three versions.

Policies (the pair's ``conflict`` key):
- ``merge`` (default): property-level three-way merge against the last synced
  version; properties both sides changed differently fall back to
  ``merge_fallback`` (``newest`` unless the pair says ``a-wins``/``b-wins``);
- ``newest``: the version with the newest LAST-MODIFIED, then SEQUENCE, then
  DTSTAMP wins (ties: a);
- ``a-wins`` / ``b-wins``;
- ``keep-both``: the newest wins, and the other is kept as a copy with a new
  UID and a SUMMARY that says so.

Whatever the policy, the engine saves every overwritten version to history
first, so nothing is lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from calsync.items import Item, ItemError
from calsync.items.lines import Component
from calsync.items.merge import Chooser, fixed_chooser, merge_calendars, newest_chooser
from calsync.items.split import ITEM_COMPONENTS
from calsync.sync.policies import FALLBACKS, POLICIES

__all__ = ["FALLBACKS", "POLICIES", "Resolution", "conflict_copy", "newest_side", "resolve"]


@dataclass
class Resolution:
    result: Item
    outcome: str  # merged | newest | a-wins | b-wins | keep-both
    winner: str | None  # "a", "b", or None for a clean merge
    overlapping: list[str] = field(default_factory=list)
    copy: Item | None = None  # keep-both: the losing version under a new UID


def newest_side(a: Item, b: Item) -> str:
    return "b" if b.timestamps() > a.timestamps() else "a"


def _chooser(fallback: str) -> Chooser:
    if fallback == "a-wins":
        return fixed_chooser("a")
    if fallback == "b-wins":
        return fixed_chooser("b")
    return newest_chooser()


def resolve(
    policy: str,
    base: Item | None,
    a: Item,
    b: Item,
    *,
    fallback: str = "newest",
    names: tuple[str, str] = ("a", "b"),
) -> Resolution:
    if policy == "a-wins":
        return Resolution(a, "a-wins", "a")
    if policy == "b-wins":
        return Resolution(b, "b-wins", "b")
    if policy == "newest":
        side = newest_side(a, b)
        return Resolution(a if side == "a" else b, "newest", side)
    if policy == "keep-both":
        side = newest_side(a, b)
        winner, loser = (a, b) if side == "a" else (b, a)
        loser_name = names[1] if side == "a" else names[0]
        return Resolution(winner, "keep-both", side, copy=conflict_copy(loser, loser_name))
    if policy != "merge":
        raise ValueError(f"unknown conflict policy {policy!r}")
    try:
        merged = merge_calendars(
            base.tree if base is not None else None, a.tree, b.tree, _chooser(fallback)
        )
        result = Item.from_tree(merged.calendar)
    except ItemError:
        # cannot merge unparsable content: fall back to the whole-item policy
        return resolve(fallback, base, a, b, names=names)
    if merged.clean:
        return Resolution(result, "merged", None)
    side = _chooser(fallback)(a.master(), b.master())
    return Resolution(result, f"merged, overlaps by {fallback}", side, merged.overlapping)


def conflict_copy(item: Item, store_name: str) -> Item:
    """The losing version as a new item: new UID, SUMMARY marked."""
    digest = hashlib.sha1(item.raw).hexdigest()[:8]
    new_uid = f"{item.uid}-conflict-{digest}"
    cal: Component = item.tree.copy()
    for comp in cal.subs:
        if comp.name in ITEM_COMPONENTS:
            comp.set("UID", new_uid)
            summary = comp.value("SUMMARY") or ""
            comp.set("SUMMARY", f"{summary} (conflict copy from {store_name})".strip())
    return Item.from_tree(cal)
