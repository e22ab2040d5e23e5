"""Palm records <-> iCalendar items, and reading a Palm's edit of an item we wrote.

What maps (the README's "Palm" section has the full fidelity table):

- an appointment is a VEVENT: description -> SUMMARY, note -> DESCRIPTION,
  location (Calendar) -> LOCATION, the record's category -> CATEGORIES (its
  name in the AppInfo block; "Unfiled" is none), secret -> CLASS:PRIVATE;
  an untimed appointment is an all-day event (DTSTART/DTEND dates);
- times: a Palm keeps wall-clock time with no zone.  With the store's
  ``timezone`` option set, times are read as that zone (TZID + VTIMEZONE);
  without it they stay floating.  Items written to the Palm are moved to its
  wall clock: into ``timezone``, or this machine's zone when it is unset;
- the alarm (advance in minutes, hours or days) -> a VALARM with a negative
  TRIGGER; the first such alarm of an item goes back (rounded up to a unit
  the Palm has, at most 99 of them);
- repeats -> RRULE: daily, weekly on days (WKST from the start of week when
  the interval is above 1), monthly on a date, monthly on the n-th or last
  weekday, yearly; frequency -> INTERVAL, end date -> UNTIL; exceptions ->
  EXDATE.  Going back, COUNT becomes the last occurrence's date, a daily rule
  on weekdays a weekly one, a yearly rule on the n-th weekday of a month a
  monthly one every 12 months; an all-day event of several days a daily
  repeat;
- a to-do is a VTODO: description -> SUMMARY, note -> DESCRIPTION, due date
  -> DUE (a date), completed -> STATUS:COMPLETED (else NEEDS-ACTION),
  priority 1..5 -> PRIORITY 1, 3, 5, 7, 9 (back: 1-2, 3-4, 5, 6-7, 8-9; none
  is the Palm's 3).

What a Palm cannot hold (attendees, other rules, overrides of single
occurrences, more alarms, time zones, long text, ...) stays in the iCalendar
item calsync wrote (the store keeps it): ``reconcile`` merges a Palm's edit
onto that item three-way, with "what the Palm showed of it" as the base, so
the Palm's changes win and everything it never showed stays.  An override of
one occurrence shows on the Palm as an exception (the occurrence is hidden).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from calsync.items import Item, ItemError
from calsync.items.lines import Component, Prop
from calsync.items.merge import fixed_chooser, merge_calendars
from calsync.items.vcal.rules import ical_parts, occurrences
from calsync.items.vcal.text import ical_escape, ical_list, ical_unescape
from calsync.items.vcal.times import TimeError, fmt_duration, fmt_local, parse_duration, parse_ical
from calsync.items.vcal.zones import resolve, vtimezone
from calsync.plain import Plain
from calsync.stores.palm import datebook as db
from calsync.stores.palm import tasks as pt
from calsync.stores.palm import todo as td
from calsync.stores.palm.datebook import Appointment, Repeat

PRODID = "-//calsync//Palm//EN"
DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # the Palm's order: bit 0 is Sunday
MAX_DESCRIPTION = 255
MAX_NOTE = 4095
MAX_ADVANCE = 99
VTIMEZONE_YEARS = 20  # years a VTIMEZONE covers for an event repeating forever


class Context(Plain):
    """What reading and writing one store's records needs."""

    __slots__ = ("calendar", "categories", "encoding", "stamp", "zone")
    zone: tzinfo | None  # the store's timezone; None: floating / this machine's
    encoding: str
    categories: list[str]  # the AppInfo block's names, by index
    stamp: str  # DTSTAMP of items read from the Palm (UTC, basic format)
    calendar: bool  # the events database is a Calendar (PDat) one

    def __init__(
        self,
        zone: tzinfo | None,
        encoding: str,
        categories: list[str],
        stamp: str,
        calendar: bool = False,
    ) -> None:
        self.zone = zone
        self.encoding = encoding
        self.categories = categories
        self.stamp = stamp
        self.calendar = calendar


class Meta(Plain):
    """The record attributes an item maps to (category index, secret)."""

    __slots__ = ("category", "secret")
    category: int
    secret: bool

    def __init__(self, category: int = 0, secret: bool = False) -> None:
        self.category = category
        self.secret = secret


# -- reading ----------------------------------------------------------------------


