"""Refusals and bad input: clear errors naming the item, the rest continues, nothing lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import icalendar
import pytest

from calsync.config import load
from calsync.items import ItemError, loads_one
from calsync.stores import ItemRejected, StoreUnavailable
from calsync.stores.thunderbird import running, times
from calsync.sync.runner import run_pair
from tests.conftest import event
from tests.stores.thunderbird.helpers import HOME_ID, TEST_ID, make_profile, registry, store

DB = Path("calendar-data") / "local.sqlite"


@pytest.mark.parametrize(
    ("version", "message"),
    [(24, "newer Thunderbird"), (22, "upgrades it on its next start"), (None, "no schema version")],
)
def test_unknown_schema_versions_are_refused(
    tmp_path: Path, version: int | None, message: str
) -> None:
    profile = make_profile(tmp_path)
    conn = sqlite3.connect(profile / DB)
    if version is None:
        conn.execute("DELETE FROM cal_calendar_schema_version")
    else:
        conn.execute("UPDATE cal_calendar_schema_version SET version = ?", (version,))
    conn.commit()
    conn.close()
    before = (profile / DB).read_bytes()
    s = store(profile, "Home", tmp_path / "cache")
    with pytest.raises(StoreUnavailable, match=message):
        s.list()
    assert (profile / DB).read_bytes() == before


def test_unknown_columns_are_refused(tmp_path: Path) -> None:
    profile = make_profile(tmp_path)
    conn = sqlite3.connect(profile / DB)
    conn.execute("ALTER TABLE cal_events ADD COLUMN something_new TEXT")
    conn.commit()
    conn.close()
    with pytest.raises(StoreUnavailable, match="cal_events has columns"):
        store(profile, "Home", tmp_path / "cache").list()


def test_bad_rows_are_reported_per_item(tmp_path: Path) -> None:
    """Rows another program broke: that item is an error, every other item is read."""
    profile = make_profile(tmp_path)
    conn = sqlite3.connect(profile / DB)
    # the same UID twice as a master, and an attendee line that is not iCalendar
    conn.execute(
        "INSERT INTO cal_events (cal_id, id, title, flags) VALUES (?, ?, 'x', 4)",
        (HOME_ID, "allday@calsync.test"),
    )
    conn.execute(
        "INSERT INTO cal_attendees (cal_id, item_id, icalString) "
        "VALUES (?, 'floating@calsync.test', 'garbage without colon')",
        (HOME_ID,),
    )
    conn.execute(
        "UPDATE cal_events SET flags = flags | 2 WHERE cal_id = ? AND id = 'floating@calsync.test'",
        (HOME_ID,),
    )
    conn.commit()
    conn.close()
    s = store(profile, "Home", tmp_path / "cache")
    listing = s.list()
    assert "allday@calsync.test" in listing.errors
    assert "twice" in listing.errors["allday@calsync.test"]
    with pytest.raises(ItemError, match=r"floating@calsync\.test"):
        s.get("floating@calsync.test")
    got = {i: it for i, it, _ in s.get_many(listing.versions)}
    assert len([v for v in got.values() if not isinstance(v, ItemError)]) == 9


def test_unstorable_items_fail_alone_through_the_engine(tmp_path: Path) -> None:
    profile = make_profile(tmp_path, "demo-utc", registry(TEST_ID, "calsync-test"))
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    (vdir / "ok.ics").write_bytes(event("ok@calsync.test", "Fine"))
    (vdir / "journal.ics").write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VJOURNAL\r\n"
        b"UID:journal@calsync.test\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Diary\r\n"
        b"END:VJOURNAL\r\nEND:VCALENDAR\r\n"
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'[stores.tb]\ntype = "thunderbird"\nprofile = "{profile}"\ncalendar = "calsync-test"\n'
        f'[stores.dir]\ntype = "vdir"\npath = "{vdir}"\ncreate = true\n'
        '[pairs.p]\na = "tb"\nb = "dir"\n'
    )
    r = run_pair(load(config), "p")
    assert r.added_a == 1
    assert [(e.uid, e.store) for e in r.errors] == [("journal@calsync.test", "tb")]
    assert "VJOURNAL" in r.errors[0].message
    assert set(store(profile, "calsync-test", tmp_path / "c2").list().versions) == {
        "ok@calsync.test"
    }


def test_read_only_calendar_refuses_writes(tmp_path: Path) -> None:
    profile = make_profile(
        tmp_path,
        "demo-utc",
        registry(TEST_ID, "ro") + f'user_pref("calendar.registry.{TEST_ID}.readOnly", true);\n',
    )
    s = store(profile, "ro", tmp_path / "cache")
    s.list()
    with pytest.raises(ItemRejected, match="read-only"):
        s.add(loads_one(event("x@calsync.test")))


def test_stale_locks_do_not_count(tmp_path: Path) -> None:
    profile = tmp_path / "p"
    profile.mkdir()
    (profile / ".parentlock").touch()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    os.symlink(f"127.0.0.1:+{int(dead.stdout)}", profile / "lock")
    assert running.running(profile) is None  # the process is gone
    os.unlink(profile / "lock")
    os.symlink(f"127.0.0.1:+{os.getpid()}", profile / "lock")
    assert running.running(profile) is None  # alive, but not Thunderbird (pid reused)


def test_pre_1970_and_wrapped_times() -> None:
    assert times.from_prtime(-151459200000000) == datetime(1965, 3, 15)
    wrapped = 2**64 - 151459200000000  # an old unsigned pre-1970 value
    assert times.from_prtime(wrapped) == datetime(1965, 3, 15)


@pytest.mark.parametrize(
    "tzid", ["Europe/Berlin", "Australia/Sydney", "Asia/Tokyo", "America/Sao_Paulo"]
)
def test_generated_timezones_give_the_right_offsets(tzid: str) -> None:
    comp = times.vtimezone(tzid, 2026)
    tz = icalendar.Timezone.from_ical(comp.serialize()).to_tz(lookup_tzid=False)  # type: ignore[attr-defined]
    from zoneinfo import ZoneInfo

    for month in (1, 4, 7, 10, 12):
        when = datetime(2026, month, 15, 12)
        assert (
            when.replace(tzinfo=tz).utcoffset() == when.replace(tzinfo=ZoneInfo(tzid)).utcoffset()
        )


def test_one_calsync_at_a_time_per_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pairs sharing a Thunderbird store never interleave their queue updates."""
    profile = make_profile(tmp_path)
    first = store(profile, "Home", tmp_path / "cache")
    second = store(profile, "Home", tmp_path / "cache")
    monkeypatch.setattr(type(second), "lock_wait", 0.2)
    first.list()
    with pytest.raises(StoreUnavailable, match="another calsync"):
        second.list()
    first.close()
    assert len(second.list().versions) == 11
    second.close()
