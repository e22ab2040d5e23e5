"""EAS Recurrence <-> RRULE: every pattern kind both ways, the rules EAS cannot
express, and property-based round trips checked by occurrences.

Two independent readings meet in these tests: dateutil expands the RRULEs,
``eas_oracle`` reads the EAS patterns day by day from their definition.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta

import pytest
from dateutil.rrule import rrule, rrulestr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from calsync.eas.model import (
    DAY_BITS,
    LAST_DAY_OF_MONTH,
    Recurrence,
    RecurrenceType,
    TaskRecurrence,
)
from calsync.eas.recurrence import (
    X_CALENDAR_TYPE,
    X_DEAD_OCCUR,
    X_REGENERATE,
    Inexpressible,
    RecurrenceError,
    from_rrule,
    to_rrule,
)
from tests.eas.eas_oracle import expand

YEARS = 6


def until_utc(text: str) -> datetime:
    if len(text) == 8:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), tzinfo=UTC)
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def rule_occurrences(value: str, start: datetime) -> list[datetime]:
    """dateutil's occurrences of an RRULE (floating times) for YEARS years
    (bounded, so that a rule with no occurrence does not run to year 9999)."""
    last = start + timedelta(days=365 * YEARS)
    rule = rrulestr(value.replace("Z", ""), dtstart=start)
    assert isinstance(rule, rrule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # COUNT and a bound
        bounded = rule.replace(until=min(last, rule._until or last))  # type: ignore[attr-defined]
    return list(bounded)


def eas_occurrences(rec: Recurrence, start: datetime) -> list[datetime]:
    until = rec.until.replace(tzinfo=None) if rec.until else None
    return expand(rec, start, until, (start + timedelta(days=365 * YEARS)).date())


TUE = datetime(2026, 9, 1, 8, 0)  # Tuesday 1 September 2026


@pytest.mark.parametrize(
    ("rule", "start", "fields"),
    [
        ("FREQ=DAILY", TUE, {"type": 0}),
        ("FREQ=DAILY;INTERVAL=3;COUNT=10", TUE, {"type": 0, "interval": 3, "occurrences": 10}),
        ("FREQ=WEEKLY", TUE, {"type": 1, "day_of_week": DAY_BITS["TU"]}),
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH,SA;WKST=SU",
            TUE,
            {"type": 1, "interval": 2, "day_of_week": 4 + 16 + 64, "first_day_of_week": 0},
        ),
        ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", TUE, {"type": 1, "day_of_week": 62}),
        ("FREQ=MONTHLY", TUE, {"type": 2, "day_of_month": 1}),
        ("FREQ=MONTHLY;BYMONTHDAY=15", TUE + timedelta(days=14), {"type": 2, "day_of_month": 15}),
        (
            "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1",
            datetime(2026, 9, 30, 8),
            {"type": 2, "day_of_month": 31},
        ),
        ("FREQ=MONTHLY;BYDAY=1TU", TUE, {"type": 3, "day_of_week": 4, "week_of_month": 1}),
        (
            "FREQ=MONTHLY;BYDAY=-1FR",
            datetime(2026, 9, 25, 8),
            {"type": 3, "day_of_week": 32, "week_of_month": 5},
        ),
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
            TUE,
            {"type": 3, "day_of_week": 62, "week_of_month": 1},
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            datetime(2026, 9, 30, 8),
            {"type": 3, "day_of_week": LAST_DAY_OF_MONTH, "week_of_month": 5},
        ),
        ("FREQ=YEARLY", TUE, {"type": 5, "month_of_year": 9, "day_of_month": 1}),
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
            datetime(2028, 2, 29, 8),
            {"type": 5, "month_of_year": 2, "day_of_month": 29},
        ),
        (
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
            datetime(2026, 11, 26, 8),
            {"type": 6, "month_of_year": 11, "day_of_week": 16, "week_of_month": 4},
        ),
        (
            "FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO;UNTIL=20300601T000000Z",
            datetime(2026, 5, 25, 8),
            {
                "type": 6,
                "month_of_year": 5,
                "week_of_month": 5,
                "until": until_utc("20300601T000000Z"),
            },
        ),
    ],
)
def test_each_kind_of_rule_maps_both_ways(rule: str, start: datetime, fields: dict) -> None:
    rec = from_rrule(rule, start, until_utc)
    for name, value in fields.items():
        assert getattr(rec, name) == value, name
    expected = rule_occurrences(rule, start)
    assert eas_occurrences(rec, start) == expected
    until = rec.until.strftime("%Y%m%dT%H%M%SZ") if rec.until else None
    back, _ = to_rrule(rec, start.date(), until)
    assert rule_occurrences(back, start) == expected
    assert from_rrule(back, start, until_utc) == rec


@pytest.mark.parametrize(
    ("rule", "start", "reason"),
    [
        ("FREQ=HOURLY", TUE, "FREQ=HOURLY"),
        ("FREQ=MINUTELY;INTERVAL=15", TUE, "FREQ=MINUTELY"),
        ("FREQ=DAILY;BYHOUR=8,17", TUE, "BYHOUR"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", TUE, "several BYMONTHDAY"),
        ("FREQ=MONTHLY;BYMONTHDAY=31", datetime(2026, 8, 31, 8), "BYMONTHDAY=31"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", datetime(2028, 2, 29), "BYMONTHDAY=29"),
        ("FREQ=MONTHLY;BYDAY=TU", TUE, "every such weekday"),
        ("FREQ=MONTHLY;BYDAY=1TU,3TU", TUE, "ordinals on several days"),
        ("FREQ=MONTHLY;BYDAY=5TU", datetime(2026, 9, 29, 8), "week 5"),
        ("FREQ=YEARLY;BYMONTH=1,7", datetime(2026, 1, 1), "BYMONTH=1,7"),
        ("FREQ=YEARLY;BYYEARDAY=100", TUE, "BYYEARDAY"),
        ("FREQ=YEARLY;BYWEEKNO=20", TUE, "BYWEEKNO"),
        ("FREQ=WEEKLY;BYDAY=WE", TUE, "start is not an occurrence"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z", TUE, "both COUNT and UNTIL"),
        ("FREQ=MONTHLY;BYMONTH=3", TUE, "MONTHLY with BYMONTH"),
        ("FREQ=YEARLY;RSCALE=ETHIOPIC", TUE, "RSCALE=ETHIOPIC"),
    ],
)
def test_rules_eas_cannot_express_are_refused_with_the_reason(
    rule: str, start: datetime, reason: str
) -> None:
    with pytest.raises(Inexpressible, match=reason):
        from_rrule(rule, start, until_utc)


def test_the_start_own_time_restated_is_fine() -> None:
    rec = from_rrule("FREQ=DAILY;BYHOUR=8;BYMINUTE=0", TUE, until_utc)
    assert rec.type == RecurrenceType.DAILY


def test_weekly_rules_with_weeks_that_matter_say_their_week_start() -> None:
    assert from_rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU", TUE, until_utc).first_day_of_week == 1
    assert from_rrule("FREQ=WEEKLY;INTERVAL=2", TUE, until_utc).first_day_of_week is None
    assert from_rrule("FREQ=WEEKLY;BYDAY=TU,SU", TUE, until_utc).first_day_of_week is None


def test_lunar_calendars_and_task_flags_ride_along() -> None:
    hebrew = Recurrence(
        type=RecurrenceType.YEARLY,
        interval=1,
        month_of_year=6,
        day_of_month=14,
        calendar_type=8,
        is_leap_month=True,
    )
    value, params = to_rrule(hebrew, date(2027, 3, 23), None)
    assert value == "RSCALE=HEBREW;FREQ=YEARLY;BYMONTH=6L;BYMONTHDAY=14"
    assert params == ((X_CALENDAR_TYPE, "8"),)
    assert from_rrule(value, date(2027, 3, 23), until_utc, params) == hebrew
    japanese = Recurrence(type=RecurrenceType.DAILY, interval=1, calendar_type=3)  # an era
    value, params = to_rrule(japanese, TUE.date(), None)
    assert value == "FREQ=DAILY" and params == ((X_CALENDAR_TYPE, "3"),)
    assert from_rrule(value, TUE, until_utc, params) == japanese
    task = TaskRecurrence(
        type=RecurrenceType.WEEKLY, interval=1, day_of_week=4, regenerate=False, dead_occur=True
    )
    value, params = to_rrule(task, TUE.date(), None)
    assert params == ((X_REGENERATE, "0"), (X_DEAD_OCCUR, "1"))
    assert from_rrule(value, TUE, until_utc, params, TaskRecurrence) == task


@pytest.mark.parametrize(
    ("rec", "message"),
    [
        (Recurrence(interval=0), "Interval 0"),
        (Recurrence(type=RecurrenceType.MONTHLY, day_of_month=32), "DayOfMonth 32"),
        (Recurrence(type=RecurrenceType.MONTHLY_NTH, week_of_month=6), "WeekOfMonth 6"),
        (Recurrence(type=RecurrenceType.YEARLY, month_of_year=13), "MonthOfYear 13"),
        (Recurrence(type=RecurrenceType.WEEKLY, day_of_week=200), "DayOfWeek 200"),
        (Recurrence(first_day_of_week=7), "FirstDayOfWeek 7"),
    ],
)
def test_invalid_device_patterns_are_refused(rec: Recurrence, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        to_rrule(rec, TUE.date(), None)


# -- property-based -------------------------------------------------------------------------------

masks = st.integers(min_value=1, max_value=127)
starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2032, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)


@st.composite
def eas_patterns(draw: st.DrawFn) -> Recurrence:
    kind = draw(st.sampled_from(list(RecurrenceType)))
    rec = Recurrence(type=kind, interval=draw(st.integers(1, 4)))
    if kind == RecurrenceType.DAILY:
        return rec
    if kind == RecurrenceType.WEEKLY:
        rec.day_of_week = draw(st.integers(1, 127))
        rec.first_day_of_week = draw(st.none() | st.integers(0, 6))
        return rec
    if kind in (RecurrenceType.YEARLY, RecurrenceType.YEARLY_NTH):
        rec.month_of_year = draw(st.integers(1, 12))
        rec.interval = draw(st.integers(1, 2))
    if kind in (RecurrenceType.MONTHLY, RecurrenceType.YEARLY):
        rec.day_of_month = draw(st.integers(1, 31))
    else:
        rec.week_of_month = draw(st.integers(1, 5))
        rec.day_of_week = draw(masks)
    return rec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eas_patterns(), starts, st.none() | st.integers(1, 30))
def test_eas_to_rrule_gives_the_pattern_occurrences(
    rec: Recurrence, around: datetime, count: int | None
) -> None:
    """EAS -> RRULE: dateutil's occurrences of the RRULE are the oracle's
    occurrences of the pattern; and RRULE -> EAS gives the pattern back."""
    if rec.type == RecurrenceType.YEARLY and rec.month_of_year == 2:
        assume((rec.day_of_month or 1) <= 29)
    rec.occurrences = count
    # the series starts on its first occurrence on or after ``around``
    found = expand(rec, around, None, (around + timedelta(days=366 * 3)).date())
    assume(found)
    start = found[0]
    expected = eas_occurrences(rec, start)
    value, _ = to_rrule(rec, start.date(), None)
    assert rule_occurrences(value, start) == expected, value
    back = from_rrule(value, start, until_utc)
    assert eas_occurrences(back, start) == expected


_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@st.composite
def noisy_rrules(draw: st.DrawFn) -> str:
    """Any mix of parts, most of which EAS cannot express."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY"]))
    parts = [f"FREQ={freq}"]
    days = draw(st.lists(st.sampled_from(_DAYS), min_size=0, max_size=3, unique=True))
    ordinal = draw(st.sampled_from(["", "", "1", "2", "3", "4", "-1", "5"]))
    if days:
        parts.append("BYDAY=" + ",".join(ordinal + d if ordinal else d for d in days))
    if draw(st.booleans()):
        monthdays = draw(
            st.lists(
                st.sampled_from([1, 5, 15, 28, 29, 30, 31, -1]), min_size=1, max_size=2, unique=True
            )
        )
        parts.append("BYMONTHDAY=" + ",".join(map(str, monthdays)))
    if freq == "YEARLY" and draw(st.booleans()):
        parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    if draw(st.integers(0, 4)) == 0:
        parts.append(f"BYSETPOS={draw(st.sampled_from([1, 2, -1]))}")
    return ";".join(parts)


