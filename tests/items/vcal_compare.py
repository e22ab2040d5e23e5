"""Comparing two iCalendar items by meaning, for the vCalendar round-trip tests.

Independent of the converter under test: values are read with the icalendar
library (times as instants, text unescaped, rules expanded with dateutil), so
a converter bug cannot hide behind its own reading of its own output.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
from dateutil import rrule as du

from calsync.items import Item

Fact = tuple[Any, ...]

# what a VALARM keeps through vCalendar (the rest of an alarm is a documented loss)
ALARM_FACTS = ("ACTION", "TRIGGER", "DURATION", "REPEAT", "DESCRIPTION", "ATTACH", "ATTENDEE")
SKIP = frozenset({"BEGIN", "END"})


def instant(value: Any) -> Fact:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return ("utc", value.astimezone(UTC).replace(tzinfo=None).isoformat())
        return ("floating", value.isoformat())
    if isinstance(value, date):
        return ("date", value.isoformat())
    if isinstance(value, timedelta):
        return ("duration", value.total_seconds())
    return ("other", str(value))


def _params(value: Any, drop: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    params = getattr(value, "params", {}) or {}
    skip = {"TZID", "VALUE", "ENCODING", "CHARSET", *drop}
    return tuple(
        sorted(
            (k.upper(), str(v))
            for k, v in params.items()
            if k.upper() not in skip and not k.upper().startswith("X-CALSYNC")
        )
    )


def _start(comp: icalendar.cal.Component) -> datetime | date | None:
    prop = comp.get("DTSTART")
    if isinstance(prop, list):
        prop = prop[0]
    if prop is None:
        return None
    if str(prop.params.get("VALUE", "")).upper() == "DATE" and isinstance(prop.dt, datetime):
        return prop.dt.date()
    return prop.dt


def _occurrences(recur: Any, start: datetime | date, limit: int = 40) -> Fact:
    begin = start if isinstance(start, datetime) else datetime.combine(start, time())
    parts = dict(recur)
    until = parts.pop("UNTIL", None)
    text = icalendar.vRecur(parts).to_ical().decode()
    rule = du.rrulestr(text, dtstart=begin)
    if until:
        end = until[0]
        if not isinstance(end, datetime):
            end = datetime.combine(end, time(23, 59, 59))
        if begin.tzinfo is not None and end.tzinfo is None:
            end = end.replace(tzinfo=begin.tzinfo)
        elif begin.tzinfo is None and end.tzinfo is not None:
            end = end.replace(tzinfo=None)
        rule = rule.replace(until=end)
    out = []
    for n, occurrence in enumerate(rule):
        if n >= limit:
            break
        out.append(instant(occurrence))
    return tuple(out)


def _value_facts(name: str, value: Any, comp: icalendar.cal.Component) -> list[Fact]:
    try:
        return _decoded_facts(name, value, comp)
    except Exception:  # a property the icalendar library cannot read: compare its text
        return [(name, "unreadable", value.to_ical().decode())]


def _decoded_facts(name: str, value: Any, comp: icalendar.cal.Component) -> list[Fact]:
    if name in ("RRULE", "EXRULE"):
        start = _start(comp)
        try:
            if start is not None:
                return [(name, _occurrences(value, start))]
        except (ValueError, TypeError, KeyError):
            pass
        return [(name, value.to_ical().decode())]
    if name in ("EXDATE", "RDATE"):
        return [(name, instant(d.dt)) for d in value.dts]
    try:
        has_dt = hasattr(value, "dt")
    except Exception:  # icalendar raises on a property it cannot read (an ADR of 2 fields)
        has_dt = False
    if has_dt:
        dt = value.dt
        if str(getattr(value, "params", {}).get("VALUE", "")).upper() == "DATE" and isinstance(
            dt, datetime
        ):
            dt = dt.date()  # a DATE with a TZID: still a date
        return [(name, instant(dt), _params(value))]
    if name in ("CATEGORIES", "RESOURCES") and hasattr(value, "cats"):
        return [(name, tuple(str(c) for c in value.cats), _params(value))]
    if isinstance(value, icalendar.vCalAddress):
        address = str(value)
        if address.lower().startswith("mailto:"):
            address = "mailto:" + address[7:].lower()
        return [(name, address, _params(value))]
    if isinstance(value, icalendar.vText):
        return [(name, str(value).replace("\r\n", "\n"), _params(value, ("ALTREP",)))]
    try:
        text = value.to_ical().decode()
    except AttributeError:
        text = str(value)
    return [(name, text, _params(value))]


def component_facts(comp: icalendar.cal.Component) -> set[Fact]:
    facts: set[Fact] = set()
    end_name = "DTEND" if comp.name == "VEVENT" else "DUE"
    made_up = comp.get("X-CALSYNC-VCAL-DTSTAMP") is not None  # a DTSTAMP the reader made up
    for name, value in comp.property_items(recursive=False, sorted=False):
        if name in SKIP or name.startswith("X-CALSYNC") or (name == "DTSTAMP" and made_up):
            continue
        if name == "DURATION" and comp.get(end_name) is None and comp.get("DTSTART") is not None:
            start = comp["DTSTART"].dt
            facts.add((end_name, instant(start + value.dt), ()))
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            facts.update(_value_facts(name, v, comp))
    if comp.name == "VEVENT" and comp.get("DTEND") is None and comp.get("DURATION") is None:
        start = _start(comp)
        if start is not None and not isinstance(start, datetime):
            facts.add(("DTEND", instant(start + timedelta(days=1)), ()))
    for alarm in comp.walk("VALARM"):
        facts.add(("VALARM", alarm_facts(alarm, comp)))
    return facts


def alarm_facts(alarm: icalendar.cal.Component, comp: icalendar.cal.Component) -> Fact:
    out: list[Fact] = []
    action = str(alarm.get("ACTION", "")).upper()
    for name in ALARM_FACTS:
        value = alarm.get(name)
        if value is None:
            continue
        if name == "TRIGGER":
            out.append((name, _trigger_offset(value, alarm, comp)))
        elif name == "ATTENDEE":
            first = value[0] if isinstance(value, list) else value
            out.append((name, str(first).lower()))
        elif name == "DESCRIPTION" and action not in ("DISPLAY", "EMAIL"):
            continue
        elif name == "ATTACH":
            first = value[0] if isinstance(value, list) else value
            out.append(
                (name, first.to_ical().decode() if hasattr(first, "to_ical") else str(first))
            )
        else:
            out.append(_value_facts(name, value, alarm)[0][:2])
    return tuple(sorted(out))


def _trigger_offset(
    value: Any, alarm: icalendar.cal.Component, comp: icalendar.cal.Component
) -> Fact:
    """When the alarm fires (for the first instance), whichever way it is written."""
    if not isinstance(value.dt, timedelta):
        return _moment(value.dt)
    related = str(value.params.get("RELATED", "START")).upper()
    end_name = "DTEND" if comp.name == "VEVENT" else "DUE"
    anchor = comp.get(end_name) if related == "END" else comp.get("DTSTART")
    if anchor is None and comp.name == "VTODO":
        anchor = comp.get("DUE")  # relative to a missing DTSTART: read as its due time
    if anchor is None and related == "END" and comp.get("DTSTART") is not None:
        start = comp["DTSTART"].dt
        duration = comp.get("DURATION")
        anchor_dt = start + (duration.dt if duration is not None else timedelta(0))
    elif anchor is None:
        return ("relative", related, value.dt.total_seconds())
    else:
        anchor_dt = anchor.dt
        if str(anchor.params.get("VALUE", "")).upper() == "DATE" and isinstance(
            anchor_dt, datetime
        ):
            anchor_dt = anchor_dt.date()
    if not isinstance(anchor_dt, datetime):
        anchor_dt = datetime.combine(anchor_dt, time())
    return _moment(anchor_dt + value.dt)


def _moment(value: datetime) -> Fact:
    if value.tzinfo is not None:
        return ("at", value.astimezone(UTC).replace(tzinfo=None).isoformat())
    return ("at", value.isoformat())


def normalize_relative_end(facts: set[Fact]) -> set[Fact]:
    return facts


def item_facts(item: Item) -> dict[Fact, set[Fact]]:
    cal = icalendar.Calendar.from_ical(item.text)
    out: dict[Fact, set[Fact]] = {}
    for comp in cal.subcomponents:
        if comp.name not in ("VEVENT", "VTODO", "VJOURNAL"):
            continue
        rid = comp.get("RECURRENCE-ID")
        key = instant(rid.dt) if rid is not None else ("master",)
        out[key] = component_facts(comp)
    return out


def fact_differences(before: Item, after: Item) -> list[tuple[Fact, str, Fact]]:
    """(component key, "lost"/"added", fact) for each difference in meaning."""
    a, b = item_facts(before), item_facts(after)
    out: list[tuple[Fact, str, Fact]] = []
    for key in sorted(set(a) | set(b), key=str):
        if key not in b:
            out.append((key, "lost", ("component",)))
            continue
        if key not in a:
            out.append((key, "added", ("component",)))
            continue
        out += [(key, "lost", fact) for fact in sorted(a[key] - b[key], key=str)]
        had_stamp = any(f[0] == "DTSTAMP" for f in a[key])
        for fact in sorted(b[key] - a[key], key=str):
            if fact[0] == "DTSTAMP" and not had_stamp:
                continue  # required by RFC 5545: added where a writer left it out
            out.append((key, "added", fact))
    return out


def differences(before: Item, after: Item) -> list[str]:
    """What differs in meaning between two items, as text (empty: nothing)."""
    return [f"{key}: {verb} {fact}" for key, verb, fact in fact_differences(before, after)]
