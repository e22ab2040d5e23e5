"""Palm record formats both ways, against the Perl oracle (libpalm-perl).

Perl writes databases of every record kind that calsync must read (and whose
records calsync's codecs must give back byte for byte); calsync writes items
that Perl must read with the right fields.  Palm OS 5 Tasks has no Perl
writer: its fixtures are built here from the layout documented in
``calsync/stores/palm/tasks.py``.
"""

from __future__ import annotations

import struct
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from calsync.items import Item
from calsync.stores import ItemRejected, StoreContext
from calsync.stores.palm import datebook, pdb, tasks, todo
from calsync.stores.palm.store import PalmStore
from tests.stores.palm import oracle

UNTIMED = {"start_hour": 255, "start_minute": 255, "end_hour": 255, "end_minute": 255}

pytestmark = pytest.mark.peer  # the Perl oracle (libpalm-perl)


def on(day: int, month: int = 3, year: int = 2025) -> dict[str, int]:
    return {"day": day, "month": month, "year": year}


def timed(sh: int, sm: int, eh: int, em: int) -> dict[str, int]:
    return {"start_hour": sh, "start_minute": sm, "end_hour": eh, "end_minute": em}


EVENTS: list[dict[str, Any]] = [
    {
        "id": 11,
        "category": 1,
        **on(5),
        **timed(9, 30, 10, 15),
        "description": "Dentist",
        "note": "Bring the card\nand the form",
        "alarm": {"advance": 15, "unit": 0},
    },
    {
        "id": 12,
        **on(7),
        **UNTIMED,
        "description": "Birthday",
        "repeat": {"type": 5, "frequency": 1},
        "alarm": {"advance": 1, "unit": 2},
    },
    {
        "id": 13,
        **on(3),
        **timed(8, 0, 9, 0),
        "description": "Standup",
        "repeat": {
            "type": 2,
            "frequency": 2,
            "repeat_days": [0, 1, 0, 1, 0, 1, 0],
            "start_of_week": 1,
            "end_day": 30,
            "end_month": 6,
            "end_year": 2025,
        },
        "exceptions": [[10, 3, 2025], [24, 3, 2025]],
    },
    {
        "id": 14,
        **on(28),
        **timed(18, 0, 19, 0),
        "description": "Club night",
        "repeat": {"type": 3, "frequency": 1, "weeknum": 4, "daynum": 5},
        "attributes": {"private": 1},
        "alarm": {"advance": 2, "unit": 1},
    },
    {
        "id": 15,
        **on(12),
        **timed(12, 0, 12, 30),
        "description": "Rent",
        "repeat": {"type": 4, "frequency": 1, "end_day": 12, "end_month": 12, "end_year": 2025},
    },
    {
        "id": 16,
        **on(4),
        **timed(7, 0, 7, 45),
        "description": "Gym",
        "repeat": {"type": 1, "frequency": 3},
    },
    {
        "id": 17,
        **on(11),
        **timed(14, 0, 15, 0),
        "description": "Board",
        "repeat": {"type": 3, "frequency": 2, "weeknum": 1, "daynum": 2},
    },
    {"id": 18, **on(1, 1, 2026), **UNTIMED, "description": "Caf\u00e9 d\u00e9j\u00e0 vu"},
]

TODOS: list[dict[str, Any]] = [
    {
        "id": 21,
        "description": "File taxes",
        "note": "forms in the drawer",
        "priority": 1,
        "due_day": 15,
        "due_month": 4,
        "due_year": 2025,
        "category": 2,
    },
    {"id": 22, "description": "Buy milk", "priority": 5, "completed": 1},
    {"id": 23, "description": "Call Bob", "priority": 3, "attributes": {"private": 1}},
]


def store(root: Path, **kw: Any) -> PalmStore:
    return PalmStore("palm", StoreContext(root / "cache"), root / "palm", **kw)


def items(s: PalmStore) -> dict[str, Item]:
    return {id: s.get(id)[0] for id in s.list().versions}


def master(it: Item) -> Any:
    comp = it.master()
    assert comp is not None
    return comp


