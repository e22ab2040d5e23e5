"""vCalendar 1.0 <-> iCalendar 2.0, for handhelds and their PC suites.

- ``is_vcal(data)``: is this a vCalendar 1.0 stream?
- ``vcal_to_items(data, source=...)``: the stream's entries as iCalendar items;
  an entry that cannot be read becomes an ``ItemError`` naming the source and
  line, the others still convert.
- ``item_to_vcal(item)``: one item as a vCalendar 1.0 object.
- ``vcal_to_ical_bytes`` / ``ical_to_vcal_bytes``: whole streams (strict: the
  first error is raised); ``vcal_to_ical`` / ``ical_to_vcal`` return the
  errors instead, for tools that convert what they can.
- ``reconcile(written, device)``: a device's copy of an item we sent it, merged
  with that item, so what vCalendar cannot carry (and the device dropped) is
  not taken for a deletion; ``device_view(item)``: what a device can show of it.

Modules: ``lexer`` (bytes, encodings, charsets), ``times``, ``zones``
(TZ/DAYLIGHT <-> VTIMEZONE), ``rules`` (the recurrence grammar), ``mapping``
(property values), ``shadows`` (what one format cannot say, kept for the
round trip), ``to_ical``, ``to_vcal`` and ``reconcile``.  The README lists the limits.
"""

from __future__ import annotations

import re

from calsync.items.item import Item, ItemError, items_from_stream
from calsync.items.lines import Component, Prop
from calsync.items.vcal.reconcile import device_view, reconcile
from calsync.items.vcal.to_ical import convert_stream
from calsync.items.vcal.to_vcal import item_to_vcal

__all__ = [
    "device_view",
    "ical_to_vcal",
    "ical_to_vcal_bytes",
    "is_vcal",
    "item_to_vcal",
    "join_items",
    "reconcile",
    "vcal_to_ical",
    "vcal_to_ical_bytes",
    "vcal_to_items",
]

_VERSION = re.compile(rb"^VERSION[ \t]*(;[^:\r\n]*)?:[ \t]*([^\r\n]*)", re.I | re.M)
_VCAL_ONLY = re.compile(
    rb"^(?:AALARM|DALARM|PALARM|MALARM|DCREATED|TZ|DAYLIGHT)[ \t]*[;:]"
    rb"|^RRULE[ \t]*:[ \t]*(?:D|W|MP|MD|YM|YD)\d"
    rb"|^[A-Z-]+;(?:[^:\r\n]*;)?(?:ENCODING=)?QUOTED-PRINTABLE[;:]"
    rb"|^(?:DTSTART|DTEND|DUE|COMPLETED)[ \t]*:[ \t]*\d{4}-\d{2}-\d{2}",
    re.I | re.M,
)


def is_vcal(data: bytes) -> bool:
    """A vCalendar 1.0 stream: VERSION:1.0, or constructs only vCalendar has."""
    head = data[:65536]
    for params, value in _VERSION.findall(head):
        text = value.strip()
        if b"BASE64" in params.upper():
            import base64

            try:
                text = base64.b64decode(text).strip()
            except ValueError:
                continue
        if text.startswith(b"1."):
            return True
        if text.startswith(b"2.0"):
            return False
    return bool(_VCAL_ONLY.search(head))


def vcal_to_items(data: bytes, *, source: str | None = None) -> tuple[list[Item], list[ItemError]]:
    """Parse a vCalendar 1.0 stream into iCalendar items (see module docstring)."""
    return convert_stream(data, source or "vCalendar input")


def vcal_to_ical(data: bytes, *, source: str | None = None) -> tuple[bytes, list[ItemError]]:
    """A whole vCalendar stream as one iCalendar stream, and the entries that failed."""
    items, errors = vcal_to_items(data, source=source)
    return join_items(items), errors


def ical_to_vcal(data: bytes, *, source: str | None = None) -> tuple[bytes, list[ItemError]]:
    """A whole iCalendar stream as vCalendar objects, and the items that failed."""
    items, errors = items_from_stream(data, source=source)
    out: list[bytes] = []
    for item in items:
        try:
            out.append(item_to_vcal(item))
        except ItemError as e:
            e.source = e.source or source
            errors.append(e)
    return b"".join(out), errors


def vcal_to_ical_bytes(data: bytes) -> bytes:
    converted, errors = vcal_to_ical(data)
    if errors:
        raise errors[0]
    return converted


def ical_to_vcal_bytes(data: bytes) -> bytes:
    converted, errors = ical_to_vcal(data)
    if errors:
        raise errors[0]
    return converted


def join_items(items: list[Item]) -> bytes:
    """Items in one VCALENDAR; VTIMEZONEs of one TZID merged (their observances united)."""
    from calsync.items.item import PRODID

    cal = Component("VCALENDAR", [Prop("VERSION", (), "2.0"), Prop("PRODID", (), PRODID.decode())])
    timezones: dict[str, Component] = {}
    body: list[Component] = []
    for item in items:
        for tz in item.timezones():
            tzid = tz.value("TZID") or ""
            if tzid in timezones:
                _merge_vtimezone(timezones[tzid], tz)
            else:
                timezones[tzid] = tz.copy()
        body.extend(item.components())
    cal.subs.extend(timezones.values())
    cal.subs.extend(body)
    return cal.to_bytes()


def _merge_vtimezone(into: Component, other: Component) -> None:
    def onsets(comp: Component) -> dict[tuple[str, str, str, str], set[str]]:
        out: dict[tuple[str, str, str, str], set[str]] = {}
        for sub in comp.subs:
            key = (sub.name, sub.value("TZOFFSETFROM") or "", sub.value("TZOFFSETTO") or "",
                   sub.value("TZNAME") or "")  # fmt: skip
            found = out.setdefault(key, set())
            if sub.value("DTSTART"):
                found.add(sub.value("DTSTART") or "")
            for rdate in sub.all("RDATE"):
                found.update(v for v in rdate.value.split(",") if v)
        return out

    if any(sub.get("RRULE") is not None for sub in (*into.subs, *other.subs)):
        return  # rule-based definitions: keep the first
    merged = onsets(into)
    for key, starts in onsets(other).items():
        merged.setdefault(key, set()).update(starts)
    subs: list[Component] = []
    for (kind, offset_from, offset_to, name), starts in merged.items():
        ordered = sorted(starts)
        sub = Component(kind, [Prop("DTSTART", (), ordered[0])])
        if len(ordered) > 1:
            sub.props.append(Prop("RDATE", (), ",".join(ordered[1:])))
        sub.props += [Prop("TZOFFSETFROM", (), offset_from), Prop("TZOFFSETTO", (), offset_to)]
        if name:
            sub.props.append(Prop("TZNAME", (), name))
        subs.append(sub)
    into.subs = subs


__all__ = [
    "ical_to_vcal",
    "ical_to_vcal_bytes",
    "is_vcal",
    "item_to_vcal",
    "vcal_to_ical",
    "vcal_to_ical_bytes",
    "vcal_to_items",
]
