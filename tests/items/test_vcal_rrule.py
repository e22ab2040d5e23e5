"""The vCalendar 1.0 recurrence grammar <-> RRULE: examples and Hypothesis round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.items import Item, loads_one
from calsync.items.vcal import item_to_vcal, rules, vcal_to_items
from calsync.items.vcal.times import fmt_date, fmt_local, fmt_utc
from tests.items.vcal_compare import differences

WEEKDAYS = rules.WEEKDAYS


def _fmt(value: date | datetime) -> str:
    if not isinstance(value, datetime):
        return fmt_date(value)
    return fmt_utc(value) if value.tzinfo is not None else fmt_local(value)


def vcal_event(rule: str, start: date | datetime) -> bytes:
    end = (
        start + timedelta(days=1) if not isinstance(start, datetime) else start + timedelta(hours=1)
    )
    lines = [
        "BEGIN:VCALENDAR", "VERSION:1.0", "BEGIN:VEVENT", "UID:r@test", f"DTSTART:{_fmt(start)}",
        f"DTEND:{_fmt(end)}", f"RRULE:{rule}", "END:VEVENT", "END:VCALENDAR",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def to_item(rule: str, start: date | datetime) -> Item:
    items, errors = vcal_to_items(vcal_event(rule, start))
    assert not errors, errors
    return items[0]


def ical_rule(item: Item) -> str:
    master = item.master()
    assert master is not None
    value = master.value("RRULE")
    assert value is not None
    return value


def vcal_rule(item: Item) -> str:
    (line,) = [
        line for line in item_to_vcal(item).decode().split("\r\n") if line.startswith("RRULE:")
    ]
    return line[len("RRULE:") :]


def dates(rule: str, start: date | datetime, limit: int = 50) -> list[datetime]:
    return rules.occurrences(ical_rule(to_item(rule, start)), start, limit=limit)


# -- the meaning of the grammar, on examples ------------------------------------------------

T = time(10, 0)


@pytest.mark.parametrize(
    ("rule", "start", "expected"),
    [
        ("D2 #3", date(2025, 1, 1), ["2025-01-01", "2025-01-03", "2025-01-05"]),
        ("W1 MO WE #4", date(2025, 1, 6), ["2025-01-06", "2025-01-08", "2025-01-13", "2025-01-15"]),
        # Palm: every two weeks on Su Tu Th Sa (weeks start on Sunday) until Nov 30
        ("W2 SU TU TH SA 19991130T000000", date(1999, 11, 13),
         ["1999-11-13", "1999-11-21", "1999-11-23", "1999-11-25", "1999-11-27"]),
        ("MP1 1+ FR #3", date(2025, 1, 3), ["2025-01-03", "2025-02-07", "2025-03-07"]),
        ("MP1 1- MO #2", date(2025, 1, 27), ["2025-01-27", "2025-02-24"]),
        ("MP2 1+ SU 1- SU #4", date(2025, 1, 5), ["2025-01-05", "2025-01-26", "2025-03-02",
                                                  "2025-03-30"]),
        ("MD1 1 15 #4", date(2025, 1, 1), ["2025-01-01", "2025-01-15", "2025-02-01", "2025-02-15"]),
        ("MD1 1- #3", date(2025, 1, 31), ["2025-01-31", "2025-02-28", "2025-03-31"]),
        ("MD1 LD #2", date(2025, 1, 31), ["2025-01-31", "2025-02-28"]),
        ("YM1 6 7 #4", date(2025, 6, 10), ["2025-06-10", "2025-07-10", "2026-06-10", "2026-07-10"]),
        ("YD1 1 100 #3", date(2025, 1, 1), ["2025-01-01", "2025-04-10", "2026-01-01"]),
        ("W1 FR", date(2025, 1, 3), ["2025-01-03", "2025-01-10"]),  # no count: #2
        ("W1 MO$ TU #2", date(2025, 1, 6), ["2025-01-06", "2025-01-07"]),  # '$' marks only
        ("M1 #3", date(2025, 1, 15), ["2025-01-15", "2025-02-15", "2025-03-15"]),  # Nokia 9110
        ("Y1 #2", date(2025, 1, 15), ["2025-01-15", "2026-01-15"]),
        # count and end date: whichever comes first
        ("D1 #10 20250103T100000", date(2025, 1, 1), ["2025-01-01", "2025-01-02", "2025-01-03"]),
        ("D1 #2 20250110T100000", date(2025, 1, 1), ["2025-01-01", "2025-01-02"]),
    ],
)  # fmt: skip
def test_grammar_meaning(rule: str, start: date, expected: list[str]) -> None:
    got = dates(rule, datetime.combine(start, T))
    assert [d.date().isoformat() for d in got] == expected
    assert vcal_rule(to_item(rule, datetime.combine(start, T))) == rule


def test_forever() -> None:
    item = to_item("D1 #0", datetime(2025, 1, 1, 10))
    assert ical_rule(item) == "FREQ=DAILY"
    assert len(dates("D1 #0", datetime(2025, 1, 1, 10), limit=400)) == 400


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("X1 #2", "is not D, W, MP, MD, YM or YD"),
        ("D0 #2", "interval 0"),
        ("W1 XX", "is not a weekday"),
        ("MP1 7+ FR", "is not an occurrence"),
        ("MP1 1+", "without a weekday"),
        ("MD1 32", "32 is not from 1 to 31"),
        ("YM1 13", "13 is not from 1 to 12"),
        ("D1 #2 #3", "two counts"),
        ("D1 #2 junk", "unexpected 'JUNK'"),
    ],
)
def test_grammar_errors(rule: str, error: str) -> None:
    items, errors = vcal_to_items(vcal_event(rule, datetime(2025, 1, 1, 10)), source="r.vcs")
    assert not items
    (e,) = errors
    assert e.line == 7 and error in str(e) and "r.vcs" in str(e)


# -- Hypothesis: the grammar both ways ---------------------------------------------------------

weekday = st.sampled_from(WEEKDAYS)
mark = st.booleans()


@st.composite
def vcal_rule_texts(draw: st.DrawFn) -> tuple[str, date | datetime]:
    """A vCalendar rule as a device might write it, and its event's DTSTART."""
    kind = draw(st.sampled_from(["floating", "utc", "date"]))
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2030, 12, 31))).replace(
        second=0, microsecond=0
    )
    start: date | datetime
    if kind == "date":
        start = moment.date()
    else:
        start = moment.replace(tzinfo=UTC) if kind == "utc" else moment
    freq = draw(st.sampled_from(["D", "W", "MP", "MD", "YM", "YD"]))
    parts = [f"{freq}{draw(st.integers(1, 12))}"]

    def marked(token: str) -> str:
        return token + "$" if draw(mark) and draw(mark) else token

    if freq == "W":
        parts += [marked(d) for d in draw(st.lists(weekday, unique=True, max_size=7))]
    elif freq == "MP":
        ordinals = draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, -1, -2, -3, -4, -5]),
                                 unique=True, max_size=3))  # fmt: skip
        for n in ordinals:
            parts.append(marked(f"{abs(n)}{'-' if n < 0 else '+'}"))
            parts += [
                marked(d) for d in draw(st.lists(weekday, unique=True, min_size=1, max_size=3))
            ]
    elif freq == "MD":
        days = draw(st.lists(st.integers(-31, 31).filter(bool), unique=True, max_size=4))
        for n in days:
            token = "LD" if n == -1 and draw(mark) else (f"{-n}-" if n < 0 else str(n))
            parts.append(marked(token))
    elif freq == "YM":
        parts += [
            marked(str(n)) for n in draw(st.lists(st.integers(1, 12), unique=True, max_size=4))
        ]
    elif freq == "YD":
        days = draw(st.lists(st.integers(-366, 366).filter(bool), unique=True, max_size=3))
        parts += [marked(f"{-n}-" if n < 0 else str(n)) for n in days]
    end = draw(st.sampled_from(["count", "forever", "until", "default"]))
    if end == "count":
        parts.append(f"#{draw(st.integers(1, 30))}")
    elif end == "forever":
        parts.append("#0")
    elif end == "until":
        last = moment + timedelta(days=draw(st.integers(1, 1500)))
        if kind == "date":
            parts.append(fmt_local(datetime.combine(last.date(), time())))
        elif kind == "utc":
            parts.append(fmt_local(last) + "Z")
        else:
            parts.append(fmt_local(last))
    return " ".join(parts), start