def test_codecs_give_perl_records_back_byte_for_byte(tmp_path: Path) -> None:
    cal = [dict(e, location=f"Room {e['id']}") for e in EVENTS]
    oracle.write(tmp_path / "DatebookDB.pdb", "datebook", EVENTS)
    oracle.write(tmp_path / "CalendarDB-PDat.pdb", "calendar", cal)
    oracle.write(tmp_path / "ToDoDB.pdb", "todo", TODOS)
    for name, calendar in (("DatebookDB", False), ("CalendarDB-PDat", True)):
        parsed = pdb.parse((tmp_path / f"{name}.pdb").read_bytes())
        assert len(parsed.records) == len(EVENTS)
        for rec in parsed.records:
            appt = datebook.decode(rec.data, calendar=calendar)
            assert datebook.encode(appt, calendar=calendar) == rec.data
            if calendar:
                assert appt.location == f"Room {rec.uid}".encode()
    parsed = pdb.parse((tmp_path / "ToDoDB.pdb").read_bytes())
    for rec in parsed.records:
        assert todo.encode(todo.decode(rec.data)) == rec.data
    for name in ("DatebookDB", "ToDoDB"):
        data = (tmp_path / f"{name}.pdb").read_bytes()
        again = pdb.render(pdb.parse(data), now=0)
        before, after = pdb.parse(data), pdb.parse(again)
        assert [r.data for r in after.records] == [r.data for r in before.records]
        assert pdb.parse(again).appinfo == pdb.parse(data).appinfo


def by_summary(found: dict[str, Item]) -> dict[str, Any]:
    return {master(it).value("SUMMARY"): master(it) for it in found.values()}


def test_perl_written_datebook_reads_as_icalendar(tmp_path: Path) -> None:
    oracle.write(tmp_path / "palm" / "DatebookDB.pdb", "datebook", EVENTS)
    got = by_summary(items(store(tmp_path)))
    dentist = got["Dentist"]
    assert dentist.value("DTSTART") == "20250305T093000"
    assert dentist.value("DTEND") == "20250305T101500"
    assert dentist.value("DESCRIPTION") == "Bring the card\\nand the form"
    assert dentist.value("CATEGORIES") == "Business"
    assert dentist.children("VALARM")[0].value("TRIGGER") == "-PT15M"
    birthday = got["Birthday"]
    assert birthday.get("DTSTART").params == (("VALUE", "DATE"),)
    assert birthday.value("DTSTART") == "20250307" and birthday.value("DTEND") == "20250308"
    assert birthday.value("RRULE") == "FREQ=YEARLY"
    assert birthday.children("VALARM")[0].value("TRIGGER") == "-P1D"
    standup = got["Standup"]
    assert standup.value("RRULE") == (
        "FREQ=WEEKLY;UNTIL=20250630T235959;INTERVAL=2;BYDAY=MO,WE,FR;WKST=MO"
    )
    assert [p.value for p in standup.all("EXDATE")] == ["20250310T080000", "20250324T080000"]
    club = got["Club night"]
    assert club.value("RRULE") == "FREQ=MONTHLY;BYDAY=-1FR"
    assert club.value("CLASS") == "PRIVATE"
    assert club.children("VALARM")[0].value("TRIGGER") == "-PT2H"
    assert got["Rent"].value("RRULE") == "FREQ=MONTHLY;UNTIL=20251212T235959"
    assert got["Gym"].value("RRULE") == "FREQ=DAILY;INTERVAL=3"
    assert got["Board"].value("RRULE") == "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU"
    assert "Caf\u00e9 d\u00e9j\u00e0 vu" in got


def test_timezone_option_gives_tzid_and_utc_until(tmp_path: Path) -> None:
    oracle.write(tmp_path / "palm" / "DatebookDB.pdb", "datebook", EVENTS)
    got = by_summary(items(store(tmp_path, timezone="Europe/Berlin")))
    standup = got["Standup"]
    assert standup.get("DTSTART").param("TZID") == "Europe/Berlin"
    assert "UNTIL=20250630T215959Z" in standup.value("RRULE")
    assert got["Birthday"].get("DTSTART").params == (("VALUE", "DATE"),)


def ical(body: str, kind: str = "VEVENT", tz: str = "") -> Item:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//t//EN",
        *tz.splitlines(),
        f"BEGIN:{kind}",
        "DTSTAMP:20250101T000000Z",
        *body.strip().splitlines(),
        f"END:{kind}",
        "END:VCALENDAR",
    ]
    return Item.from_bytes(("\r\n".join(lines) + "\r\n").encode())