def _text(raw: bytes | None, ctx: Context) -> str | None:
    if raw is None:
        return None
    return raw.decode(ctx.encoding, errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _texts(
    comp: Component,
    ctx: Context,
    summary: bytes | None,
    note: bytes | None,
    where: bytes | None = None,
) -> str | None:
    """SUMMARY, DESCRIPTION and LOCATION from a record's texts; returns the summary."""
    title = _text(summary, ctx)
    for name, value in (
        ("SUMMARY", title),
        ("DESCRIPTION", _text(note, ctx)),
        ("LOCATION", _text(where, ctx)),
    ):
        if value:
            comp.props.append(Prop(name, (), ical_escape(value)))
    return title


def _common(comp: Component, uid: str, ctx: Context) -> None:
    comp.props += [Prop("UID", (), uid), Prop("DTSTAMP", (), ctx.stamp)]


def _tail(comp: Component, meta: Meta, ctx: Context) -> None:
    names = ctx.categories
    if 0 < meta.category < len(names) and names[meta.category]:
        comp.props.append(Prop("CATEGORIES", (), ical_escape(names[meta.category])))
    if meta.secret:
        comp.props.append(Prop("CLASS", (), "PRIVATE"))


def _time_prop(name: str, value: date | datetime, ctx: Context) -> Prop:
    if not isinstance(value, datetime):
        return Prop(name, (("VALUE", "DATE"),), value.strftime("%Y%m%d"))
    if ctx.zone is None:
        return Prop(name, (), fmt_local(value))
    return Prop(name, (("TZID", _zone_name(ctx.zone)),), fmt_local(value))


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone.tzname(None) or "Palm")


def _calendar(comps: list[Component], ctx: Context, years: tuple[int, int] | None) -> Item:
    cal = Component("VCALENDAR", [Prop("VERSION", (), "2.0"), Prop("PRODID", (), PRODID)])
    if ctx.zone is not None and years is not None:
        cal.subs.append(vtimezone(ctx.zone, years[0], years[1]))
    cal.subs += comps
    return Item.from_tree(cal)


def _until(end: date, timed: bool, ctx: Context) -> str:
    if not timed:
        return end.strftime("%Y%m%d")
    last = datetime.combine(end, time(23, 59, 59))
    if ctx.zone is None:
        return fmt_local(last)
    return fmt_local(last.replace(tzinfo=ctx.zone).astimezone(UTC)) + "Z"


def _rrule(rep: Repeat, first: date, timed: bool, ctx: Context) -> str | None:
    freq = max(rep.frequency, 1)
    parts: list[str] = []
    if rep.kind == db.DAILY:
        parts.append("FREQ=DAILY")
    elif rep.kind == db.WEEKLY:
        parts.append("FREQ=WEEKLY")
    elif rep.kind in (db.MONTHLY_BY_DAY, db.MONTHLY_BY_DATE):
        parts.append("FREQ=MONTHLY")
    elif rep.kind == db.YEARLY:
        parts.append("FREQ=YEARLY")
    else:
        return None
    if rep.end is not None:
        parts.append(f"UNTIL={_until(rep.end, timed, ctx)}")
    if freq > 1:
        parts.append(f"INTERVAL={freq}")
    if rep.kind == db.WEEKLY:
        days = [DAYS[i] for i in range(7) if rep.on & (1 << i)]
        parts.append("BYDAY=" + ",".join(days or [DAYS[(first.weekday() + 1) % 7]]))
        if freq > 1:
            parts.append("WKST=" + ("MO" if rep.week_start == 1 else "SU"))
    elif rep.kind == db.MONTHLY_BY_DAY:
        week, day = divmod(rep.on, 7)
        parts.append(f"BYDAY={-1 if week >= db.LAST_WEEK else week + 1}{DAYS[day]}")
    return ";".join(parts)


def _alarm(trigger: str, summary: str | None, related_end: bool = False) -> Component:
    params: tuple[tuple[str, str | None], ...] = (("RELATED", "END"),) if related_end else ()
    return Component(
        "VALARM",
        [
            Prop("ACTION", (), "DISPLAY"),
            Prop("TRIGGER", params, trigger),
            Prop("DESCRIPTION", (), ical_escape(summary or "Reminder")),
        ],
    )


