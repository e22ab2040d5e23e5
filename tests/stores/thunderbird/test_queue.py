"""(d) While Thunderbird runs: consistent reads, queued writes, nothing lost or doubled.

Everything goes through the real engine (``run_pair``) between a Thunderbird
calendar and a vdir, with a process holding the profile like Thunderbird.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from calsync.cli import cli
from calsync.config import Config, load
from calsync.stores.thunderbird.prefs import find_calendar
from calsync.sync.engine import SyncResult
from calsync.sync.runner import run_pair
from tests.conftest import event
from tests.stores.thunderbird.helpers import make_profile
from tests.stores.thunderbird.lockholder import Holder


def setup(tmp_path: Path, sample: str = "fresh") -> tuple[Path, Path, Path]:
    profile = make_profile(tmp_path, sample)
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[stores.tb]
type = "thunderbird"
profile = "{profile}"
calendar = "Home"

[stores.dir]
type = "vdir"
path = "{vdir}"
create = true

[pairs.p]
a = "tb"
b = "dir"
""",
        encoding="utf-8",
    )
    return profile, vdir, config


def sync(config: Path) -> SyncResult:
    cfg: Config = load(config)
    return run_pair(cfg, "p")


def titles(profile: Path) -> dict[str, str]:
    """What the database holds now (read while nothing holds it)."""
    conn = sqlite3.connect(profile / "calendar-data" / "local.sqlite")
    try:
        rows = conn.execute(
            "SELECT id, title FROM cal_events WHERE cal_id = ? AND recurrence_id IS NULL",
            (home(profile),),
        )
        return {str(uid): str(title) for uid, title in rows}
    finally:
        conn.close()


def home(profile: Path) -> str:
    return find_calendar(profile, "Home").id


