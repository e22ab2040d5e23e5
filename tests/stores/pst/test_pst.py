"""The pst store and ``calsync import FILE.ost`` against a public Outlook file.

The file (``data/SOURCES.md``) is checked three ways: against what libpff's own
exporter ``pffexport`` (Debian ``pff-tools``) says each appointment holds, against
the iCalendar invitation a Google Calendar meeting carries as its attachment,
and against what its appointments' subjects describe ("repeats every monday
for 10 weeks").  The store is read only: the conformance suite's write tests do
not apply; its read contract (list, get, versions, errors) is tested here.
"""

from __future__ import annotations

import lzma
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import icalendar
import pytest

from calsync.items import Item, ItemError
from calsync.outlook import pst as pstmod
from calsync.outlook.store import PstStore, read_items
from calsync.stores import ItemRejected, StoreContext, StoreUnavailable
from tests.conftest import ROOT, event

DATA = Path(__file__).parent / "data" / "pstextractortest.ost.xz"
CALENDAR = "Root - Mailbox/IPM_SUBTREE/Calendar"


@pytest.fixture(scope="module")
def ost(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ost") / "pstextractortest.ost"
    path.write_bytes(lzma.decompress(DATA.read_bytes()))
    return path


@pytest.fixture(scope="module")
def items(ost: Path) -> dict[str, icalendar.Calendar]:
    found, errors = read_items(ost, "test.ost")
    assert errors == []
    return {str(i.to_icalendar().walk("VEVENT")[0]["SUMMARY"]): i.to_icalendar() for i in found}


def vevent(cal: icalendar.Calendar) -> icalendar.Event:
    return cal.walk("VEVENT")[0]


def test_every_appointment_is_read(ost: Path) -> None:
    found, errors = read_items(ost, "test.ost")
    assert errors == []
    assert len(found) == 169  # 9 in Calendar, 160 in "United States holidays"
    assert len({i.uid for i in found}) == 169
    again, _ = read_items(ost, "test.ost")  # the same file reads the same, byte for byte
    assert sorted(i.raw for i in again) == sorted(i.raw for i in found)


def test_series_zones_and_all_day(items: dict[str, icalendar.Calendar]) -> None:
    weekly = vevent(items["repeats every monday for 10 weeks"])
    assert str(weekly["DTSTART"].params["TZID"]) == "America/Los_Angeles"
    assert weekly["DTSTART"].dt.replace(tzinfo=None) == datetime(2021, 8, 9, 10, 0)
    assert weekly["RRULE"]["FREQ"] == ["WEEKLY"] and weekly["RRULE"]["BYDAY"] == ["MO"]
    assert weekly["RRULE"]["COUNT"] == [10]
    daily = vevent(items["repeats for 3 days"])
    assert daily["RRULE"]["FREQ"] == ["DAILY"] and daily["RRULE"]["COUNT"] == [3]
    yearly = vevent(items["Occurs every August 13 effective 8/13/2021 from 10:00 AM to 10:30 AM"])
    assert yearly["RRULE"]["BYMONTH"] == [8] and yearly["RRULE"]["BYMONTHDAY"] == [13]
    assert "COUNT" not in yearly["RRULE"] and "UNTIL" not in yearly["RRULE"]
    assert yearly["DTSTART"].dt.astimezone(UTC) == datetime(2021, 8, 13, 17, 0, tzinfo=UTC)
    three = vevent(items["all day event for 3 days"])
    assert (str(three["DTSTART"].to_ical()), str(three["DTEND"].to_ical())) == (
        "b'20210815'",
        "b'20210818'",
    )
    assert three["TRANSP"] == "TRANSPARENT"  # free, as Outlook shows it
    # the VTIMEZONE a zoned event refers to travels with it
    zones = [str(z["TZID"]) for z in items["repeats for 3 days"].walk("VTIMEZONE")]
    assert zones == ["America/Los_Angeles"]


def test_meetings(ost: Path, items: dict[str, icalendar.Calendar]) -> None:
    own = vevent(items["meeting with attachments (jpg, pdf, text)"])
    assert str(own["LOCATION"]) == "home office"
    assert str(own["ORGANIZER"]) == "mailto:pstextractortest@outlook.com"
    attendee = own["ATTENDEE"]
    assert str(attendee) == "mailto:epfromer@gmail.com"
    assert attendee.params["PARTSTAT"] == "ACCEPTED"
    # A Google invitation: the UID is the one of the invite.ics Outlook keeps attached
    invited = vevent(items["meeting from Ed"])
    out = ost.parent / "oracle"
    export = _pffexport(ost, out)
    invite = (export / CALENDAR / "Appointment00005" / "Attachments" / "1_invite.ics").read_bytes()
    assert str(invited["UID"]) == str(icalendar.Calendar.from_ical(invite).walk("VEVENT")[0]["UID"])
    assert str(invited["ORGANIZER"]) == "mailto:epfromer@gmail.com"
    # the reminder: PidLidReminderDelta minutes before
    alarm = vevent(items["repeats every monday for 10 weeks"]).walk("VALARM")[0]
    assert alarm["TRIGGER"].dt.total_seconds() == -15 * 60


def _pffexport(ost: Path, out: Path) -> Path:
    export = Path(str(out) + ".export")
    if not export.exists():
        tool = shutil.which("pffexport")
        assert tool, "pffexport (Debian pff-tools) is not installed: scripts/test.sh installs it"
        subprocess.run([tool, "-q", "-t", str(out), str(ost)], check=True, capture_output=True)
    return export


def _oracle(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith(" "):
            fields.setdefault(key.strip(), value.strip())
    return fields


def _utc(text: str) -> datetime:
    text = re.sub(r"\.\d+ UTC$", "", text)
    return datetime.strptime(text, "%b %d, %Y %H:%M:%S").replace(tzinfo=UTC)


@pytest.mark.peer
def test_against_pffexport(ost: Path, items: dict[str, icalendar.Calendar]) -> None:
    """Subject, start, end, location and whether it repeats, as libpff's exporter says."""
    export = _pffexport(ost, ost.parent / "oracle")
    folders = [export / CALENDAR, export / CALENDAR / "United States holidays"]
    checked = repeating = 0
    for folder in folders:
        for txt in sorted(folder.glob("Appointment*/Appointment.txt")):
            said = _oracle(txt.read_text(errors="replace"))
            cal = items[said["Subject"]]
            ev = vevent(cal)
            start, end = ev["DTSTART"].dt, ev["DTEND"].dt
            if not isinstance(start, datetime):  # all day: local midnights of the zone
                assert (end - start).days * 1440 == int(said["Duration"].split()[0])
            else:
                assert start.astimezone(UTC) == _utc(said["Start time"]), said["Subject"]
                assert end.astimezone(UTC) == _utc(said["End time"]), said["Subject"]
            assert str(ev.get("LOCATION", "")) == said.get("Location", "")
            if said.get("Recurrence pattern"):  # its text (PidLidRecurrencePattern), if any
                assert "RRULE" in ev, said["Subject"]
                repeating += 1
            checked += 1
    assert (checked, repeating) == (169, 3)
    # 13 holidays repeat yearly without a description text (PidLidRecurring, and a
    # yearly PidLidAppointmentRecur): Flag Day on June 14 among them
    flag = vevent(items["Flag Day"])
    assert flag["RRULE"]["FREQ"] == ["YEARLY"] and flag["RRULE"]["BYMONTHDAY"] == [14]
    assert sum("RRULE" in vevent(c) for c in items.values()) == 16


def test_store_reads_and_refuses_writes(ost: Path, tmp_path: Path) -> None:
    store = PstStore("outlook", StoreContext(tmp_path / "cache"), ost, folders=["Calendar"])
    listing = store.list()
    assert len(listing.versions) == 9 and listing.errors == {}
    got = dict((id, item) for id, item, _ in store.get_many(listing.versions))
    assert all(not isinstance(i, ItemError) for i in got.values())
    id = next(iter(listing.versions))
    item, version = store.get(id)
    assert version == listing.versions[id]
    assert store.list().versions == listing.versions  # unchanged file, same listing
    stamp = item.to_icalendar().walk("VEVENT")[0]["DTSTAMP"].dt.timestamp()
    assert int(store.modified(id) or 0) == int(stamp)  # PidTagLastModificationTime
    with pytest.raises(ItemRejected, match="read only"):
        store.add(Item.from_bytes(event("new@test")))
    with pytest.raises(ItemRejected, match="read only"):
        store.update(id, item, version)
    with pytest.raises(ItemRejected, match="read only"):
        store.delete(id, version)
    store.close()
    everything = PstStore("outlook", StoreContext(tmp_path / "cache"), ost)
    assert len(everything.list().versions) == 169
    missing = PstStore("outlook", StoreContext(tmp_path / "cache"), ost, folders=["Nope"])
    with pytest.raises(StoreUnavailable, match="no calendar or task folder 'Nope'"):
        missing.list()


def test_without_libpff(monkeypatch: pytest.MonkeyPatch, ost: Path, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pypff", None)
    with pytest.raises(pstmod.PstError, match=r"calsync\[pst\]"):
        pstmod.open_pst(ost)
    store = PstStore("outlook", StoreContext(tmp_path), ost)
    with pytest.raises(StoreUnavailable, match=r"libpff-python.*calsync\[pst\]"):
        store.list()


def test_not_a_pst(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pst"
    bogus.write_bytes(b"!BDN" + b"\0" * 600)
    found, errors = read_items(bogus, "x.pst")
    assert found == [] and len(errors) == 1 and "not a readable .pst/.ost" in str(errors[0])


def _calsync(tmp: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "HOME": str(tmp), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "calsync", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_import_and_one_way_sync_end_to_end(ost: Path, tmp_path: Path) -> None:
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[general]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[stores.cal]\ntype = "vdir"\npath = "{vdir}"\n'
        f'[stores.other]\ntype = "vdir"\npath = "{tmp_path / "other"}"\n'
        f'[stores.outlook]\ntype = "pst"\npath = "{ost}"\n'
        '[pairs.p]\na = "outlook"\nb = "other"\n'
    )
    (tmp_path / "other").mkdir()
    done = _calsync(tmp_path, config, "import", str(ost), "--into", "cal")
    assert done.returncode == 0, done.stderr
    assert "169 added, 0 updated, 0 unchanged, 0 failed" in done.stdout
    files = sorted(vdir.glob("*.ics"))
    assert len(files) == 169
    weekly = [f for f in files if b"SUMMARY:repeats every monday" in f.read_bytes()]
    assert len(weekly) == 1 and b"RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10" in weekly[0].read_bytes()
    again = _calsync(tmp_path, config, "import", str(ost), "--into", "cal")
    assert "0 added, 0 updated, 169 unchanged, 0 failed" in again.stdout, again.stdout
    synced = _calsync(tmp_path, config, "sync", "--mode", "one-way-a-to-b", "p")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    other = sorted(p.read_bytes() for p in (tmp_path / "other").glob("*.ics"))
    assert other == sorted(f.read_bytes() for f in files)  # the same items as the import
    quiet = _calsync(tmp_path, config, "sync", "p")
    assert quiet.returncode == 0 and "nothing to do" in quiet.stdout, quiet.stdout
