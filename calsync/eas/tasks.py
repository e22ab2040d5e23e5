"""ActiveSync tasks <-> iCalendar VTODOs.

Directions: ``item_to_task`` (what a device is sent, with warnings) and
``task_to_item`` (what a device sent); an edit of a task we sent is merged
onto the full item by ``eas.merge``.

Rules:
- a task's times come in pairs: the UTC instant (UtcStartDate, UtcDueDate)
  and the device's wall clock (StartDate, DueDate).  Out: a DATE is local
  midnight (in ``Options.device_zone`` for the UTC half); a time keeps the
  wall clock of its own zone (a UTC time: of the device's zone).  In: a local
  midnight is a DATE (Outlook's and most phones' tasks are dated, not timed);
  otherwise the UTC instant, written in the device's zone when the pair's
  offset is that zone's.
- Complete <-> STATUS:COMPLETED with COMPLETED (DateCompleted) and
  PERCENT-COMPLETE:100; not complete is the absence of all three (any other
  STATUS stays as it was).
- Importance <-> PRIORITY: high 1, low 9, normal none (what a PRIORITY of
  1-4, 6-9 and 5 or none means).
- Recurrence: ``eas.recurrence``, anchored on DTSTART (DUE if there is no
  DTSTART; then DTSTART is added, since an RRULE needs one).  The pattern's
  Start is the anchor: UTC up to 14.1, the wall clock in 16.x (what Exchange
  reads, as EAS-4-TbSync measured).  Regenerate and DeadOccur ride on the
  RRULE as X- parameters.
- Reminder: ReminderSet/ReminderTime <-> one DISPLAY alarm at that instant;
  out, the first DISPLAY or AUDIO alarm's instant (a relative trigger from
  DTSTART, or DUE for RELATED=END).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from calsync.eas import props
from calsync.eas.calendar import new_uid
from calsync.eas.model import Importance, Task, TaskRecurrence
from calsync.eas.props import MappingError, Options, Outgoing
from calsync.eas.recurrence import Inexpressible, RecurrenceError, from_rrule, to_rrule
from calsync.items.item import Item
from calsync.items.lines import Component, Prop
from calsync.items.vcal.times import (
    TimeError,
    TimeValue,
    fmt_utc,
    parse_duration,
    parse_ical,
    tz_name,
)

# ==============================================================================================
# iCalendar -> ActiveSync
# ==============================================================================================


def item_to_task(item: Item, opts: Options) -> Outgoing[Task]:
    """The task a device is sent for ``item`` (a VTODO)."""
    comp = props.master_of(item, "VTODO")
    warnings: list[str] = []
    cal = item.tree

    def time(name: str) -> TimeValue | None:
        prop = comp.get(name)
        return props.read_time(prop, cal, opts, warnings) if prop is not None else None

    task = Task(
        subject=props.text(comp, "SUMMARY"),
        body=props.body(comp, opts),
        importance=_importance(comp),
        categories=props.categories(comp),
        sensitivity=props.sensitivity(comp),
    )
    start = time("DTSTART")
    due = time("DUE")
    duration = comp.get("DURATION")
    if due is None and start is not None and duration is not None:
        try:
            due = start + parse_duration(duration.value)
        except TimeError as e:
            warnings.append(f"DURATION: {e}")
    if start is not None:
        task.start_date, task.utc_start_date = _pair(start, opts)
    if due is not None:
        task.due_date, task.utc_due_date = _pair(due, opts)
    completed = time("COMPLETED")
    status = (comp.value("STATUS") or "").strip().upper()
    task.complete = status == "COMPLETED" or completed is not None
    if task.complete:
        stamp = completed or time("LAST-MODIFIED") or time("DTSTAMP")
        task.date_completed = props.instant(stamp, opts.device_zone) if stamp else None
    anchor = start if start is not None else due
    rules = comp.all("RRULE")
    if rules and anchor is None:
        warnings.append("an RRULE without DTSTART or DUE: sent without recurrence")
    elif len(rules) > 1:
        warnings.append("several RRULEs: sent without recurrence")
    elif rules and anchor is not None:
        task.recurrence = _recurrence_out(rules[0], anchor, opts, warnings)
    task.reminder_time = _reminder(comp, start, due, cal, opts, warnings)
    task.reminder_set = task.reminder_time is not None
    return Outgoing(task, warnings)


def _importance(comp: Component) -> Importance:
    try:
        priority = int((comp.value("PRIORITY") or "0").strip())
    except ValueError:
        return Importance.NORMAL
    if 1 <= priority <= 4:
        return Importance.HIGH
    if 6 <= priority <= 9:
        return Importance.LOW
    return Importance.NORMAL


def _pair(value: TimeValue, opts: Options) -> tuple[datetime, datetime]:
    """(wall clock, UTC instant) of a task time."""
    if not isinstance(value, datetime):
        local = datetime(value.year, value.month, value.day)
        return local, props.instant(value, opts.device_zone)
    zone = value.tzinfo if tz_name(value.tzinfo) not in (None, "UTC") else opts.device_zone
    return value.astimezone(zone).replace(tzinfo=None), value.astimezone(UTC)


def _recurrence_out(
    rule: Prop, anchor: TimeValue, opts: Options, warnings: list[str]
) -> TaskRecurrence | None:
    local, utc = _pair(anchor, opts)
    zone = anchor.tzinfo if isinstance(anchor, datetime) and anchor.tzinfo else opts.device_zone

    def until(text: str) -> datetime:
        try:
            value = parse_ical(text)
        except TimeError as e:
            raise Inexpressible(f"UNTIL: {e}") from None
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        if not isinstance(value, datetime) and isinstance(anchor, datetime):
            value = datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=zone)
        return props.instant(value, opts.device_zone)

    start = local if isinstance(anchor, datetime) else local.date()
    try:
        rec = from_rrule(rule.value, start, until, rule.params, TaskRecurrence)
    except Inexpressible as e:
        warnings.append(f"RRULE {rule.value[:80]!r}: {e}: sent without recurrence")
        return None
    rec.start = local if opts.v16 else utc
    return rec


def _reminder(
    comp: Component,
    start: TimeValue | None,
    due: TimeValue | None,
    cal: Component,
    opts: Options,
    warnings: list[str],
) -> datetime | None:
    begin = props.instant(start, opts.device_zone) if start is not None else None
    end = props.instant(due, opts.device_zone) if due is not None else None
    for trigger in props.phone_alarms(comp):
        fires = props.fires_at(trigger, begin, end, cal, opts, warnings)
        if fires is not None:
            return fires
    return None


# ==============================================================================================
# ActiveSync -> iCalendar
# ==============================================================================================


def task_to_item(
    task: Task,
    opts: Options,
    *,
    uid: str | None = None,
    uid_seed: str | None = None,
    stamp: datetime | None = None,
) -> Item:
    """The item a device's task stands for (UID: ``uid``, else ``new_uid``;
    DTSTAMP: ``stamp``, else now)."""
    props.check_wire(task)
    cal = props.new_calendar()
    comp = Component("VTODO", [Prop("UID", (), uid or new_uid(uid_seed))])
    comp.props.append(Prop("DTSTAMP", (), fmt_utc(stamp or datetime.now(UTC))))
    start = _time_in(task.start_date, task.utc_start_date, opts)
    due = _time_in(task.due_date, task.utc_due_date, opts)
    if task.recurrence is not None and start is None:
        start = due if due is not None else _recurrence_start(task.recurrence, opts)
    if start is not None:
        comp.props.append(props.time_prop("DTSTART", start))
    if due is not None:
        comp.props.append(props.time_prop("DUE", due))
    props.set_text(comp, "SUMMARY", task.subject)
    if task.body is not None:
        props.set_body(comp, task.body)
    if task.importance is not None and task.importance != Importance.NORMAL:
        comp.set("PRIORITY", "1" if task.importance == Importance.HIGH else "9")
    if task.sensitivity is not None:
        props.set_sensitivity(comp, task.sensitivity)
    if task.categories:
        props.set_categories(comp, task.categories)
    if task.complete:
        comp.set("STATUS", "COMPLETED")
        comp.set("PERCENT-COMPLETE", "100")
        if task.date_completed is not None:
            comp.set("COMPLETED", fmt_utc(task.date_completed))
    if task.recurrence is not None and start is not None:
        _recurrence_in(comp, task.recurrence, start, opts)
    if task.reminder_set and task.reminder_time is not None:
        trigger = Prop("TRIGGER", (("VALUE", "DATE-TIME"),), fmt_utc(task.reminder_time))
        comp.subs.append(props.display_alarm(trigger))
    tzid = tz_name(opts.device_zone)
    if any(p.param("TZID") == tzid for p in comp.props):
        years = [v.year for v in (start, due) if v is not None]
        vtz = props.vtimezone_for(opts.device_zone, min(years), max(years) + 1)
        if vtz is not None:
            cal.subs.append(vtz)
    cal.subs.append(comp)
    return props.finish(cal)


def _time_in(local: datetime | None, utc: datetime | None, opts: Options) -> TimeValue | None:
    """A task time from its (wall clock, UTC) pair (see the module docstring)."""
    if local is None and utc is None:
        return None
    if local is not None and local.hour == local.minute == local.second == 0:
        return local.date()
    if utc is None:
        assert local is not None
        return _in_zone(local.replace(tzinfo=opts.device_zone), opts.device_zone)
    if local is None:
        return utc.astimezone(UTC)
    offset = local - utc.replace(tzinfo=None)
    if utc.astimezone(opts.device_zone).utcoffset() == offset:
        return _in_zone(utc, opts.device_zone)
    return utc.astimezone(UTC)


def _in_zone(value: datetime, zone: tzinfo) -> datetime:
    return value.astimezone(UTC) if tz_name(zone) == "UTC" else value.astimezone(zone)


def _recurrence_start(rec: TaskRecurrence, opts: Options) -> TimeValue | None:
    if rec.start is None:
        return None
    if rec.start.tzinfo is None:
        return _time_in(rec.start, None, opts)
    return _in_zone(rec.start, opts.device_zone)


def _recurrence_in(comp: Component, rec: TaskRecurrence, start: TimeValue, opts: Options) -> None:
    until = None
    if rec.until is not None:
        if isinstance(start, datetime):
            until = fmt_utc(rec.until)
        else:
            until = props.all_day_date(rec.until, opts.device_zone).strftime("%Y%m%d")
    first = start.date() if isinstance(start, datetime) else start
    try:
        value, params = to_rrule(rec, first, until)
    except RecurrenceError as e:
        raise MappingError(str(e)) from None
    comp.props.append(Prop("RRULE", params, value))
