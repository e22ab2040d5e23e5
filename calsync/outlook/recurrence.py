"""Outlook's recurrence blobs (MS-OXOCAL 2.2.1.44) -> the ActiveSync model.

An appointment's series is ``PidLidAppointmentRecur``: an
AppointmentRecurrencePattern, which is a RecurrencePattern (what a task's
``PidLidTaskRecurrence`` holds alone) followed by the occurrences' times and
the exceptions.  All integers are little-endian; every date is in minutes
since 1601-01-01 *local time* of the series' zone:

    RecurrencePattern            ReaderVersion, WriterVersion (0x3004),
                                 RecurFrequency (0x200A day, B week, C month,
                                 D year), PatternType (0 day, 1 week, 2 month,
                                 3 month nth, 4 month end; +8 Hijri),
                                 CalendarType, FirstDateTime, Period (minutes
                                 for days, else weeks or months), SlidingFlag,
                                 PatternTypeSpecific (week: day mask; month:
                                 day; nth: day mask + N, 5 = last), EndType
                                 (0x2021 date, 0x2022 count, 0x2023 never),
                                 OccurrenceCount, FirstDOW, deleted dates,
                                 modified dates, StartDate, EndDate
    AppointmentRecurrencePattern ReaderVersion2, WriterVersion2 (0x3006 ..
                                 0x3009), StartTimeOffset, EndTimeOffset
                                 (minutes from midnight), ExceptionCount,
                                 ExceptionInfo[] (new start, new end, original
                                 start, OverrideFlags and the fields they
                                 name), a reserved block, ExtendedException[]
                                 (Unicode subject and location), a reserved
                                 block

Rules of the mapping (the field table is README's "Outlook" section):
- the pattern becomes an ``eas.model.Recurrence`` (Exchange ActiveSync's
  pattern is Outlook's, renumbered), so ``eas.recurrence.to_rrule`` writes the
  RRULE: every-weekday daily patterns are weekly with a day mask, month-end
  patterns are "the last day" (mask 127, week 5), Hijri patterns keep their
  calendar type (RSCALE); the end is COUNT for 0x2022, else UNTIL at the last
  occurrence's start (EndDate + StartTimeOffset);
- a deleted date that no ExceptionInfo claims is a deleted occurrence (EXDATE);
  an ExceptionInfo is a changed occurrence (an override), keyed by its
  original start, with the fields its OverrideFlags name; the Unicode subject
  and location of the ExtendedException win over the 8-bit ones;
- local times become UTC with the series' zone (``local_to_utc``).
A blob that ends early or has impossible values raises ``RecurBlobError``
naming what is wrong; the caller reports the item (never a wrong series).

Why hand-written: libpff gives the blob as bytes only, and no maintained
Python library parses it (the format is a packed C structure: ``struct``
reads it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import IntEnum

from calsync.eas.model import LAST_DAY_OF_MONTH, Recurrence, RecurrenceType, TaskRecurrence

_EPOCH = datetime(1601, 1, 1)
_NO_END = (0x2023, 0xFFFFFFFF)
# EndDate/OccurrenceCount of a series without end (MS-OXOCAL 2.2.1.44.1)
_MAX_ITEMS = 10_000  # dates or exceptions in one blob (Outlook allows fewer)


class RecurBlobError(ValueError):
    """A recurrence blob that cannot be read; the message says where."""


class Frequency(IntEnum):
    DAILY = 0x200A
    WEEKLY = 0x200B
    MONTHLY = 0x200C
    YEARLY = 0x200D


class PatternType(IntEnum):
    DAY = 0x0
    WEEK = 0x1
    MONTH = 0x2
    MONTH_NTH = 0x3
    MONTH_END = 0x4
    HJ_MONTH = 0xA
    HJ_MONTH_NTH = 0xB
    HJ_MONTH_END = 0xC


class EndType(IntEnum):
    AFTER_DATE = 0x2021
    AFTER_COUNT = 0x2022
    NEVER = 0x2023


class Override(IntEnum):
    """ExceptionInfo OverrideFlags (MS-OXOCAL 2.2.1.44.2)."""

    SUBJECT = 0x0001
    MEETING_TYPE = 0x0002
    REMINDER_DELTA = 0x0004
    REMINDER = 0x0008
    LOCATION = 0x0010
    BUSY_STATUS = 0x0020
    ATTACHMENT = 0x0040
    SUBTYPE = 0x0080
    APPT_COLOR = 0x0100
    EXCEPTIONAL_BODY = 0x0200


def local_minutes(value: int) -> datetime:
    """A date of the blob (minutes since 1601, local) as a naive datetime."""
    return _EPOCH + timedelta(minutes=value)


def local_to_utc(local: datetime, zone: tzinfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


@dataclass
class Pattern:
    """A RecurrencePattern."""

    frequency: Frequency
    pattern_type: PatternType
    calendar_type: int
    period: int
    day_mask: int = 0
    day: int = 0
    nth: int = 0
    end_type: int = EndType.NEVER
    occurrence_count: int = 0
    first_dow: int = 0
    deleted: list[datetime] = field(default_factory=list)  # local midnights
    modified: list[datetime] = field(default_factory=list)
    start_date: datetime = _EPOCH
    end_date: datetime = _EPOCH

    @property
    def ends(self) -> bool:
        return self.end_type not in _NO_END

    def to_eas(self, task: bool = False) -> Recurrence:
        """The pattern as an ActiveSync Recurrence (UNTIL left to the caller)."""
        rec: Recurrence = TaskRecurrence() if task else Recurrence()
        kind = self.pattern_type
        hijri = kind in (PatternType.HJ_MONTH, PatternType.HJ_MONTH_NTH, PatternType.HJ_MONTH_END)
        if self.frequency == Frequency.DAILY and kind == PatternType.DAY:
            rec.type = RecurrenceType.DAILY
            rec.interval = max(1, self.period // 1440)
        elif kind == PatternType.WEEK:
            rec.type = RecurrenceType.WEEKLY
            rec.interval = max(1, self.period)
            rec.day_of_week = self.day_mask
            rec.first_day_of_week = self.first_dow
        elif self.frequency in (Frequency.MONTHLY, Frequency.YEARLY):
            yearly = self.frequency == Frequency.YEARLY
            rec.interval = max(1, self.period // 12 if yearly else self.period)
            if yearly:
                rec.month_of_year = self.start_date.month
            if kind in (PatternType.MONTH, PatternType.HJ_MONTH):
                rec.type = RecurrenceType.YEARLY if yearly else RecurrenceType.MONTHLY
                rec.day_of_month = self.day
            else:
                rec.type = RecurrenceType.YEARLY_NTH if yearly else RecurrenceType.MONTHLY_NTH
                if kind in (PatternType.MONTH_END, PatternType.HJ_MONTH_END):
                    rec.day_of_week, rec.week_of_month = LAST_DAY_OF_MONTH, 5
                else:
                    rec.day_of_week, rec.week_of_month = self.day_mask, self.nth
        else:
            raise RecurBlobError(
                f"pattern type {kind.name} does not go with frequency {self.frequency.name}"
            )
        if hijri or self.calendar_type:
            rec.calendar_type = self.calendar_type or 6  # Hijri patterns: Islamic civil
        if self.end_type == EndType.AFTER_COUNT:
            rec.occurrences = self.occurrence_count
        return rec


@dataclass
class ExceptionInfo:
    """One changed occurrence (ExceptionInfo + its ExtendedException); times local."""

    start: datetime
    end: datetime
    original_start: datetime
    flags: int
    subject: str | None = None
    meeting_type: int | None = None
    reminder_delta: int | None = None
    reminder_set: bool | None = None
    location: str | None = None
    busy_status: int | None = None
    has_attachment: bool | None = None
    all_day: bool | None = None


@dataclass
class AppointmentPattern:
    """An AppointmentRecurrencePattern."""

    pattern: Pattern
    start_offset: int  # minutes from local midnight
    end_offset: int
    exceptions: list[ExceptionInfo]

    def deleted_starts(self) -> list[datetime]:
        """The local original starts of the occurrences deleted outright."""
        changed = {e.original_start.date() for e in self.exceptions}
        offset = timedelta(minutes=self.start_offset)
        return [d + offset for d in self.pattern.deleted if d.date() not in changed]

    def until_local(self) -> datetime | None:
        """The local start of the last occurrence, for a series ending on a date."""
        if self.pattern.end_type != EndType.AFTER_DATE:
            return None
        return self.pattern.end_date + timedelta(minutes=self.start_offset)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str, what: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise RecurBlobError(f"the recurrence blob ends inside {what} (byte {self.pos})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def one(self, fmt: str, what: str) -> int:
        return self.take(fmt, what)[0]

    def raw(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise RecurBlobError(f"the recurrence blob ends inside {what} (byte {self.pos})")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def dates(self, what: str) -> list[datetime]:
        count = self.one("<I", f"the count of {what}")
        if count > _MAX_ITEMS:
            raise RecurBlobError(f"{count} {what} (more than {_MAX_ITEMS})")
        return [local_minutes(v) for v in self.take(f"<{count}I", what)]


def parse_pattern(data: bytes) -> Pattern:
    """A RecurrencePattern alone (a task's ``PidLidTaskRecurrence``)."""
    return _pattern(_Reader(data))


def _pattern(r: _Reader) -> Pattern:
    _reader, _writer, freq, kind, calendar_type = r.take("<5H", "the pattern's header")
    _first, period, _sliding = r.take("<3I", "the pattern's period")
    try:
        frequency, pattern_type = Frequency(freq), PatternType(kind)
    except ValueError:
        raise RecurBlobError(f"unknown frequency {freq:#x} or pattern type {kind:#x}") from None
    pattern = Pattern(frequency, pattern_type, calendar_type, period)
    if pattern_type == PatternType.WEEK:
        pattern.day_mask = r.one("<I", "the day mask")
    elif pattern_type in (PatternType.MONTH_NTH, PatternType.HJ_MONTH_NTH):
        pattern.day_mask, pattern.nth = r.take("<2I", "the nth day")
    elif pattern_type != PatternType.DAY:
        pattern.day = r.one("<I", "the day of month")
    pattern.end_type, pattern.occurrence_count, pattern.first_dow = r.take("<3I", "the end")
    pattern.deleted = r.dates("deleted dates")
    pattern.modified = r.dates("modified dates")
    start, end = r.take("<2I", "the start and end dates")
    pattern.start_date, pattern.end_date = local_minutes(start), local_minutes(end)
    if pattern.day_mask > 0x7F or pattern.first_dow > 6 or not 0 <= pattern.nth <= 5:
        raise RecurBlobError(
            f"impossible values: day mask {pattern.day_mask:#x}, first day of week "
            f"{pattern.first_dow}, week {pattern.nth}"
        )
    if pattern.day > 31:
        raise RecurBlobError(f"impossible day of month {pattern.day}")
    return pattern


def parse_appointment(data: bytes) -> AppointmentPattern:
    """An AppointmentRecurrencePattern (``PidLidAppointmentRecur``)."""
    r = _Reader(data)
    pattern = _pattern(r)
    _reader2, writer2 = r.take("<2I", "the appointment header")
    start_offset, end_offset = r.take("<2I", "the occurrence times")
    count = r.one("<H", "the exception count")
    if count > _MAX_ITEMS:
        raise RecurBlobError(f"{count} exceptions (more than {_MAX_ITEMS})")
    exceptions = [_exception_info(r) for _ in range(count)]
    r.raw(r.one("<I", "a reserved block's size"), "a reserved block")
    for exc in exceptions:
        if r.pos >= len(r.data):
            break  # Outlook 2003 and earlier write no ExtendedExceptions
        _extended(r, exc, writer2)
    return AppointmentPattern(pattern, start_offset, end_offset, exceptions)


def _exception_info(r: _Reader) -> ExceptionInfo:
    start, end, original = r.take("<3I", "an exception's times")
    flags = r.one("<H", "an exception's flags")
    exc = ExceptionInfo(local_minutes(start), local_minutes(end), local_minutes(original), flags)
    if flags & Override.SUBJECT:
        exc.subject = _text8(r, "subject")
    if flags & Override.MEETING_TYPE:
        exc.meeting_type = r.one("<I", "an exception's meeting type")
    if flags & Override.REMINDER_DELTA:
        exc.reminder_delta = r.one("<i", "an exception's reminder delta")
    if flags & Override.REMINDER:
        exc.reminder_set = bool(r.one("<I", "an exception's reminder flag"))
    if flags & Override.LOCATION:
        exc.location = _text8(r, "location")
    if flags & Override.BUSY_STATUS:
        exc.busy_status = r.one("<I", "an exception's busy status")
    if flags & Override.ATTACHMENT:
        exc.has_attachment = bool(r.one("<I", "an exception's attachment flag"))
    if flags & Override.SUBTYPE:
        exc.all_day = bool(r.one("<I", "an exception's all-day flag"))
    if flags & Override.APPT_COLOR:
        r.one("<I", "an exception's color")
    return exc


def _text8(r: _Reader, what: str) -> str:
    """An ExceptionInfo text: its length + 1, its length, its 8-bit characters."""
    _length, length2 = r.take("<2H", f"an exception's {what} length")
    return r.raw(length2, f"an exception's {what}").decode("cp1252", "replace")


def _extended(r: _Reader, exc: ExceptionInfo, writer2: int) -> None:
    if writer2 >= 0x3009:
        size = r.one("<I", "a change highlight's size")
        r.raw(size, "a change highlight")
    r.raw(r.one("<I", "a reserved block's size"), "a reserved block")
    if exc.flags & (Override.SUBJECT | Override.LOCATION):
        r.take("<3I", "an extended exception's times")
        if exc.flags & Override.SUBJECT:
            length = r.one("<H", "an extended exception's subject length")
            exc.subject = r.raw(2 * length, "an extended subject").decode("utf-16-le", "replace")
        if exc.flags & Override.LOCATION:
            length = r.one("<H", "an extended exception's location length")
            exc.location = r.raw(2 * length, "an extended location").decode("utf-16-le", "replace")
        r.raw(r.one("<I", "a reserved block's size"), "a reserved block")