def status_json(config: Path) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["status", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def counts(r: SyncResult) -> tuple[int, ...]:
    return (r.added_a, r.added_b, r.updated_a, r.updated_b, r.deleted_a, r.deleted_b)


def test_writes_wait_while_thunderbird_runs_and_land_after_it_quits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profile, vdir, config = setup(tmp_path)
    for n in range(3):
        (vdir / f"e{n}.ics").write_bytes(event(f"e{n}@calsync.test", f"Event {n}"))
    db = profile / "calendar-data" / "local.sqlite"
    tb = Holder(profile)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite3.connect(db, timeout=0.1).execute("SELECT count(*) FROM cal_events").fetchone()
        with caplog.at_level(logging.WARNING):
            first = sync(config)
        assert not first.stopped and not first.errors
        assert counts(first) == (3, 0, 0, 0, 0, 0)
        assert "Thunderbird is running" in caplog.text and f"pid {tb.pid}" in caplog.text
        st = status_json(config)["pairs"]["p"]  # type: ignore[index]
        waiting = st["queued"]["tb"]
        assert waiting["count"] == 3 and f"pid {tb.pid}" in waiting["reason"]
        assert sorted(i["uid"] for c in waiting["calendars"] for i in c["items"]) == [
            "e0@calsync.test",
            "e1@calsync.test",
            "e2@calsync.test",
        ]
        # the queued items count as written: nothing is re-added or duplicated
        again = sync(config)
        assert counts(again) == (0, 0, 0, 0, 0, 0) and not again.errors
        assert sorted(p.name for p in vdir.iterdir()) == ["e0.ics", "e1.ics", "e2.ics"]
        # more changes while it runs: an update and a delete of queued adds
        (vdir / "e1.ics").write_bytes(event("e1@calsync.test", "Event 1 renamed"))
        (vdir / "e2.ics").unlink()
        third = sync(config)
        assert (third.updated_a, third.deleted_a) == (1, 1) and not third.errors
        waiting = status_json(config)["pairs"]["p"]["queued"]["tb"]  # type: ignore[index]
        assert waiting["count"] == 2  # e2 was added and deleted while waiting: gone
    finally:
        tb.stop()
    assert titles(profile) == {}, "nothing was written while Thunderbird ran"
    text = CliRunner().invoke(cli, ["status", "--config", str(config)]).output
    assert "queued: tb: 2 change(s)" in text and "the next sync writes them" in text
    applied = sync(config)
    assert counts(applied) == (0, 0, 0, 0, 0, 0) and not applied.errors
    assert titles(profile) == {"e0@calsync.test": "Event 0", "e1@calsync.test": "Event 1 renamed"}
    assert status_json(config)["pairs"]["p"]["queued"] == {}  # type: ignore[index]
    backups = list((tmp_path / "_state" / "stores" / "tb" / "backups").glob("*/local.sqlite"))
    assert len(backups) == 1, "the database was backed up before the first write"
    final = sync(config)
    assert counts(final) == (0, 0, 0, 0, 0, 0) and not final.errors


def test_thunderbird_changes_are_read_while_it_runs(tmp_path: Path) -> None:
    """A hot snapshot shows Thunderbird's own edits (in its -wal) while it holds the database."""
    profile, vdir, config = setup(tmp_path)
    (vdir / "a.ics").write_bytes(event("a@calsync.test", "From the vdir"))
    assert counts(sync(config)) == (1, 0, 0, 0, 0, 0)
    tb = Holder(profile)
    try:
        tb.sql(
            f"UPDATE cal_events SET title = 'Renamed in Thunderbird' "
            f"WHERE cal_id = '{home(profile)}' AND id = 'a@calsync.test'"
        )
        r = sync(config)
        assert counts(r) == (0, 0, 0, 1, 0, 0) and not r.errors
        assert b"SUMMARY:Renamed in Thunderbird" in (vdir / "a.ics").read_bytes()
    finally:
        tb.stop()


def test_thunderbird_edit_while_a_change_waits_is_merged(tmp_path: Path) -> None:
    profile, vdir, config = setup(tmp_path)
    (vdir / "m.ics").write_bytes(event("m@calsync.test", "Meeting"))
    assert counts(sync(config)) == (1, 0, 0, 0, 0, 0)
    tb = Holder(profile)
    try:
        (vdir / "m.ics").write_bytes(event("m@calsync.test", "Meeting", extra="LOCATION:Room 7"))
        assert counts(sync(config)) == (0, 0, 1, 0, 0, 0)  # queued
        # Thunderbird renames it meanwhile (its modify rewrites the row)
        tb.sql(
            f"UPDATE cal_events SET title = 'Meeting (moved)' "
            f"WHERE cal_id = '{home(profile)}' AND id = 'm@calsync.test'"
        )
        r = sync(config)
        assert not r.errors
        assert counts(r) == (0, 0, 0, 1, 0, 0), "the merged item goes to the vdir"
        data = (vdir / "m.ics").read_bytes()
        assert b"SUMMARY:Meeting (moved)" in data and b"LOCATION:Room 7" in data
    finally:
        tb.stop()
    assert counts(sync(config)) == (0, 0, 0, 0, 0, 0)
    conn = sqlite3.connect(profile / "calendar-data" / "local.sqlite")
    row = conn.execute(
        "SELECT e.title, p.value FROM cal_events e JOIN cal_properties p ON p.item_id = e.id "
        "AND p.cal_id = e.cal_id AND p.key = 'LOCATION' WHERE e.id = 'm@calsync.test'"
    ).fetchone()
    conn.close()
    assert row == ("Meeting (moved)", "Room 7")


def test_database_locked_without_profile_lock_queues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database lock is the final word even when the profile looks free."""
    profile, vdir, config = setup(tmp_path)
    (vdir / "x.ics").write_bytes(event("x@calsync.test"))
    tb = Holder(profile, profile_lock=False)
    try:
        with caplog.at_level(logging.WARNING):
            r = sync(config)
        assert counts(r) == (1, 0, 0, 0, 0, 0) and not r.errors
        assert "database is locked" in caplog.text
    finally:
        tb.stop()
    assert titles(profile) == {}
    sync(config)
    assert titles(profile) == {"x@calsync.test": "Meeting"}


def test_queue_survives_a_crash(tmp_path: Path) -> None:
    """The queue is on disk when flush returns; a fresh process applies it exactly once."""
    profile, vdir, config = setup(tmp_path)
    (vdir / "c.ics").write_bytes(event("c@calsync.test", "Crash test"))
    tb = Holder(profile)
    try:
        sync(config)
    finally:
        tb.stop()
    queue_files = list((tmp_path / "_state" / "stores" / "tb").glob("thunderbird-queue/*.json"))
    assert len(queue_files) == 1
    saved = queue_files[0].read_bytes()
    sync(config)  # applies
    assert titles(profile) == {"c@calsync.test": "Crash test"}
    # a crash after the database commit but before the queue was cleared:
    queue_files[0].write_bytes(saved)
    r = sync(config)
    assert counts(r) == (0, 0, 0, 0, 0, 0) and not r.errors
    assert titles(profile) == {"c@calsync.test": "Crash test"}
    conn = sqlite3.connect(profile / "calendar-data" / "local.sqlite")
    n = conn.execute("SELECT count(*) FROM cal_events WHERE id = 'c@calsync.test'").fetchone()[0]
    conn.close()
    assert n == 1, "applied once"
    assert not queue_files[0].exists()


def _delete_rows(tb: Holder, cal_id: str, uid: str) -> None:
    """Thunderbird's deleteItem: every row of the item goes."""
    for table, column in (
        ("cal_events", "id"),
        ("cal_properties", "item_id"),
        ("cal_metadata", "item_id"),
    ):
        tb.sql(f"DELETE FROM {table} WHERE cal_id = '{cal_id}' AND {column} = '{uid}'")


def test_thunderbird_deletes_what_waits_as_an_update(tmp_path: Path) -> None:
    """An edit beats a delete: the waiting update puts the item back."""
    profile, vdir, config = setup(tmp_path)
    (vdir / "k.ics").write_bytes(event("k@calsync.test", "Keep me"))
    assert counts(sync(config)) == (1, 0, 0, 0, 0, 0)
    tb = Holder(profile)
    try:
        (vdir / "k.ics").write_bytes(event("k@calsync.test", "Keep me, edited"))
        assert counts(sync(config)) == (0, 0, 1, 0, 0, 0)
        _delete_rows(tb, home(profile), "k@calsync.test")
        assert counts(sync(config)) == (0, 0, 0, 0, 0, 0)
    finally:
        tb.stop()
    assert counts(sync(config)) == (0, 0, 0, 0, 0, 0)
    assert titles(profile) == {"k@calsync.test": "Keep me, edited"}
    assert (vdir / "k.ics").exists()


def test_thunderbird_edits_what_waits_as_a_delete(tmp_path: Path) -> None:
    """An edit beats a delete: Thunderbird's edited item comes back to the vdir."""
    profile, vdir, config = setup(tmp_path)
    (vdir / "d.ics").write_bytes(event("d@calsync.test", "Doomed"))
    (vdir / "s.ics").write_bytes(event("s@calsync.test", "Stays"))
    assert counts(sync(config)) == (2, 0, 0, 0, 0, 0)
    tb = Holder(profile)
    try:
        (vdir / "d.ics").unlink()
        assert counts(sync(config)) == (0, 0, 0, 0, 1, 0)
        tb.sql(
            f"UPDATE cal_events SET title = 'Saved in Thunderbird' "
            f"WHERE cal_id = '{home(profile)}' AND id = 'd@calsync.test'"
        )
        assert counts(sync(config)) == (0, 1, 0, 0, 0, 0)
    finally:
        tb.stop()
    assert counts(sync(config)) == (0, 0, 0, 0, 0, 0)
    assert titles(profile) == {"d@calsync.test": "Saved in Thunderbird", "s@calsync.test": "Stays"}
    assert b"SUMMARY:Saved in Thunderbird" in (vdir / "d@calsync.test.ics").read_bytes()
