"""Thunderbird's own time of an item (``last_modified``), for conflicts (issue 20, item 9).

The engine asks it only when two versions' own clocks tie; it is the newest
``last_modified`` of the item's rows, in the database a real Thunderbird made.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from calsync.items import Item
from calsync.sync.conflict import echoes
from tests.conftest import event
from tests.stores.thunderbird.helpers import HOME_ID, make_profile, store


def test_last_modified_of_the_rows_is_the_items_time(tmp_path: Path) -> None:
    profile = make_profile(tmp_path)
    db = profile / "calendar-data" / "local.sqlite"
    tb = store(profile, "Home", tmp_path / "cache")
    try:
        tb.list()
        # set by Thunderbird: 1795624591000000 µs (PRTime)
        assert tb.modified("utc-timed@calsync.test") == 1795624591.0
        # imported items carry none
        assert tb.modified("floating@calsync.test") is None
        assert tb.modified("no-such-uid") is None
        # which is the item's LAST-MODIFIED: an echo, never counted twice
        item, _ = tb.get("utc-timed@calsync.test")
        assert echoes(item, 1795624591.0)
    finally:
        tb.close()
    # the newest of the master's and its exceptions' rows
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE cal_events SET last_modified = ? WHERE cal_id = ? AND id = ?",
            (1795624599000000, HOME_ID, "floating@calsync.test"),
        )
    conn.close()
    tb = store(profile, "Home", tmp_path / "cache2")
    try:
        tb.list()
        assert tb.modified("floating@calsync.test") == 1795624599.0
    finally:
        tb.close()


def test_a_time_is_no_echo_when_the_item_has_no_such_stamp() -> None:
    item = Item.from_bytes(event("x"))  # LAST-MODIFIED and DTSTAMP 2025-01-01T00:00:00Z
    assert echoes(item, 1735689600.0) and echoes(item, 1735689600.7)
    assert not echoes(item, 1735689601.0)
    bare = Item.from_bytes(
        event("y")
        .replace(b"DTSTAMP:20250101T000000Z\r\n", b"")
        .replace(b"LAST-MODIFIED:20250101T000000Z\r\n", b"")
    )
    assert not echoes(bare, 1735689600.0)
