"""Resolving a conflict (both sides changed one UID): pure, given the three versions.

Policies (the pair's ``conflict`` key):
- ``merge`` (default): property-level three-way merge against the last synced
  version; properties both sides changed differently fall back to
  ``merge_fallback`` (``newest`` unless the pair says ``a-wins``/``b-wins``);
- ``newest``: the newer version wins (see the clocks below);
- ``a-wins`` / ``b-wins``;
- ``keep-both``: the newer version wins, and the other is kept as a copy with
  a new UID and a SUMMARY that says so.

Which side is newer (``newest``, ``keep-both``, and ``merge_fallback =
newest``) is told by these clocks, in this order (``Clocks``):

1. the item's own: LAST-MODIFIED, then SEQUENCE, then DTSTAMP (of the
   newest component; in a merge, of the component in question); the first
   that differs decides;
2. the stores' own: when each store last changed the item
   (``Store.modified``: a file's mtime, CalDAV's ``getlastmodified``,
   Thunderbird's ``last_modified``, a device's session time), asked for only
   then, and deciding only when both stores tell and their times differ.  A
   time that is only one of the item's own stamps (``echoes``: DAViCal's
   ``getlastmodified`` is the item's LAST-MODIFIED or DTSTAMP) tells nothing;
3. when nothing tells, nothing is picked silently: ``newest`` keeps both, a's
   version under the UID and b's as a marked copy (as ``keep-both`` does); a
   merge keeps a's value of each property in question and b's whole version
   as such a copy.

``Resolution.clock`` says which clock decided ("LAST-MODIFIED", "SEQUENCE",
"DTSTAMP", "store mtime", "undecided: kept both"), for the conflict log.
The store's times are asked for through a callable, so that this module stays
pure (no store, no I/O of its own).

Whatever the policy, the engine saves every overwritten version to history
first, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from calsync.items import Item, ItemError
from calsync.items.lines import Component
from calsync.items.merge import Chooser, component_stamp, fixed_chooser, merge_calendars
from calsync.items.split import ITEM_COMPONENTS
from calsync.sync.policies import FALLBACKS, POLICIES

__all__ = [
    "FALLBACKS",
    "POLICIES",
    "UNDECIDED",
    "Clocks",
    "Resolution",
    "conflict_copy",
    "echoes",
    "newest_side",
    "resolve",
]

# the clocks, in the order they are asked (see the module docstring)
ITEM_CLOCKS: Final = ("LAST-MODIFIED", "SEQUENCE", "DTSTAMP")
STORE_CLOCK: Final = "store mtime"
UNDECIDED: Final = "undecided: kept both"

Stamp = tuple[str, int, str]  # (LAST-MODIFIED, SEQUENCE, DTSTAMP)
StoreTimes = Callable[[], tuple[float | None, float | None]]


class Clocks:
    """Tells which side is newer, and remembers which clock told it.

    ``store_times``: when each store last changed the item (a's, b's; None
    where a store cannot tell), asked for at most once, and only when the
    items' own clocks tie.
    """

    def __init__(self, store_times: StoreTimes | None = None) -> None:
        self._ask = store_times
        self._times: tuple[float | None, float | None] | None = None
        self.used: list[str] = []  # the clocks that decided, in order, each once
        self.undecided = False  # some decision had no clock to go by

    def newer(self, a: Stamp, b: Stamp) -> str | None:
        """Which side is newer by its stamp, then by its store's time ("a" or
        "b"); None when nothing tells."""
        first = next((i for i in range(len(ITEM_CLOCKS)) if a[i] != b[i]), None)
        if first is not None:  # tuples order by their first difference: that clock
            self._note(ITEM_CLOCKS[first])
            return "a" if a > b else "b"
        ta, tb = self.store_times()
        if ta is not None and tb is not None and ta != tb:
            self._note(STORE_CLOCK)
            return "a" if ta > tb else "b"
        self.undecided = True
        return None

    def store_times(self) -> tuple[float | None, float | None]:
        if self._times is None:
            self._times = self._ask() if self._ask is not None else (None, None)
        return self._times

    def _note(self, clock: str) -> None:
        if clock not in self.used:
            self.used.append(clock)

    def label(self) -> str | None:
        """What decided, for the conflict log; None if no clock was asked."""
        told = [*self.used, UNDECIDED] if self.undecided else self.used
        return ", ".join(told) or None

    def chooser(self) -> Chooser:
        """For a merge: the newer of two components (a when nothing tells)."""
        return lambda a, b: self.newer(component_stamp(a), component_stamp(b)) or "a"


@dataclass
class Resolution:
    result: Item
    outcome: str  # merged | newest | a-wins | b-wins | keep-both
    winner: str | None  # "a", "b", or None for a clean merge or when nothing told
    overlapping: list[str] = field(default_factory=list)
    copy: Item | None = None  # keep-both (or nothing told): the other version, new UID
    clock: str | None = None  # which clock decided (see the module docstring)


def echoes(item: Item, when: float) -> bool:
    """Whether a store's time for ``item`` is only one of the item's own stamps
    (LAST-MODIFIED, DTSTAMP), to the second: DAViCal answers ``getlastmodified``
    so.  It then tells nothing the items' own clocks did not."""
    import calendar

    for comp in item.components():
        for name in ("LAST-MODIFIED", "DTSTAMP"):
            value = (comp.value(name) or "").strip()
            if len(value) == 16 and value.endswith("Z"):
                try:
                    parsed = time.strptime(value, "%Y%m%dT%H%M%SZ")
                except ValueError:  # not a UTC date-time: not an echo of one
                    continue
                if calendar.timegm(parsed) == int(when):
                    return True
    return False


