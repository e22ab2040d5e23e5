"""calsync writes the rows Thunderbird itself writes, and reads back what it wrote.

The reference: ``sample.ics`` as imported by the real Thunderbird 153 into
the "Work" calendar of ``samples/demo-utc`` (untouched after the import).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from calsync.items import Item, items_from_stream, loads_one
from calsync.items.lines import Prop, parse, parse_prop
from calsync.stores.thunderbird import write
from calsync.stores.thunderbird.read import CalendarRows, load_calendar, to_ical
from calsync.stores.thunderbird.rows import CompRows, ItemRows
from calsync.stores.thunderbird.schema import Flag
from calsync.stores.thunderbird.snapshot import snapshot
from tests.stores.thunderbird.helpers import SAMPLES, WORK_ID
from tests.stores.thunderbird.semantic import components


@pytest.fixture(scope="module")
def thunderbird_rows(tmp_path_factory: pytest.TempPathFactory) -> CalendarRows:
    with snapshot(
        SAMPLES / "demo-utc" / "local.sqlite", tmp_path_factory.mktemp("snap"), check=False
    ) as conn:
        return load_calendar(conn, WORK_ID)


def sample_items() -> list[Item]:
    items, errors = items_from_stream((SAMPLES / "sample.ics").read_bytes())
    assert not errors
    return items


def _line(text: str) -> tuple[str, tuple[str, ...], str]:
    prop = parse_prop(text.replace("\r\n ", "").strip("\r\n"))
    params = tuple(
        sorted(
            f"{k}={v}"
            for k, v in prop.params
            if (prop.name, k, v) != ("TRIGGER", "RELATED", "START")
        )
    )
    value = prop.value
    if prop.name in ("RRULE", "EXRULE"):
        value = ";".join(sorted(value.split(";")))
    return prop.name, params, value


def _alarm(text: str) -> list[tuple[str, tuple[str, ...], str]]:
    comp = parse(text.replace("\r\n ", ""))[0]
    return sorted(_line(p.to_line()) for p in comp.props)


def _comp(c: CompRows) -> dict[str, object]:
    return {
        "main": c.main,
        "properties": Counter(c.properties),
        "parameters": Counter(c.parameters),
        "attendees": sorted(_line(t) for t in c.attendees),
        "attachments": sorted(_line(t) for t in c.attachments),
        "relations": sorted(_line(t) for t in c.relations),
        "alarms": sorted(str(_alarm(t)) for t in c.alarms),
    }


def _norm(rows: ItemRows) -> dict[str, object]:
    return {
        "kind": rows.kind,
        "master": _comp(rows.master),
        "exceptions": [_comp(e) for e in rows.exceptions],
        "recurrence": sorted(_line(t) for t in rows.recurrence),
    }


@pytest.mark.parametrize("item", sample_items(), ids=lambda i: i.uid)
def test_rows_as_thunderbird_writes_them(thunderbird_rows: CalendarRows, item: Item) -> None:
    theirs = thunderbird_rows.items[item.uid]
    ours = write.item_rows(item)
    assert _norm(ours) == _norm(theirs)


def test_flags_seen_in_real_databases(thunderbird_rows: CalendarRows) -> None:
    """The flag values the note observed, computed by our writer."""
    by_uid = {i.uid: write.item_rows(i) for i in sample_items()}
    assert by_uid["utc-timed@calsync.test"].master.flags == 260
    assert by_uid["berlin-timed@calsync.test"].master.flags == 70
    assert by_uid["weekly@calsync.test"].master.flags == 308
    assert by_uid["allday-exception@calsync.test"].exceptions[0].flags == 524
    assert by_uid["yearly-allday@calsync.test"].master.flags == 28
    assert by_uid["yearly-allday@calsync.test"].master.main["event_start"] == -151459200000000


def _without_original(rows: ItemRows) -> Item:
    return to_ical(rows, original=False)


ROUND_TRIP = [
    # a timed task with alarm, attendees, relation, categories, non-ASCII, escaped text
    """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VTODO
UID:task-1@calsync.test
DTSTAMP:20260101T080000Z
CREATED:20260101T080000Z
LAST-MODIFIED:20260102T080000Z
DTSTART;TZID=Europe/Berlin:20260301T090000
DUE;TZID=Europe/Berlin:20260305T170000
SUMMARY:Grüße an Zoë\\, 日本語\\; done?
DESCRIPTION:two\\nlines\\; with\\, punctuation
PRIORITY:3
STATUS:IN-PROCESS
PERCENT-COMPLETE:40
CLASS:CONFIDENTIAL
CATEGORIES:Büro,a\\,b
ORGANIZER;CN=Örgan:mailto:org@calsync.test
ATTENDEE;CN=Ann;PARTSTAT=ACCEPTED:mailto:ann@calsync.test
RELATED-TO;RELTYPE=PARENT:parent@calsync.test
X-FOO;X-BAR=baz;X-Q="a:b":raw\\,value
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT30M
DESCRIPTION:Erinnerung
END:VALARM
END:VTODO
END:VCALENDAR
""",
    # a recurring all-day task with an override and exdate
    """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VTODO
UID:task-2@calsync.test
DTSTAMP:20260101T080000Z
DTSTART;VALUE=DATE:20260302
DUE;VALUE=DATE:20260303
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;VALUE=DATE:20260316
SUMMARY:Weekly chore
END:VTODO
BEGIN:VTODO
UID:task-2@calsync.test
DTSTAMP:20260101T080000Z
RECURRENCE-ID;VALUE=DATE:20260309
DTSTART;VALUE=DATE:20260310
DUE;VALUE=DATE:20260311
SUMMARY:Weekly chore (late)
END:VTODO
END:VCALENDAR
""",
    # floating event, a completed all-day task, a foreign timezone
    """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VTIMEZONE
