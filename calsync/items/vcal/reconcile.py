"""What a device's copy of an entry we wrote means, given the item we wrote.

A phone's PC suite, or a phone over SyncML, hands our entries back without the
X-CALSYNC-ICAL-* lines that carried what vCalendar 1.0 cannot say.  Read alone,
such a copy looks as if the device deleted those things: a COMMENT, a rule it
cannot express, an alarm's extras, the exact TZID.  Knowing the iCalendar item
we wrote, the copy is merged three-way instead: base = what the device could
show of our item, ours = the item, theirs = the device's copy.  The device's
edits win; what it never saw stays as it was.
"""

from __future__ import annotations

from calsync.items.item import Item, ItemError
from calsync.items.lines import Component, Prop
from calsync.items.merge import fixed_chooser, merge_calendars
from calsync.items.vcal.shadows import VCAL_PREFIX
from calsync.items.vcal.to_ical import convert_stream
from calsync.items.vcal.to_vcal import item_to_vcal

_MADE_UP = VCAL_PREFIX + "DTSTAMP"


def device_view(item: Item) -> Item | None:
    """The item as read back from a device that kept only vCalendar's own lines."""
    try:
        data = item_to_vcal(item, companions=False)
    except ItemError:
        return None
    items, errors = convert_stream(data, "device view")
    if errors or len(items) != 1:
        return None
    return items[0]


def reconcile(written: Item, device: Item) -> Item:
    """``device`` (a copy of ``written`` read from a device) with what vCalendar
    could not carry taken from ``written``, unless the device changed it."""
    if device.uid != written.uid:
        return device
    seen = device_view(written)
    if seen is None:
        return device
    base = _without_made_up_stamps(seen.tree)
    theirs = _without_made_up_stamps(device.tree)
    _as_written(written.components(), [c for c in base.subs if c.name != "VTIMEZONE"], theirs)
    merged = merge_calendars(
        base,
        written.tree,
        theirs,
        fixed_chooser("b"),  # both "changed" a property: ours is only a normalization
    )
    try:
        return Item.from_tree(merged.calendar)
    except ItemError:
        return device


def _without_made_up_stamps(cal: Component) -> Component:
    """DTSTAMPs the reader made up (a device has none): not an edit by anyone."""
    out = cal.copy()
    for comp in out.subs:
        if comp.get(_MADE_UP) is not None:
            comp.remove(_MADE_UP)
            comp.remove("DTSTAMP")
    return out


def _canon(comp: Component) -> tuple[str, ...]:
    return (comp.name, *sorted(p.canonical() for p in comp.props))


def _as_written(written: list[Component], seen: list[Component], theirs: Component) -> None:
    """Where the device's copy still says what it was shown, say it as we wrote it:
    an override's RECURRENCE-ID (a TZID spelled otherwise would make it another
    override) and each alarm (else the alarm and its plain reading both survive)."""
    if len(written) != len(seen):
        return
    for ours, shown in zip(written, seen, strict=True):
        rid_ours, rid_shown = ours.get("RECURRENCE-ID"), shown.get("RECURRENCE-ID")
        targets = [shown] + [
            c
            for c in theirs.subs
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
