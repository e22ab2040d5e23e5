"""Stored content: zstd written, zstd and the older zlib read back exactly."""

from __future__ import annotations

import zlib
from pathlib import Path

from calsync.sync.packing import pack, unpack
from calsync.sync.status import Row, StatusDB

EVENT = (
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:ü-1\r\nSUMMARY:Grüße\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_round_trip() -> None:
    data = EVENT.encode() * 20
    blob = pack(data)
    assert blob[:4] == b"\x28\xb5\x2f\xfd"
    assert len(blob) < len(data)
    assert unpack(blob) == data
    assert unpack(pack(b"")) == b""


def test_zlib_written_by_older_calsync_is_read(tmp_path: Path) -> None:
    """A status database from before zstd keeps its merge bases."""
    db = StatusDB(tmp_path / "s.db")
    db.db.execute(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("u1", "a", "1", "h", "b", "1", "h", zlib.compress(EVENT.encode(), 1)),
    )
    assert db.base("u1") == EVENT.encode()
    db.stage_put(Row("u1", "a", "2", "h", "b", "2", "h"), EVENT.encode() + b"X")
    db.commit()
    assert db.base("u1") == EVENT.encode() + b"X"


def test_many_bases_are_read_in_a_few_queries(tmp_path: Path) -> None:
    """``StatusDB.bases`` answers like ``base`` for each UID, past one query's size."""
    status = StatusDB(tmp_path / "status.sqlite")
    for i in range(1200):
        row = Row(f"u{i}", f"a{i}", "1", "", f"b{i}", "1", "")
        status.stage_put(row, f"content {i}".encode() if i % 7 else None)
    status.commit()
    asked = [f"u{i}" for i in range(1200)] + ["unknown"]
    got = status.bases(asked)
    assert got == {u: b for u in asked if (b := status.base(u)) is not None}
    assert len(got) == 1200 - len(range(0, 1200, 7))
    status.close()