WRITTEN = {
    "timed": ical("""UID:w1
DTSTART:20250305T093000
DTEND:20250305T101500
SUMMARY:Dentist
DESCRIPTION:Bring the card\\nplease
CATEGORIES:personal
CLASS:PRIVATE
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT10M
END:VALARM"""),
    "allday": ical("""UID:w2
DTSTART;VALUE=DATE:20250307
DTEND;VALUE=DATE:20250308
SUMMARY:Birthday
RRULE:FREQ=YEARLY
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-P2D
END:VALARM"""),
    "weekly": ical("""UID:w3
DTSTART:20250303T080000
DURATION:PT1H
SUMMARY:Standup
RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;WKST=SU;COUNT=6
EXDATE:20250305T080000"""),
    "lastfri": ical("""UID:w4
DTSTART:20250328T180000
DTEND:20250328T190000
SUMMARY:Club
RRULE:FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20251231T235959
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT150M
END:VALARM"""),
    "weekdays": ical("""UID:w5
DTSTART:20250303T070000
DTEND:20250303T073000
SUMMARY:Commute
RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"""),
    "thanksgiving": ical("""UID:w6
DTSTART;VALUE=DATE:20251127
SUMMARY:Thanksgiving
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"""),
    "trip": ical("""UID:w7
DTSTART;VALUE=DATE:20250410
DTEND;VALUE=DATE:20250413
SUMMARY:Trip"""),
    "zoned": ical(
        """UID:w8
DTSTART;TZID=America/New_York:20250305T090000
DTEND;TZID=America/New_York:20250305T100000
SUMMARY:Call NY""",
        tz="""BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:STANDARD
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
END:DAYLIGHT
END:VTIMEZONE""",
    ),
}


def test_calsync_written_datebook_read_by_perl(tmp_path: Path) -> None:
    s = store(tmp_path, timezone="Europe/Berlin")
    s.list()
    ids = {name: s.add(it)[0] for name, it in WRITTEN.items()}
    s.flush()
    got = oracle.read(tmp_path / "palm" / "DatebookDB.pdb")
    assert got["creator"] == "date" and got["categories"][:3] == ["Unfiled", "Business", "Personal"]
    recs = {r["id"]: r for r in got["records"]}
    rec = {name: recs[int(id.rpartition("-")[2])] for name, id in ids.items()}
    t = rec["timed"]
    assert (t["year"], t["month"], t["day"]) == (2025, 3, 5)
    assert (t["start_hour"], t["start_minute"], t["end_hour"], t["end_minute"]) == (9, 30, 10, 15)
    assert t["description"] == "Dentist" and t["note"] == "Bring the card\nplease"
    assert t["alarm"] == {"advance": 10, "unit": 0}
    assert t["category"] == 2 and t["attributes"] == {"private": 1}
    a = rec["allday"]
    assert a["start_hour"] == 255 and a["repeat"]["type"] == 5 and "end_day" not in a["repeat"]
    assert a["alarm"] == {"advance": 2, "unit": 2}
    w = rec["weekly"]
    assert w["repeat"]["type"] == 2 and w["repeat"]["frequency"] == 2
    assert w["repeat"]["repeat_days"] == [0, 1, 0, 1, 0, 1, 0]
    assert w["repeat"]["start_of_week"] == 0
    assert (w["repeat"]["end_year"], w["repeat"]["end_month"], w["repeat"]["end_day"]) == (
        2025,
        3,
        21,
    )  # COUNT=6: 3, 5, 7, 17, 19, 21 March (an EXDATE does not count)
    assert w["exceptions"] == [[5, 3, 2025]]
    assert (w["end_hour"], w["end_minute"]) == (9, 0)
    c = rec["lastfri"]
    assert c["repeat"]["type"] == 3 and c["repeat"]["weeknum"] == 4 and c["repeat"]["daynum"] == 5
    assert c["alarm"] == {"advance": 3, "unit": 1}  # 150 minutes: rounded up to hours
    d = rec["weekdays"]
    assert d["repeat"]["type"] == 2 and d["repeat"]["repeat_days"] == [0, 1, 1, 1, 1, 1, 0]
    g = rec["thanksgiving"]
    assert g["repeat"]["type"] == 3 and g["repeat"]["frequency"] == 12
    assert (g["repeat"]["weeknum"], g["repeat"]["daynum"]) == (3, 4)
    trip = rec["trip"]
    assert trip["repeat"]["type"] == 1 and trip["repeat"]["end_day"] == 12
    ny = rec["zoned"]
    assert (ny["start_hour"], ny["end_hour"]) == (15, 16)  # 9:00 New York is 15:00 in Berlin
    # and every item reads back as it was written
    back = items(s)
    for name, id in ids.items():
        assert back[id].hash == WRITTEN[name].hash