@settings(max_examples=150, deadline=None)
@given(vcal_rule_texts())
def test_vcal_rules_come_back_as_written(case: tuple[str, date | datetime]) -> None:
    """vCalendar -> iCalendar -> vCalendar gives the device its own rule, '$' and all."""
    text, start = case
    item = to_item(text, start)
    assert vcal_rule(item) == text


@settings(max_examples=150, deadline=None)
@given(vcal_rule_texts())
def test_the_grammar_maps_both_ways_without_help(case: tuple[str, date | datetime]) -> None:
    """The RRULE of a vCalendar rule, written back in the grammar (no kept original) and
    read again, recurs on the same dates."""
    text, start = case
    ical = ical_rule(to_item(text, start))
    again = rules.from_ical(ical, start, lambda v: v).format()
    ical_again = ical_rule(to_item(again, start))
    assert rules.occurrences(ical_again, start, 40) == rules.occurrences(ical, start, 40)


@st.composite
def ical_rules(draw: st.DrawFn) -> str:
    """iCalendar rules vCalendar 1.0 can express."""
    form = draw(st.sampled_from(["daily", "weekdays", "weekly", "monthly-day", "monthly-pos",
                                 "monthly-last", "yearly", "yearly-day"]))  # fmt: skip
    interval = draw(st.integers(1, 6))
    if form == "daily":
        parts = [f"FREQ=DAILY;INTERVAL={interval}"]
    elif form == "weekdays":
        parts = ["FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"]
    elif form == "weekly":
        days = draw(st.lists(weekday, unique=True, min_size=1, max_size=4))
        parts = [f"FREQ=WEEKLY;INTERVAL={interval};BYDAY={','.join(days)};WKST=SU"]
    elif form == "monthly-day":
        days = draw(
            st.lists(st.integers(-28, 28).filter(bool), unique=True, min_size=1, max_size=3)
        )
        parts = [f"FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={','.join(map(str, days))}"]
    elif form == "monthly-pos":
        n = draw(st.sampled_from([1, 2, 3, 4, -1, -2]))
        parts = [f"FREQ=MONTHLY;INTERVAL={interval};BYDAY={n}{draw(weekday)}"]
    elif form == "monthly-last":
        parts = [f"FREQ=MONTHLY;BYDAY={draw(weekday)};BYSETPOS=-1"]
    elif form == "yearly":
        months = draw(st.lists(st.integers(1, 12), unique=True, min_size=1, max_size=3))
        parts = [f"FREQ=YEARLY;INTERVAL={interval};BYMONTH={','.join(map(str, months))}"]
    else:
        days = draw(st.lists(st.integers(1, 365), unique=True, min_size=1, max_size=3))
        parts = [f"FREQ=YEARLY;BYYEARDAY={','.join(map(str, days))}"]
    end = draw(st.sampled_from(["count", "until", "forever"]))
    if end == "count":
        parts.append(f"COUNT={draw(st.integers(1, 25))}")
    elif end == "until":
        parts.append(f"UNTIL={draw(st.integers(2026, 2030))}0615T120000Z")
    return ";".join(parts)