@st.composite
def shaped_rrules(draw: st.DrawFn) -> str:
    """Rules of the shapes EAS has, with their edge values."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    days = draw(st.lists(st.sampled_from(_DAYS), min_size=1, max_size=5, unique=True))
    if freq in ("DAILY", "WEEKLY"):
        if draw(st.booleans()):
            parts.append("BYDAY=" + ",".join(days))
        return ";".join(parts)
    if freq == "YEARLY":
        parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    shape = draw(st.sampled_from(["day", "nth", "setpos", "clamp", "last"]))
    if shape == "day":
        parts.append(f"BYMONTHDAY={draw(st.integers(1, 28))}")
    elif shape == "nth":
        parts.append(f"BYDAY={draw(st.sampled_from(['1', '2', '3', '4', '-1']))}{days[0]}")
    elif shape == "setpos":
        parts += ["BYDAY=" + ",".join(days), f"BYSETPOS={draw(st.sampled_from([1, 2, 3, 4, -1]))}"]
    elif shape == "clamp":
        top = draw(st.integers(29, 31))
        parts += [f"BYMONTHDAY={','.join(str(d) for d in range(28, top + 1))}", "BYSETPOS=-1"]
    else:
        parts.append("BYMONTHDAY=-1")
    return ";".join(parts)


@st.composite
def rrules(draw: st.DrawFn) -> str:
    rule = draw(shaped_rrules() | noisy_rrules())
    if draw(st.booleans()):
        rule += f";INTERVAL={draw(st.integers(1, 3))}"
    if draw(st.booleans()):
        rule += f";WKST={draw(st.sampled_from(_DAYS))}"
    if draw(st.booleans()):
        rule += f";COUNT={draw(st.integers(1, 40))}"
    return rule


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rrules(), starts)
def test_rrule_to_eas_is_exact_or_refused(rule: str, around: datetime) -> None:
    """RRULE -> EAS: either refused, or the EAS pattern's occurrences (the
    oracle's reading) are the RRULE's for six years, and back to an RRULE too."""
    start = around
    try:
        rec = from_rrule(rule, start, until_utc)
    except Inexpressible as e:
        if "start is not an occurrence" not in str(e):
            return  # refused for what the rule is: no need to expand it
        found = rule_occurrences(rule, around)
        assume(found)
        start = found[0]
        rec = from_rrule(rule, start, until_utc)
    expected = rule_occurrences(rule, start)
    assert eas_occurrences(rec, start) == expected, (rule, rec)
    value, _ = to_rrule(rec, start.date(), None)
    assert rule_occurrences(value, start) == expected, (rule, value)


EXPRESSIBLE = [
    "FREQ=DAILY;INTERVAL=2",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR",
    "FREQ=MONTHLY;BYDAY=2TU",
    "FREQ=MONTHLY;BYDAY=-1SU",
    "FREQ=MONTHLY;BYMONTHDAY=10",
    "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25",
]


@pytest.mark.parametrize("rule", EXPRESSIBLE)
def test_common_rules_are_not_refused(rule: str) -> None:
    start = rule_occurrences(rule, datetime(2026, 1, 1, 9))[0]
    rec = from_rrule(rule, start, until_utc)
    assert eas_occurrences(rec, start) == rule_occurrences(rule, start)