def event_item(appt: Appointment, uid: str, meta: Meta, ctx: Context) -> Item:
    """The VEVENT of a Datebook or Calendar record."""
    comp = Component("VEVENT")
    _common(comp, uid, ctx)
    timed = appt.start is not None and appt.end is not None
    start: date | datetime
    end: date | datetime
    if appt.start is not None and appt.end is not None:
        start = datetime.combine(appt.day, time(*appt.start))
        end = max(datetime.combine(appt.day, time(*appt.end)), start)
    else:
        start, end = appt.day, appt.day + timedelta(days=1)
    comp.props += [_time_prop("DTSTART", start, ctx), _time_prop("DTEND", end, ctx)]
    summary = _texts(comp, ctx, appt.description, appt.note, appt.location)
    last_year = appt.day.year
    if appt.repeat is not None:
        rule = _rrule(appt.repeat, appt.day, timed, ctx)
        if rule is not None:
            comp.props.append(Prop("RRULE", (), rule))
            last_year = appt.repeat.end.year if appt.repeat.end else appt.day.year + VTIMEZONE_YEARS
            for day in sorted(set(appt.exceptions)):
                if appt.start is not None:
                    moment = datetime.combine(day, time(*appt.start))
                    comp.props.append(_time_prop("EXDATE", moment, ctx))
                else:
                    comp.props.append(_time_prop("EXDATE", day, ctx))
    _tail(comp, meta, ctx)
    if appt.alarm is not None and appt.alarm[0] >= 0:
        advance, unit = appt.alarm
        trigger = {db.HOURS: f"-PT{advance}H", db.DAYS: f"-P{advance}D"}.get(unit, f"-PT{advance}M")
        comp.subs.append(_alarm(trigger if advance else "PT0S", summary))
    return _calendar([comp], ctx, (appt.day.year, last_year) if timed else None)


def _priority_in(palm: int) -> str:
    return str(min(max(palm, 1), 5) * 2 - 1)


def todo_item(todo: td.ToDo, uid: str, meta: Meta, ctx: Context) -> Item:
    """The VTODO of a To Do record."""
    comp = Component("VTODO")
    _common(comp, uid, ctx)
    _texts(comp, ctx, todo.description, todo.note)
    if todo.due is not None:
        comp.props.append(_time_prop("DUE", todo.due, ctx))
    comp.props.append(Prop("PRIORITY", (), _priority_in(todo.priority)))
    comp.props.append(Prop("STATUS", (), "COMPLETED" if todo.completed else "NEEDS-ACTION"))
    _tail(comp, meta, ctx)
    return _calendar([comp], ctx, None)


def task_item(task: pt.Task, uid: str, meta: Meta, ctx: Context) -> Item:
    """The VTODO of a Palm OS 5 Tasks record (read only)."""
    comp = Component("VTODO")
    _common(comp, uid, ctx)
    summary = _texts(comp, ctx, task.description, task.note)
    if task.due is not None:
        comp.props.append(_time_prop("DUE", task.due, ctx))
        if task.repeat is not None:
            rule = _rrule(task.repeat, task.due, False, ctx)
            if rule is not None:
                comp.props.append(Prop("RRULE", (), rule))
    comp.props.append(Prop("PRIORITY", (), _priority_in(task.priority)))
    if task.completed_on is not None:
        comp.props.append(Prop("STATUS", (), "COMPLETED"))
        midnight = datetime.combine(task.completed_on, time())
        moment = midnight.replace(tzinfo=ctx.zone or UTC).astimezone(UTC)
        comp.props.append(Prop("COMPLETED", (), fmt_local(moment) + "Z"))
    else:
        comp.props.append(Prop("STATUS", (), "NEEDS-ACTION"))
    _tail(comp, meta, ctx)
    if task.alarm is not None and task.due is not None:
        hour, minute, days = task.alarm
        offset = timedelta(days=-days, hours=hour, minutes=minute)
        comp.subs.append(_alarm(fmt_duration(offset), summary, related_end=True))
    return _calendar([comp], ctx, None)


# -- writing ----------------------------------------------------------------------


class Unfit(ValueError):
    """An item the Palm cannot take at all (no VEVENT/VTODO, a year out of range...)."""


