"""The palm store's own rules: flags, untouched bytes, merging a Palm's edit,
configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.config import parse
from calsync.items import Item
from calsync.stores import StoreContext, StoreUnavailable
from calsync.stores.palm import pdb
from calsync.stores.palm.store import PalmStore
from tests.stores.palm import oracle
from tests.stores.palm.test_formats import EVENTS, ical, items, master

pytestmark = pytest.mark.peer  # the Perl oracle (libpalm-perl)


def store(root: Path, **kw: str) -> PalmStore:
    return PalmStore("palm", StoreContext(root / "cache"), root / "palm", **kw)


def test_deleted_and_archived_records_are_absent(tmp_path: Path) -> None:
    path = tmp_path / "palm" / "DatebookDB.pdb"
    oracle.write(path, "datebook", EVENTS[:4])
    oracle.edit(path, delete=[11], archive=[12])
    raw = pdb.parse(path.read_bytes())
    assert {r.uid for r in raw.records if r.deleted} == {11, 12}
    assert {r.uid for r in raw.records if r.archived} == {12}
    assert set(store(tmp_path).list().versions) == {"DatebookDB-13", "DatebookDB-14"}


def test_a_version_ignores_the_dirty_flag_only(tmp_path: Path) -> None:
    path = tmp_path / "palm" / "DatebookDB.pdb"
    oracle.write(path, "datebook", EVENTS[:2])
    before = store(tmp_path).list().versions
    oracle.edit(path, set={11: {}})  # the Palm touched it: dirty, nothing else
    assert pdb.parse(path.read_bytes()).records[0].dirty
    assert store(tmp_path).list().versions == before
    oracle.edit(path, set={11: {"description": "Other"}})
    after = store(tmp_path).list().versions
    assert after["DatebookDB-11"] != before["DatebookDB-11"]
    assert after["DatebookDB-12"] == before["DatebookDB-12"]


def test_writes_keep_other_records_and_the_appinfo_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "palm" / "DatebookDB.pdb"
    oracle.write(path, "datebook", EVENTS, categories=["Unfiled", "Work", "Home", "Kids"])
    oracle.edit(path, set={13: {"note": "dirty one"}}, delete=[14])
    before = pdb.parse(path.read_bytes())
    s = store(tmp_path)
    listing = s.list()
    s.update(
        "DatebookDB-11",
        ical("UID:x\nDTSTART:20250301T100000\nSUMMARY:Changed"),
        listing.versions["DatebookDB-11"],
    )
    s.delete("DatebookDB-15", listing.versions["DatebookDB-15"])
    new_id, _ = s.add(ical("UID:n\nDTSTART:20250302T100000\nSUMMARY:New\nCATEGORIES:kids"))
    s.flush()
    after = pdb.parse(path.read_bytes())
    assert after.appinfo == before.appinfo and after.sortinfo == before.sortinfo
    old = {r.uid: r for r in before.records}
    new = {r.uid: r for r in after.records}
    for uid in set(old) - {11, 15}:
        assert (new[uid].attrs, new[uid].data) == (old[uid].attrs, old[uid].data)
    assert 15 not in new
    assert new[11].attrs == 0 and new[11].data != old[11].data  # clean: the desk has it
    added = new[int(new_id.rpartition("-")[2])]
    assert added.attrs == 3 and added.uid not in old  # category "Kids", clean
    assert after.records[-1].deleted  # deleted records stay at the end
    assert pdb.HEADER.unpack(after.header)[11] > max(old)  # the seed moved past the new id


def test_a_palm_edit_keeps_what_the_palm_cannot_show(tmp_path: Path) -> None:
    rich = ical(
        """UID:rich@example.org
