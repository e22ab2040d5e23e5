"""Nothing lost through a phone: a device's edit applied onto the full item.

An ActiveSync Change carries the whole appointment or task as the device now
has it, in a format that cannot say COMMENT, X- properties, RDATE, an exact
TZID, an alarm's extras, a rule EAS has no pattern for...  Read alone, every
edit would delete those.  ``merge_device_edit`` instead compares the device's
version with what we sent it (``before_sent``: the appointment or task the
server last sent, or last accepted, for that ServerId) and applies only what
the device changed onto the full item, with the same three-way machinery as
the vCalendar device mirror (``items.devicecopy``): both the sent and the
edited versions go through the same reader (``appointment_to_item`` /
``task_to_item``), so what the format normalizes is no edit; overrides are
paired by the occurrence they stand for, not by how their RECURRENCE-ID is
spelled.

Rules of what "changed" means on the device side (before the merge):
- an element the device did not send is deleted by its edit, unless it is
  ghosted (MS-ASCMD 2.2.3.179: the client listed it as supported and omitted
  it): then it is as sent;
- a body the device marked truncated is as sent (we never store a cut body);
- a Timezone blob that differs while the start, end and recurrence are the
  instants we sent is no edit (a device re-encoding the event's zone in its
  own must not replace the exact zone);
- an UID the device omits is the item's.
A time the device did change is written with the item's own TZID when the
device's zone has the same rules (a device knows a zone only by its rules);
unused VTIMEZONEs (a zone only the device's reading used) are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from calsync.eas.calendar import appointment_to_item, occurrence_key
from calsync.eas.model import Appointment, Task, element_of
from calsync.eas.props import MappingError, Options, vtimezone_of
from calsync.eas.tasks import task_to_item
from calsync.eas.timezone import blob_for_zone
from calsync.items.devicecopy import merge_device_copy
from calsync.items.item import Item
from calsync.items.lines import Component
from calsync.items.vcal.times import TimeError, parse_ical
from calsync.items.vcal.zones import resolve

D = TypeVar("D", Appointment, Task)


def merge_device_edit(
    full: Item,
    before_sent: D,
    edited: D,
    opts: Options,
    *,
    ghosted: Iterable[str] = (),
) -> Item:
    """``full`` with the device's changes (``edited`` against ``before_sent``)
    applied; ``ghosted``: element names (or attributes) the device omits on
    purpose."""
    if type(before_sent) is not type(edited):
        raise MappingError("the device sent a different kind of item than it was sent")
    meant = _as_meant(before_sent, edited, ghosted)
    seen, theirs = _read(full, before_sent, opts), _read(full, meant, opts)
    base, device = seen.tree.copy(), theirs.tree.copy()
    spelling = _our_spelling(full, [base, device], opts)
    for cal in (base, device):
        _respell(cal, spelling)
    merged = merge_device_copy(
        full, base, device, occurrence=lambda comp, cal: occurrence_key(comp, cal, opts)
    )
    if merged is None:
        return theirs
    return Item.from_tree(_without_unused_zones(merged.tree))


def _read(full: Item, data: Appointment | Task, opts: Options) -> Item:
    if isinstance(data, Appointment):
        return appointment_to_item(data, opts, uid=full.uid)
    return task_to_item(data, opts, uid=full.uid, stamp=_stamp(full))


def _stamp(item: Item) -> datetime | None:
    """The item's DTSTAMP (tasks carry none on the wire: no made-up change)."""
    master = item.master()
    value = master.value("DTSTAMP") if master is not None else None
    if not value:
        return None
    try:
        parsed = parse_ical(value)
    except TimeError:
        return None
    return parsed if isinstance(parsed, datetime) and parsed.tzinfo is not None else None


def _as_meant(before: D, edited: D, ghosted: Iterable[str]) -> D:
    """What the device's data means as an edit (see the module docstring)."""
    kept = {g.lower() for g in ghosted}
    changes: dict[str, Any] = {}
    for f in fields(edited):
        if getattr(edited, f.name) is None and (
            f.name.lower() in kept or element_of(f.name).lower() in kept
        ):
            changes[f.name] = getattr(before, f.name)
    body = getattr(edited, "body", None)
    if body is not None and body.truncated:
        changes["body"] = getattr(before, "body", None)
    if isinstance(edited, Appointment) and isinstance(before, Appointment):
        same_times = (
            _utc(edited.start_time) == _utc(before.start_time)
            and _utc(edited.end_time) == _utc(before.end_time)
            and edited.recurrence == before.recurrence
        )
        if same_times and edited.timezone != before.timezone:
            changes["timezone"] = before.timezone
    return replace(edited, **changes) if changes else edited


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _tzids(cal: Component) -> set[str]:
    return {
        tzid
        for comp in cal.subs
        if comp.name != "VTIMEZONE"
        for sub in comp.walk()
        for p in sub.props
        if (tzid := p.param("TZID"))
    }


def _rules(cal: Component, tzid: str, opts: Options) -> object:
    tz = resolve(tzid, vtimezone_of(cal, tzid))
    return blob_for_zone(tz, opts.reference_year).rule_key() if tz is not None else None


def _our_spelling(full: Item, cals: list[Component], opts: Options) -> dict[str, str]:
    """TZIDs of the device's reading -> ours, where both zones have the same
    rules: a time the device changed is written in the item's own zone."""
    ours = {tzid: _rules(full.tree, tzid, opts) for tzid in sorted(_tzids(full.tree))}
    out: dict[str, str] = {}
    for cal in cals:
        for tzid in _tzids(cal) - set(ours) - set(out):
            rules = _rules(cal, tzid, opts)
            match = next((t for t, r in ours.items() if r is not None and r == rules), None)
            if match is not None:
                out[tzid] = match
    return out


def _respell(cal: Component, spelling: dict[str, str]) -> None:
    if not spelling:
        return
    cal.subs = [
        c for c in cal.subs if c.name != "VTIMEZONE" or (c.value("TZID") or "") not in spelling
    ]
    for comp in cal.subs:
        for sub in comp.walk():
            sub.props = [
                p.with_param("TZID", spelling[tzid]) if (tzid := p.param("TZID")) in spelling else p
                for p in sub.props
            ]


def _without_unused_zones(cal: Component) -> Component:
    used = _tzids(cal)
    out = cal.copy()
    out.subs = [
        c for c in out.subs if c.name != "VTIMEZONE" or (c.value("TZID") or "").strip() in used
    ]
    return out
