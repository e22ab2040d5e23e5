"""Item content between devices and calsync: formats, conversion, matching keys.

Devices send iCalendar 2.0 (``text/calendar``) or vCalendar 1.0
(``text/x-vcalendar``); some label vCalendar as ``text/calendar``, so the
payload decides.  calsync keeps iCalendar 2.0 everywhere; vCalendar goes
through ``calsync.items.vcal``.

``content_key`` is how a slow sync recognises an event a phone re-sends with a
different (or no) UID: component type + start instant + summary.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from calsync.items import Item, ItemError, limits, vcal

ICAL = "text/calendar"
VCAL = "text/x-vcalendar"


def formats() -> tuple[str, ...]:
    """Content types we receive and send (the first is what we prefer)."""
    return (ICAL, VCAL)


def is_vcal(data: bytes, content_type: str | None) -> bool:
    """Is this payload vCalendar 1.0 (whatever the type a device gave it)?"""
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    return ct == VCAL or vcal.is_vcal(data)


def reconcile(written: Item, device: Item) -> Item:
    """A device's vCalendar copy of an item we hold, as the full item.

    vCalendar cannot carry everything (COMMENT, exact time zones, some rules):
    a copy read back alone would look as if the device deleted those.  Merged
    three-way against what the device could see of ``written``, only the
    device's own edits remain (``calsync.items.vcal.reconcile``).
    """
    return vcal.reconcile(written, device)


def decode(data: bytes, content_type: str | None, *, source: str) -> Item:
    """The one item a device sent (ItemError naming ``source`` when unusable),
    checked as every device input is (``calsync.items.limits``)."""
    item = _decode(data, content_type, source=source)
    limits.check_input(item, source)
    return item


def _decode(data: bytes, content_type: str | None, *, source: str) -> Item:
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if ct not in ("", ICAL, VCAL, "text/x-calendar", "text/vcalendar"):
        raise ItemError(f"unsupported content type {content_type}", source=source)
    if not is_vcal(data, ct):
        return Item.from_bytes(data, source=source)  # one resource, one item
    items, errors = vcal.vcal_to_items(data, source=source)
    if errors:
        raise errors[0]
    if not items:
        raise ItemError("no VEVENT, VTODO or VJOURNAL in it", source=source)
    if len(items) > 1:
        raise ItemError(
            f"holds {len(items)} items ({', '.join(i.uid for i in items[:3])}); "
            "a SyncML item must hold one",
            source=source,
        )
    return items[0]


def encode(item: Item, content_type: str) -> bytes:
    """The item in the device's format."""
    if content_type == VCAL:
        # without the X-CALSYNC-ICAL-* companions: phones drop them anyway, and the
        # mirror keeps the full item to reconcile the phone's copy with
        return vcal.item_to_vcal(item, companions=False)
    return item.raw


# -- content keys for slow-sync matching -----------------------------------------------------

_SPACE = re.compile(r"\s+")
_ESCAPE = re.compile(r"\\([,;\\:])")


def _tz(name: str) -> dt.tzinfo | None:
    try:
        return zoneinfo.ZoneInfo(name.strip().strip('"'))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _instant(value: str, tzid: str | None, date_only: bool) -> str | None:
    """A start time as UTC text (dates and floating times stay as they are)."""
    value = value.strip()
    if date_only or len(value) == 8:
        return value[:8]
    try:
        local = dt.datetime.strptime(value.rstrip("Z")[:15], "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    if value.endswith("Z"):
        return local.strftime("%Y%m%dT%H%M%SZ")
    if tzid:
        zone = _tz(tzid)
        if zone is None:
            return None  # a custom VTIMEZONE: let the slow path resolve it
        return local.replace(tzinfo=zone).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return local.strftime("%Y%m%dT%H%M%S")


def _summary(text: str) -> str:
    return _SPACE.sub(" ", _ESCAPE.sub(r"\1", text)).strip().casefold()


def content_key(item: Item) -> tuple[str, str, str] | None:
    """(component, start instant in UTC, normalised summary), or None if unusable.

    Works on the light content-line tree; only a start in a custom (non-IANA)
    time zone needs the icalendar library.
    """
    try:
        master = item.master()
    except ItemError:
        return None
    if master is None:
        return None
    start = master.get("DTSTART") or master.get("DUE")
    summary = _summary(master.value("SUMMARY") or "")
    when: str | None = ""
    if start is not None:
        when = _instant(start.value, start.param("TZID"), start.param("VALUE") == "DATE")
        if when is None:
            when = _slow_instant(item, start.name)
    if not when and not summary:
        return None
    return master.name, when or "", summary


def _slow_instant(item: Item, prop: str) -> str:
    try:
        cal = item.to_icalendar()
    except ItemError:
        return ""
    for comp in cal.walk():
        if comp.name in ("VEVENT", "VTODO", "VJOURNAL") and comp.get("RECURRENCE-ID") is None:
            value = comp.get(prop)
            when = getattr(value, "dt", None)
            if isinstance(when, dt.datetime) and when.tzinfo is not None:
                return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            if isinstance(when, dt.datetime):
                return when.strftime("%Y%m%dT%H%M%S")
            if isinstance(when, dt.date):
                return when.strftime("%Y%m%d")
    return ""