DTSTART;TZID=Europe/Berlin:20250303T090000
DTEND;TZID=Europe/Berlin:20250303T100000
SUMMARY:Planning
DESCRIPTION:Agenda
ATTENDEE;CN=Ann:mailto:ann@example.org
COMMENT:kept aside
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT15M
DESCRIPTION:Default Mozilla Description
END:VALARM
BEGIN:VALARM
ACTION:AUDIO
TRIGGER:-P1D
END:VALARM""",
        tz="""BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE""",
    )
    s = store(tmp_path, timezone="Europe/Berlin")
    s.list()
    id, _ = s.add(rich)
    s.flush()
    assert items(store(tmp_path, timezone="Europe/Berlin"))[id].hash == rich.hash
    path = tmp_path / "palm" / "DatebookDB.pdb"
    uid = int(id.rpartition("-")[2])
    oracle.edit(
        path,
        set={
            uid: {
                "description": "Planning (moved)",
                "start_hour": 11,
                "end_hour": 12,
                "alarm": {"advance": 30, "unit": 0},
            }
        },
    )
    got = master(items(store(tmp_path, timezone="Europe/Berlin"))[id])
    assert got.value("UID") == "rich@example.org"
    assert got.value("SUMMARY") == "Planning (moved)"
    assert got.value("DTSTART") == "20250303T110000"
    assert got.value("ATTENDEE") == "mailto:ann@example.org"
    assert got.value("COMMENT") == "kept aside"
    assert got.value("RRULE") == "FREQ=WEEKLY;BYDAY=MO;COUNT=10"
    assert got.value("DESCRIPTION") == "Agenda"
    alarms = sorted(a.value("TRIGGER") or "" for a in got.children("VALARM"))
    assert alarms == ["-P1D", "-PT30M"]  # the Palm's alarm replaced the one it showed


def test_a_palm_left_alone_reads_as_written_even_with_a_different_zone_name(
    tmp_path: Path,
) -> None:
    s = store(tmp_path)
    s.list()
    item = ical("UID:u1\nDTSTART:20250303T090000Z\nSUMMARY:UTC meeting\nX-FOO:bar")
    id, _ = s.add(item)
    s.flush()
    path = tmp_path / "palm" / "DatebookDB.pdb"
    oracle.edit(path, set={int(id.rpartition("-")[2]): {"note": "from the Palm"}})
    got = master(items(store(tmp_path))[id])
    assert got.value("DTSTART") == "20250303T090000Z"  # the Palm did not move it
    assert got.value("X-FOO") == "bar" and got.value("DESCRIPTION") == "from the Palm"


def test_items_a_palm_cannot_take_are_refused_by_name(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.list()
    journal = Item.from_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VJOURNAL\r\nUID:j\r\nSUMMARY:x\r\n"
        b"END:VJOURNAL\r\nEND:VCALENDAR\r\n"
    )
    from calsync.stores import ItemRejected

    with pytest.raises(ItemRejected, match="VJOURNAL"):
        s.add(journal)
    with pytest.raises(ItemRejected, match="1904-2031"):
        s.add(ical("UID:far\nDTSTART:20450101T100000\nSUMMARY:Too late"))


def test_options_are_validated(tmp_path: Path) -> None:
    ok = '[stores.p]\ntype = "palm"\npath = "/x"\ncreate = true\ntimezone = "Europe/Berlin"\n'
    _, errors = parse(ok)
    assert errors == []
    _, errors = parse('[stores.p]\ntype = "palm"\n')
    assert any("path" in str(e) for e in errors)
    _, errors = parse('[stores.p]\ntype = "palm"\npath = "/x"\ntimezon = "UTC"\n')
    assert any("timezon" in str(e) for e in errors)
    _, errors = parse('[stores.p]\ntype = "palm"\npath = 3\n')
    assert errors
    with pytest.raises(StoreUnavailable, match="Mars/Olympus"):
        store(tmp_path, timezone="Mars/Olympus")
    with pytest.raises(StoreUnavailable, match="klingon"):
        store(tmp_path, encoding="klingon")


def test_an_unreadable_record_is_an_error_for_that_item_only(tmp_path: Path) -> None:
    path = tmp_path / "palm" / "DatebookDB.pdb"
    oracle.write(path, "datebook", EVENTS[:2])
    db = pdb.parse(path.read_bytes())
    db.records[0] = pdb.Record(db.records[0].attrs, db.records[0].uid, b"\x01\x02")
    path.write_bytes(pdb.render(db))
    s = store(tmp_path)
    got = dict((id, it) for id, it, _ in s.get_many(list(s.list().versions)))
    assert not isinstance(got["DatebookDB-11"], Item)
    assert "DatebookDB-11" in str(got["DatebookDB-11"])
    assert isinstance(got["DatebookDB-12"], Item)