def test_calendar_pdat_location_and_blobs_both_ways(tmp_path: Path) -> None:
    events = [
        dict(EVENTS[0], location="Main St 5"),
        dict(
            EVENTS[2],
            location="Room 2",
            timezone={
                "offset": 60,
                "start_hour": 2,
                "start_daynum": 0,
                "start_weeknum": 4,
                "start_month": 2,
                "end_hour": 3,
                "end_daynum": 0,
                "end_weeknum": 4,
                "end_month": 9,
                "dst_adjustment": 60,
                "country": 23,
                "flags": 0,
                "custom": 0,
                "name": "Berlin",
            },
        ),
    ]
    path = tmp_path / "palm" / "CalendarDB-PDat.pdb"
    oracle.write(path, "calendar", events)
    s = store(tmp_path)
    found = items(s)
    got = by_summary(found)
    assert got["Dentist"].value("LOCATION") == "Main St 5"
    assert got["Standup"].value("LOCATION") == "Room 2"
    standup_id = next(i for i, it in found.items() if master(it).value("SUMMARY") == "Standup")
    version = s.list().versions[standup_id]
    changed = ical("""UID:x
DTSTART:20250303T083000
DTEND:20250303T093000
SUMMARY:Standup moved
LOCATION:Room 3""").with_uid(found[standup_id].uid)
    s.update(standup_id, changed, version)
    s.add(
        ical("UID:n1\nDTSTART:20250320T100000\nDTEND:20250320T110000\nSUMMARY:New\nLOCATION:Cafe")
    )
    s.flush()
    recs = {r["description"]: r for r in oracle.read(path)["records"]}
    assert oracle.read(path)["creator"] == "PDat"
    assert recs["Standup moved"]["location"] == "Room 3"
    assert recs["Standup moved"]["start_minute"] == 30
    assert recs["New"]["location"] == "Cafe"
    raw = {r.uid: r.data for r in pdb.parse(path.read_bytes()).records}
    kept = datebook.decode(raw[int(standup_id.rpartition("-")[2])], calendar=True)
    assert kept.tail.startswith(b"Bd00")  # the event's time zone blob survived the rewrite


def test_todos_both_ways(tmp_path: Path) -> None:
    oracle.write(tmp_path / "palm" / "ToDoDB.pdb", "todo", TODOS)
    s = store(tmp_path)
    got = by_summary(items(s))
    taxes = got["File taxes"]
    assert taxes.name == "VTODO"
    assert taxes.get("DUE").params == (("VALUE", "DATE"),) and taxes.value("DUE") == "20250415"
    assert taxes.value("PRIORITY") == "1" and taxes.value("STATUS") == "NEEDS-ACTION"
    assert taxes.value("DESCRIPTION") == "forms in the drawer"
    assert taxes.value("CATEGORIES") == "Personal"
    milk = got["Buy milk"]
    assert milk.value("STATUS") == "COMPLETED" and milk.value("PRIORITY") == "9"
    assert got["Call Bob"].value("CLASS") == "PRIVATE"
    new = ical(
        """UID:t9
SUMMARY:Renew passport
DESCRIPTION:photo first
DUE:20250601T170000Z
PRIORITY:4
CATEGORIES:Business
STATUS:COMPLETED""",
        kind="VTODO",
    )
    id, _ = s.add(new)
    s.flush()
    rec = oracle.records(tmp_path / "palm" / "ToDoDB.pdb")[int(id.rpartition("-")[2])]
    assert rec["description"] == "Renew passport" and rec["note"] == "photo first"
    assert (rec["due_year"], rec["due_month"], rec["due_day"]) == (2025, 6, 1)
    assert rec["priority"] == 2 and rec["completed"] == 1 and rec["category"] == 1
    assert items(s)[id].hash == new.hash