TZID:Custom Zone
BEGIN:STANDARD
DTSTART:19700101T000000
TZOFFSETFROM:+0530
TZOFFSETTO:+0530
TZNAME:CZT
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:foreign-tz@calsync.test
DTSTAMP:20260101T080000Z
DTSTART;TZID=Custom Zone:20260401T100000
DTEND;TZID=Custom Zone:20260401T110000
SUMMARY:Foreign zone
END:VEVENT
END:VCALENDAR
""",
]


@pytest.mark.parametrize("text", ROUND_TRIP, ids=["task", "recurring-task", "foreign-tz"])
def test_rows_read_back_as_written(tmp_path: Path, text: str) -> None:
    """Without calsync's record of the original, the rows alone give the same item."""
    item = loads_one(text)
    rows = write.item_rows(item)
    assert components(_without_original(rows)) == components(item)
    assert to_ical(rows).raw == item.raw  # with the record: byte for byte


def test_foreign_timezone_stored_inline() -> None:
    rows = write.item_rows(loads_one(ROUND_TRIP[2]))
    tz = rows.master.main["event_start_tz"]
    assert isinstance(tz, str) and tz.startswith("BEGIN:VTIMEZONE") and "Custom Zone" in tz
    assert rows.master.main["event_start"] == 1775017800000000  # 10:00 +05:30 = 04:30Z
    back = _without_original(rows)
    assert any(t.value("TZID") == "Custom Zone" for t in back.timezones())


def test_what_thunderbird_changes_on_the_way() -> None:
    """Forms Thunderbird normalizes: DURATION -> end, multi-value EXDATE split, no end."""
    item = loads_one(
        """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VEVENT
UID:norm@calsync.test
DTSTART:20260301T100000Z
DURATION:PT90M
RRULE:FREQ=DAILY;COUNT=5
EXDATE:20260302T100000Z,20260303T100000Z
SUMMARY:Normalized
DESCRIPTION:
END:VEVENT
END:VCALENDAR
"""
    )
    rows = write.item_rows(item)
    m = rows.master.main
    assert m["event_end"] == m["event_start"] + 90 * 60 * 1_000_000  # type: ignore[operator]
    assert rows.recurrence == [
        "RRULE:FREQ=DAILY;COUNT=5\r\n",
        "EXDATE:20260302T100000Z\r\n",
        "EXDATE:20260303T100000Z\r\n",
    ]
    assert ("DURATION", "PT90M") in rows.master.properties
    assert not any(k == "DESCRIPTION" for k, _ in rows.master.properties)  # empty: dropped
    back = _without_original(rows).master()
    assert back is not None and back.value("DURATION") == "PT90M" and back.get("DTEND") is None


def test_orphan_overrides_get_thunderbirds_faked_master() -> None:
    item = loads_one(
        """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//t//EN
BEGIN:VEVENT
UID:orphan@calsync.test
RECURRENCE-ID:20260301T100000Z
DTSTART:20260301T110000Z
DTEND:20260301T120000Z
SUMMARY:Only this instance
END:VEVENT
END:VCALENDAR
"""
    )
    rows = write.item_rows(item)
    assert rows.master.flags & Flag.HAS_RECURRENCE and rows.master.flags & Flag.HAS_EXCEPTIONS
    assert ("X-MOZ-FAKED-MASTER", "1") in rows.master.properties
    assert rows.recurrence == ["RDATE:20260301T100000Z\r\n"]
    assert components(_without_original(rows)) == components(item)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BEGIN:VJOURNAL\nUID:j@x\nDTSTAMP:20260101T000000Z\nEND:VJOURNAL", "VJOURNAL"),
        (
            "BEGIN:VEVENT\nUID:tz@x\nDTSTART;TZID=Nowhere/City:20260101T100000\nEND:VEVENT",
            "Nowhere/City",
        ),
        (
            "BEGIN:VEVENT\nUID:ov@x\nDTSTART:20260101T100000Z\nEND:VEVENT\n"
            "BEGIN:VEVENT\nUID:ov@x\nRECURRENCE-ID:20260102T100000Z\nDTSTART:20260102T110000Z\nEND:VEVENT",
            "no RRULE",
        ),
    ],
    ids=["journal", "unknown-tz", "override-without-rule"],
)
def test_unstorable_items_are_refused_with_a_reason(text: str, message: str) -> None:
    item = loads_one(f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//EN\n{text}\nEND:VCALENDAR\n")
    with pytest.raises(write.Unstorable, match=message):
        write.item_rows(item)


def test_text_is_stored_decoded() -> None:
    rows = write.item_rows(loads_one(ROUND_TRIP[0]))
    m = rows.master
    assert m.main["title"] == "Grüße an Zoë, 日本語; done?"
    assert ("DESCRIPTION", "two\nlines; with, punctuation") in m.properties
    assert ("CATEGORIES", "Büro,a\\,b") in m.properties
    assert ("X-FOO", "raw\\,value") in m.properties  # not a text property: kept as written
    assert ("X-FOO", "X-Q", "a:b") in m.parameters
    assert m.main["privacy"] == "CONFIDENTIAL" and ("CLASS", "CONFIDENTIAL") in m.properties
    assert m.attendees[-1].startswith("ORGANIZER")  # organizer last, as Thunderbird
    assert (
        m.flags == Flag.HAS_PROPERTIES | Flag.HAS_ATTENDEES | Flag.HAS_RELATIONS | Flag.HAS_ALARMS
    )
    assert isinstance(Prop, type)