class _Times:
    """Reads an item's date and time properties, in the Palm's wall clock."""

    def __init__(self, item: Item, ctx: Context) -> None:
        self.zones = {(tz.value("TZID") or "").strip(): tz for tz in item.timezones()}
        self.ctx = ctx

    def value(self, prop: Prop) -> date | datetime:
        tzid = prop.param("TZID")
        tz = resolve(tzid, self.zones.get(tzid)) if tzid else None
        if tzid and tz is None:
            raise Unfit(f"unknown time zone {tzid!r}")
        try:
            return parse_ical(prop.value, tz, prop.param("VALUE"))
        except TimeError as e:
            raise Unfit(str(e)) from None

    def local(self, value: date | datetime) -> date | datetime:
        """``value`` on the Palm's wall clock (naive), dates as they are."""
        if not isinstance(value, datetime) or value.tzinfo is None:
            return value
        if self.ctx.zone is not None:
            return value.astimezone(self.ctx.zone).replace(tzinfo=None)
        return value.astimezone().replace(tzinfo=None)

    def day(self, prop: Prop) -> date:
        value = self.local(self.value(prop))
        return value.date() if isinstance(value, datetime) else value


def _encode_text(value: str | None, ctx: Context, limit: int) -> bytes | None:
    if value is None:
        return None
    text = ical_unescape(value).replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")
    raw = text.encode(ctx.encoding, errors="replace")
    if len(raw) > limit:
        raw = raw[:limit].decode(ctx.encoding, errors="ignore").encode(ctx.encoding)
    return raw


def meta_of(comp: Component, ctx: Context) -> Meta:
    meta = Meta()
    cls = (comp.value("CLASS") or "").strip().upper()
    meta.secret = cls in ("PRIVATE", "CONFIDENTIAL")
    wanted = [c.casefold() for p in comp.all("CATEGORIES") for c in ical_list(p.value)]
    for name in wanted:
        for index, label in enumerate(ctx.categories):
            if label and index > 0 and label.casefold() == name:
                meta.category = index
                return meta
    return meta