def newest_side(a: Item, b: Item, clocks: Clocks | None = None) -> str:
    """The newer item's side, "a" or "b" (a when nothing tells)."""
    return (clocks or Clocks()).newer(a.timestamps(), b.timestamps()) or "a"


def _chooser(fallback: str, clocks: Clocks) -> Chooser:
    if fallback == "a-wins":
        return fixed_chooser("a")
    if fallback == "b-wins":
        return fixed_chooser("b")
    return clocks.chooser()


def resolve(
    policy: str,
    base: Item | None,
    a: Item,
    b: Item,
    *,
    fallback: str = "newest",
    names: tuple[str, str] = ("a", "b"),
    clocks: Clocks | None = None,
) -> Resolution:
    clocks = clocks or Clocks()
    if policy == "a-wins":
        return Resolution(a, "a-wins", "a")
    if policy == "b-wins":
        return Resolution(b, "b-wins", "b")
    if policy in ("newest", "keep-both"):
        side = clocks.newer(a.timestamps(), b.timestamps())
        if side is None:  # nothing tells: keep both, a's under the UID
            return Resolution(a, policy, None, copy=conflict_copy(b, names[1]), clock=UNDECIDED)
        winner, loser = (a, b) if side == "a" else (b, a)
        copy = None
        if policy == "keep-both":
            copy = conflict_copy(loser, names[1] if side == "a" else names[0])
        return Resolution(winner, policy, side, copy=copy, clock=clocks.label())
    if policy != "merge":
        raise ValueError(f"unknown conflict policy {policy!r}")
    choose = _chooser(fallback, clocks)
    try:
        merged = merge_calendars(base.tree if base is not None else None, a.tree, b.tree, choose)
        result = Item.from_tree(merged.calendar)
    except ItemError:
        # cannot merge unparsable content: fall back to the whole-item policy
        return resolve(fallback, base, a, b, names=names, clocks=clocks)
    if merged.clean:
        return Resolution(result, "merged", None)
    clock = clocks.label()  # of the overlapping properties (not of the masters below)
    copy = conflict_copy(b, names[1]) if clocks.undecided else None
    side = choose(a.master(), b.master())
    return Resolution(
        result, f"merged, overlaps by {fallback}", side, merged.overlapping, copy, clock
    )


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