def ptod(task: tasks.Task, record_flags: int = 0) -> bytes:
    """A Tasks record laid out as tasks.py documents it (no Perl writer exists)."""
    flags = 0
    out = b""
    if task.due is not None:
        flags |= tasks.DUE
        out += struct.pack(">H", datebook.pack_date(task.due))
    if task.completed_on is not None:
        flags |= tasks.COMPLETION
        out += struct.pack(">H", datebook.pack_date(task.completed_on))
    if task.alarm is not None:
        flags |= tasks.ALARM
        out += struct.pack(">BBH", *task.alarm)
    if task.repeat is not None and task.repeat_start is not None:
        flags |= tasks.REPEAT
        out += struct.pack(">H", datebook.pack_date(task.repeat_start)) + task.repeat.pack()
    if task.description:
        flags |= tasks.DESCRIPTION
        out += task.description + b"\0"
    if task.note:
        flags |= tasks.NOTE
        out += task.note + b"\0"
    return struct.pack(">HHH", flags, record_flags, task.priority) + out


def test_palm_os5_tasks_are_read_and_never_written(tmp_path: Path) -> None:
    one = tasks.Task()
    one.description, one.note, one.priority = b"Water plants", b"the big ones", 2
    one.due = date(2025, 5, 2)
    one.alarm = (9, 0, 1)
    one.repeat_start = date(2025, 5, 2)
    one.repeat = datebook.Repeat(datebook.WEEKLY, None, 1, 1 << 5, 0)
    two = tasks.Task()
    two.description, two.priority = b"Done already", 4
    two.completed_on = date(2025, 4, 30)
    appinfo = pdb.standard_appinfo(["Unfiled", "Home"], "cp1252", b"\0" * 6)
    db = pdb.new_database("TasksDB-PTod", b"PTod", appinfo)
    db.records = [pdb.Record(0x41, 7, ptod(one)), pdb.Record(0, 8, ptod(two))]
    path = tmp_path / "palm" / "TasksDB-PTod.pdb"
    path.parent.mkdir(parents=True)
    data = pdb.render(db)
    path.write_bytes(data)
    s = store(tmp_path)
    got = by_summary(items(s))
    water = got["Water plants"]
    assert water.value("DUE") == "20250502" and water.value("PRIORITY") == "3"
    assert water.value("CATEGORIES") == "Home" and water.value("DESCRIPTION") == "the big ones"
    assert water.value("RRULE") == "FREQ=WEEKLY;BYDAY=FR"
    alarm = water.children("VALARM")[0].get("TRIGGER")
    assert alarm.value == "-PT15H" and alarm.param("RELATED") == "END"
    done = got["Done already"]
    assert done.value("STATUS") == "COMPLETED" and done.value("COMPLETED") == "20250430T000000Z"
    with pytest.raises(ItemRejected, match="read only"):
        s.add(ical("UID:t1\nSUMMARY:New task", kind="VTODO"))
    listing = s.list()
    id = next(iter(listing.versions))
    with pytest.raises(ItemRejected):
        s.delete(id, listing.versions[id])
    s.flush()
    s.end_sync({id: v for id, v in listing.versions.items()})
    assert path.read_bytes() == data  # not one byte changed, dirty flag included


@pytest.mark.timeout(120)
def test_a_count_past_the_expansion_budget_repeats_without_an_end() -> None:
    """Issue 19: expansions stop at a budget (``items.expansion``); a COUNT past it
    must not end the Palm's repeat at the last occurrence that was computed."""
    from calsync.items import expansion
    from calsync.stores.palm import ical

    ctx = ical.Context(None, "cp1252", [], "20250101T000000Z")

    def repeat(count: int) -> datebook.Repeat | None:
        item = Item.from_bytes(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:r@x\r\n"
            b"DTSTAMP:20250101T000000Z\r\nDTSTART;VALUE=DATE:20250101\r\n"
            + f"RRULE:FREQ=DAILY;COUNT={count}\r\n".encode()
            + b"SUMMARY:Daily\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        appt, _ = ical.appointment(item, ctx)
        return appt.repeat

    short = repeat(10)
    assert short is not None and short.end == date(2025, 1, 10)
    long = repeat(100_000_000)
    assert long is not None and long.end is None  # not 20,000 days after the start
    assert expansion.MAX_OCCURRENCES < 100_000_000