def _advance(comp: Component) -> tuple[int, int] | None:
    """(advance, unit) of the first alarm a Palm can ring: before the start."""
    for alarm in comp.children("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None or (trigger.param("VALUE") or "").upper() == "DATE-TIME":
            continue
        if (trigger.param("RELATED") or "START").upper() != "START":
            continue
        try:
            delta = parse_duration(trigger.value)
        except TimeError:
            continue
        if delta > timedelta(0):
            continue
        return _in_units(-int(delta.total_seconds()) // 60)
    return None


def _in_units(minutes: int) -> tuple[int, int]:
    """(advance, unit) for an alarm ``minutes`` before: exact where a unit fits,
    else rounded up (an alarm may ring earlier than asked, never later)."""
    for unit, size in ((db.DAYS, 1440), (db.HOURS, 60)):
        if minutes and minutes % size == 0 and minutes // size <= MAX_ADVANCE:
            return minutes // size, unit
    if minutes <= MAX_ADVANCE:
        return minutes, db.MINUTES
    for unit, size in ((db.HOURS, 60), (db.DAYS, 1440)):
        count = -(-minutes // size)
        if count <= MAX_ADVANCE:
            return count, unit
    return MAX_ADVANCE, db.DAYS


_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


def _days(value: str) -> list[tuple[int, int]] | None:
    """BYDAY as (ordinal, Palm weekday) pairs; None if malformed."""
    out = []
    for piece in value.split(","):
        m = _BYDAY.match(piece.strip().upper())
        if m is None:
            return None
        out.append((int(m.group(1) or 0), DAYS.index(m.group(2))))
    return out


def _repeat(rule: str, first: date | datetime, times: _Times, week_start: int) -> Repeat | None:
    """The Palm repeat for an RRULE, or None if a Palm cannot repeat so."""
    parts = ical_parts(rule)
    day = first.date() if isinstance(first, datetime) else first
    allowed = {"FREQ", "INTERVAL", "UNTIL", "COUNT", "BYDAY", "WKST", "BYMONTHDAY", "BYMONTH"}
    if set(parts) - allowed:
        return None
    try:
        interval = int(parts.get("INTERVAL", "1"))
    except ValueError:
        return None
    freq = parts.get("FREQ", "")
    byday = _days(parts["BYDAY"]) if "BYDAY" in parts else []
    if byday is None:
        return None
    palm_day = (day.weekday() + 1) % 7
    if "BYMONTHDAY" in parts and parts["BYMONTHDAY"] != str(day.day):
        return None
    if "BYMONTH" in parts and (freq != "YEARLY" or parts["BYMONTH"] != str(day.month)):
        return None
    if "WKST" in parts:
        week_start = 1 if parts["WKST"] == "MO" else 0 if parts["WKST"] == "SU" else week_start
    on = 0
    if freq == "DAILY" and byday and interval == 1 and all(n == 0 for n, _ in byday):
        freq = "WEEKLY"  # every weekday: a weekly repeat on those days
    if freq == "DAILY" and not byday and "BYMONTHDAY" not in parts:
        kind = db.DAILY
    elif freq == "WEEKLY" and all(n == 0 for n, _ in byday) and "BYMONTHDAY" not in parts:
        kind = db.WEEKLY
        for _, wd in byday or [(0, palm_day)]:
            on |= 1 << wd
    elif freq == "MONTHLY" and not byday:
        kind = db.MONTHLY_BY_DATE
    elif freq in ("MONTHLY", "YEARLY") and len(byday) == 1 and "BYMONTHDAY" not in parts:
        n, wd = byday[0]
        if wd != palm_day or n not in (1, 2, 3, 4, -1):
            return None
        if freq == "YEARLY":
            if "BYMONTH" not in parts:
                return None
            interval *= 12
        kind = db.MONTHLY_BY_DAY
        on = (db.LAST_WEEK if n == -1 else n - 1) * 7 + wd
    elif freq == "YEARLY" and not byday:
        kind = db.YEARLY
    else:
        return None
    if not 1 <= interval <= 255:
        return None
    end: date | None = None
    if "UNTIL" in parts:
        try:
            until = times.local(parse_ical(parts["UNTIL"], None))
        except TimeError:
            return None
        end = until.date() if isinstance(until, datetime) else until
    elif "COUNT" in parts:
        from calsync.items import expansion  # with dateutil: only for rules with a count

        watch = expansion.watch()
        try:
            count = int(parts["COUNT"])
            found = occurrences(rule, first, limit=count)
        except (ValueError, TypeError, OverflowError):
            return None
        if not found:
            return None
        if not watch.truncated:  # else: longer than an expansion may run, so no end
            last = times.local(found[-1])
            end = last.date() if isinstance(last, datetime) else last
    return Repeat(kind, end, interval, on, week_start)


def appointment(
    item: Item, ctx: Context, old: Appointment | None = None
) -> tuple[Appointment, Meta]:
    """The record for an item's VEVENT (``old``: the record it replaces, whose
    unknown flags, reserved bytes and blobs are kept)."""
    comp = item.master()
    if comp is None or comp.name != "VEVENT":
        raise Unfit("no VEVENT in it")
    times = _Times(item, ctx)
    dtstart = comp.get("DTSTART")
    if dtstart is None:
        raise Unfit("the event has no DTSTART")
    first = times.value(dtstart)
    start = times.local(first)
    end_value: date | datetime | None = None
    if comp.get("DTEND") is not None:
        end_value = times.local(times.value(comp.get("DTEND")))  # type: ignore[arg-type]
    elif comp.get("DURATION") is not None:
        try:
            end_value = start + parse_duration(comp.value("DURATION") or "")
        except TimeError:
            end_value = None
    appt = Appointment(start.date() if isinstance(start, datetime) else start)
    if old is not None:
        appt.flags, appt.tail = old.flags, old.tail
    span_days = 0
    if isinstance(start, datetime):
        appt.start = (start.hour, start.minute)
        end = end_value if isinstance(end_value, datetime) else start
        if end < start:
            end = start
        elif end.date() != start.date():  # a Palm event ends on its day
            end = datetime.combine(start.date(), time(23, 59))
        appt.end = (end.hour, end.minute)
    elif isinstance(end_value, date) and not isinstance(end_value, datetime):
        span_days = (end_value - start).days
    for name, attr, limit in (
        ("SUMMARY", "description", MAX_DESCRIPTION),
        ("DESCRIPTION", "note", MAX_NOTE),
        ("LOCATION", "location", MAX_DESCRIPTION),
    ):
        value = comp.value(name)
        setattr(appt, attr, _encode_text(value, ctx, limit) if value else None)
    if not ctx.calendar:
        appt.location = None
    if appt.description is None:
        appt.description = b""
    week_start = old.repeat.week_start if old is not None and old.repeat is not None else 1
    rules = comp.all("RRULE")
    if len(rules) == 1 and not comp.all("RDATE"):
        appt.repeat = _repeat(rules[0].value, first, times, week_start)
    elif not rules and span_days > 1:
        appt.repeat = Repeat(db.DAILY, appt.day + timedelta(days=span_days - 1), 1, 0, week_start)
    if appt.repeat is not None:
        hidden = {times.day(v) for p in comp.all("EXDATE") for v in _split(p)}
        for override in item.components():
            rid = override.get("RECURRENCE-ID")
            if rid is not None and override is not comp:
                hidden.add(times.day(rid))
        appt.exceptions = sorted(hidden)
        if old is not None and old.repeat is not None:
            appt.repeat.reserved, appt.repeat.reserved2 = old.repeat.reserved, old.repeat.reserved2
    appt.alarm = _advance(comp)
    _check_years(appt)
    return appt, meta_of(comp, ctx)


def _split(prop: Prop) -> list[Prop]:
    return [prop.with_value(v) for v in prop.value.split(",") if v.strip()]


def _check_years(appt: Appointment) -> None:
    days = [appt.day, *appt.exceptions]
    if appt.repeat is not None and appt.repeat.end is not None:
        days.append(appt.repeat.end)
    for d in days:
        if not 1904 <= d.year <= 2031:
            raise Unfit(f"{d.isoformat()}: a Palm stores the years 1904-2031 only")


def _priority_out(comp: Component) -> int:
    try:
        value = int((comp.value("PRIORITY") or "0").strip())
    except ValueError:
        value = 0
    if value <= 0:
        return 3
    return min((value + 1) // 2, 5)


def todo(item: Item, ctx: Context, old: td.ToDo | None = None) -> tuple[td.ToDo, Meta]:
    """The To Do record for an item's VTODO."""
    comp = item.master()
    if comp is None or comp.name != "VTODO":
        raise Unfit("no VTODO in it")
    times = _Times(item, ctx)
    summary = comp.value("SUMMARY")
    note = comp.value("DESCRIPTION")
    record = td.ToDo(_encode_text(summary, ctx, MAX_DESCRIPTION) or b"")
    record.note = _encode_text(note, ctx, MAX_NOTE) or b""
    if old is not None:
        record.tail = old.tail if old.tail is not None else b""
    due = comp.get("DUE")
    if due is not None:
        record.due = times.day(due)
        if not 1904 <= record.due.year <= 2031:
            raise Unfit(f"{record.due.isoformat()}: a Palm stores the years 1904-2031 only")
    record.priority = _priority_out(comp)
    status = (comp.value("STATUS") or "").strip().upper()
    percent = (comp.value("PERCENT-COMPLETE") or "").strip()
    record.completed = (
        status == "COMPLETED" or comp.get("COMPLETED") is not None or percent == "100"
    )
    return record, meta_of(comp, ctx)


# -- a Palm's edit of an item calsync wrote -----------------------------------------


def reconcile(written: Item, palm: Item, seen: Item) -> Item:
    """``palm`` (the record as the Palm holds it now) merged onto ``written``
    (the item calsync wrote there), ``seen`` being what the Palm showed of it:
    the Palm's edits win, what it could not show stays as written."""
    if palm.uid != written.uid:
        return palm
    base = seen.tree.copy()
    theirs = palm.tree.copy()
    _as_written(written, base, theirs)
    merged = merge_calendars(base, written.tree, theirs, fixed_chooser("b"))
    try:
        return Item.from_tree(merged.calendar)
    except ItemError:
        return palm


def _as_written(written: Item, base: Component, theirs: Component) -> None:
    """The alarm the Palm showed stands for the alarm it came from: in the base,
    and in the Palm's copy where it is still as shown (else an alarm the Palm
    left alone would come back twice, and one it changed would stay twice)."""
    ours = written.master()
    if ours is None:
        return
    shown = _advance(ours)
    source = next((a for a in ours.children("VALARM") if _advance(_only(a)) == shown), None)
    if shown is None or source is None:
        return
    for cal, replace_only_if_same in ((theirs, True), (base, False)):
        comps = [c for c in cal.subs if c.name in ("VEVENT", "VTODO")]
        seen_comps = [c for c in base.subs if c.name in ("VEVENT", "VTODO")]
        if not comps or not seen_comps:
            continue
        comp, seen_comp = comps[0], seen_comps[0]
        seen_alarms = seen_comp.children("VALARM")
        if not seen_alarms:
            continue
        shown_alarm = seen_alarms[0]
        for i, sub in enumerate(comp.subs):
            if sub.name != "VALARM":
                continue
            if replace_only_if_same and sub.serialize() != shown_alarm.serialize():
                continue
            comp.subs[i] = source
            break


def _only(alarm: Component) -> Component:
    return Component("VEVENT", [], [alarm])
