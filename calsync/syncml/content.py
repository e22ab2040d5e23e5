"""Item content between devices and calsync: formats, conversion, matching keys.

Devices send iCalendar 2.0 (``text/calendar``) or vCalendar 1.0
(``text/x-vcalendar``); some label vCalendar as ``text/calendar``, so the
payload decides.  calsync keeps iCalendar 2.0 everywhere; vCalendar goes
through ``calsync.items.vcal`` when that converter is installed.

``content_key`` is how a slow sync recognises an event a phone re-sends with a
different (or no) UID: component type + start instant + summary.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from typing import Any

from calsync.items import Item, ItemError, items_from_stream

ICAL = "text/calendar"
VCAL = "text/x-vcalendar"

_vcal: Any
try:  # the vCalendar 1.0 converter (issue #7)
    _vcal = importlib.import_module("calsync.items.vcal")
except ImportError:  # pragma: no cover - only while that converter is missing
    _vcal = None


def formats() -> tuple[str, ...]:
    """Content types this installation can receive and send."""
    return (ICAL, VCAL) if _vcal is not None else (ICAL,)


def _looks_vcal(data: bytes) -> bool:
    if _vcal is not None:
        return bool(_vcal.is_vcal(data))
    head = data[:400].upper()
    return b"VERSION:1.0" in head


def decode(data: bytes, content_type: str | None, *, source: str) -> Item:
    """The one item a device sent (ItemError naming ``source`` when unusable)."""
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if ct not in ("", ICAL, VCAL, "text/x-calendar", "text/vcalendar"):
        raise ItemError(f"unsupported content type {content_type}", source=source)
    if _looks_vcal(data) or ct == VCAL:
        if _vcal is None:
            raise ItemError("vCalendar 1.0 is not supported by this installation", source=source)
        items, errors = _vcal.vcal_to_items(data, source=source)
    else:
        items, errors = items_from_stream(data, source=source)
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
        if _vcal is None:
            raise ItemError("vCalendar 1.0 is not supported by this installation", id=item.uid)
        return bytes(_vcal.item_to_vcal(item))
    return item.raw


# -- content keys for slow-sync matching -----------------------------------------------------

_SPACE = re.compile(r"\s+")


def _instant(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return value.strftime("%Y%m%dT%H%M%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    return str(value)


def content_key(item: Item) -> tuple[str, str, str] | None:
    """(component, start instant in UTC, normalised summary), or None if unusable."""
    try:
        cal = item.to_icalendar()
    except ItemError:
        return None
    for comp in cal.walk():
        if comp.name not in ("VEVENT", "VTODO", "VJOURNAL"):
            continue
        if comp.get("RECURRENCE-ID") is not None:
            continue
        start = comp.get("DTSTART") or comp.get("DUE")
        when = ""
        if start is not None:
            try:
                when = _instant(start.dt)
            except (AttributeError, ValueError, OverflowError):
                when = str(start)
        summary = _SPACE.sub(" ", str(comp.get("SUMMARY", ""))).strip().casefold()
        if not when and not summary:
            return None
        return comp.name, when, summary
    return None
