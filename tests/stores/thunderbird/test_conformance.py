"""(a) The store conformance suite on copies of databases made by the real Thunderbird."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from calsync.stores.thunderbird.store import ThunderbirdStore
from tests.stores.conformance import Conformance
from tests.stores.thunderbird.helpers import (
    HOME_ID,
    TEST_ID,
    WORK_ID,
    make_profile,
    registry,
    store,
)


class TestFreshProfile(Conformance):
    """Thunderbird's own brand-new database (schema 23, no items), calendar "Home"."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> ThunderbirdStore:
        return store(make_profile(tmp_path, "fresh"), "Home", tmp_path / "cache")


class TestSharedDatabase(Conformance):
    """A new calendar inside the demo database, next to Thunderbird's Home and Work."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> ThunderbirdStore:
        profile = make_profile(tmp_path, "demo-utc", registry(TEST_ID, "calsync-test"))
        return store(profile, "calsync-test", tmp_path / "cache")


def _dump(db: Path, cal_id: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        out: list[tuple[object, ...]] = []
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'cal%'"
        ):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            if "cal_id" in cols:
                rows = conn.execute(
                    f"SELECT * FROM {table} WHERE cal_id = ? ORDER BY rowid", (cal_id,)
                )
                out.extend((table, *r) for r in rows)
        return out
    finally:
        conn.close()


def test_other_calendars_untouched(tmp_path: Path) -> None:
    """Writes to one calendar leave every row of the others in the shared database alone."""
    profile = make_profile(tmp_path, "demo-utc", registry(TEST_ID, "calsync-test"))
    db = profile / "calendar-data" / "local.sqlite"
    before = {cal: _dump(db, cal) for cal in (HOME_ID, WORK_ID)}
    s = store(profile, "calsync-test", tmp_path / "cache")
    suite = TestSharedDatabase()
    suite.test_recurrence_with_override_round_trips(s)
    suite.test_vtodo(s)
    suite.test_delete(s)
    assert {cal: _dump(db, cal) for cal in (HOME_ID, WORK_ID)} == before
    assert _dump(db, TEST_ID), "the test calendar holds the items written"