@settings(max_examples=150, deadline=None)
@given(ical_rules(), st.sampled_from(["utc", "berlin", "date"]))
def test_ical_rules_through_vcal(rule: str, frame: str) -> None:
    """iCalendar -> vCalendar -> iCalendar keeps the rule's dates, in UTC, in a zone
    (DTSTART local to Europe/Berlin, vCalendar in UTC with DAYLIGHT lines) and all-day."""
    start = {
        "utc": "DTSTART:20250303T093000Z",
        "berlin": "DTSTART;TZID=Europe/Berlin:20250303T093000",
        "date": "DTSTART;VALUE=DATE:20250303",
    }[frame]
    if frame == "date":
        rule = rule.replace("T120000Z", "")
    item = loads_one(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:r@test\r\n"
        f"DTSTAMP:20250101T000000Z\r\n{start}\r\nRRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    text = item_to_vcal(item).decode()
    assert "\r\nRRULE:" in text  # expressible: the device gets a rule
    (back,), errors = vcal_to_items(text.encode())
    assert not errors
    assert differences(item, back) == []
    # and without the kept original, the device's own rule recurs the same way
    stripped = "\r\n".join(
        line for line in text.split("\r\n") if not line.startswith("X-CALSYNC-ICAL-RRULE")
    )
    (device,), _ = vcal_to_items(stripped.encode())
    dtstart = item.to_icalendar().walk("VEVENT")[0]["DTSTART"].dt
    assert rules.occurrences(ical_rule(device), dtstart, 30) == rules.occurrences(rule, dtstart, 30)
