"""A device's copy of an item we sent it, merged with the item we hold.

Why: a device protocol carries less than iCalendar (vCalendar 1.0 lines, an
ActiveSync appointment).  Read alone, the copy a device gives back looks as if
the device deleted whatever its format cannot say: a COMMENT, X- properties,
an RDATE, the exact TZID, an alarm's extras.  Knowing what we sent, the copy
is merged three-way instead:

- base   = ``seen``: the item as the device could show it (our item put
  through the device format and read back by the same reader as the copy);
- ours   = ``written``: the full item we hold;
- theirs = ``device``: the device's copy, read by that reader.

The device's edits win (an overlap is only our own normalization against its
statement); what it never saw stays as it was.  Each protocol builds ``seen``
and ``device`` its own way (``items.vcal.reconcile``, ``eas.merge``); the merge
and the alignment below are shared.

Rules of the alignment (done before merging, on ``seen`` and ``device``):
- an override keeps the RECURRENCE-ID spelling we wrote (a TZID spelled
  otherwise would make it a second override of the same occurrence);
- an alarm the device still shows as it was shown is our full alarm (else the
  full alarm and its plain reading would both survive).
Components of ``written`` are paired with those of ``seen`` by ``occurrence``
(a key naming the occurrence whatever the spelling, e.g. its UTC instant);
without one, by position when both have as many components.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from calsync.items.item import Item, ItemError
from calsync.items.lines import Component, Prop
from calsync.items.merge import fixed_chooser, merge_calendars

# The occurrence a component stands for (None: the master), given its calendar.
Occurrence = Callable[[Component, Component], Hashable]


def merge_device_copy(
    written: Item,
    seen: Component,
    device: Component,
    *,
    occurrence: Occurrence | None = None,
) -> Item | None:
    """``device`` with what its format could not carry taken from ``written``,
    unless the device changed it; None if the result is not a valid item.

    ``seen`` and ``device`` are VCALENDAR trees the caller owns: they are
    aligned in place (pass copies)."""
    pairs = _pairs(written, seen, occurrence)
    if pairs is not None:
        _as_written(pairs, device)
    merged = merge_calendars(seen, written.tree, device, fixed_chooser("b"))
    try:
        return Item.from_tree(merged.calendar)
    except ItemError:
        return None


def _pairs(
    written: Item, seen: Component, occurrence: Occurrence | None
) -> list[tuple[Component, Component]] | None:
    ours = written.components()
    shown = [c for c in seen.subs if c.name != "VTIMEZONE"]
    if occurrence is None:
        return list(zip(ours, shown, strict=True)) if len(ours) == len(shown) else None
    by_key = {occurrence(c, seen): c for c in shown}
    pairs = []
    for comp in ours:
        match = by_key.get(occurrence(comp, written.tree))
        if match is not None and match.name == comp.name:
            pairs.append((comp, match))
    return pairs


def _canon(comp: Component) -> tuple[str, ...]:
    return (comp.name, *sorted(p.canonical() for p in comp.props))


def _as_written(pairs: list[tuple[Component, Component]], device: Component) -> None:
    """Where the device's copy still says what it was shown, say it as we wrote it
    (see the module docstring)."""
    for ours, shown in pairs:
        rid_ours, rid_shown = ours.get("RECURRENCE-ID"), shown.get("RECURRENCE-ID")
        targets = [shown] + [
            c
            for c in device.subs
            if c.name == shown.name
            and (c.get("RECURRENCE-ID") is None) == (rid_shown is None)
            and (rid_shown is None or _same_prop(c.get("RECURRENCE-ID"), rid_shown))
        ]
        if rid_ours is not None and rid_shown is not None:
            for comp in targets:
                comp.set("RECURRENCE-ID", rid_ours.value, rid_ours.params)
        full = [a for a in ours.children("VALARM") if _has_device_form(a)]
        plain = shown.children("VALARM")
        if len(full) != len(plain):
            continue
        by_plain = {_canon(p): f for p, f in zip(plain, full, strict=True)}
        for comp in targets:
            comp.subs = [by_plain.get(_canon(s), s) if s.name == "VALARM" else s for s in comp.subs]


def _same_prop(a: Prop | None, b: Prop) -> bool:
    return a is not None and a.canonical() == b.canonical()


def _has_device_form(alarm: Component) -> bool:
    action = (alarm.value("ACTION") or "").strip().upper()
    return action in ("AUDIO", "DISPLAY", "EMAIL", "PROCEDURE") and alarm.get("TRIGGER") is not None
