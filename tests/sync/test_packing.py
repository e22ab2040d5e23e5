"""Stored content: zstd written, zstd and the older zlib read back exactly."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

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


def test_bases_packed_ahead_in_a_thread_are_the_ones_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packing during a flush: what is committed is always the base staged last,
    whether it was packed ahead, staged again since, or dropped meanwhile."""
    import threading

    from calsync.sync import status

    threads: set[str] = set()

    def recording(data: bytes) -> bytes:
        threads.add(threading.current_thread().name)
        return pack(data)

    monkeypatch.setattr(status, "pack", recording)
    db = StatusDB(tmp_path / "s.db")
    contents = {f"u{i}": (EVENT * (1 + i % 3)).replace("ü-1", f"u{i}").encode() for i in range(300)}
    for uid, content in contents.items():
        db.stage_put(Row(uid, uid, "1", "", uid, "1", ""), content)
    with db.packing_ahead():
        db.discard({"u1"})  # a store's flush failed for this one
    assert threads == {"calsync-pack"}
    assert len(db._packed) == 299  # packed ahead, none for the dropped row
    contents["u2"] = EVENT.replace("ü-1", "u2 again").encode()
    db.stage_put(Row("u2", "u2", "2", "", "u2", "2", ""), contents["u2"])  # staged again
    db.commit()
    del contents["u1"]
    assert db.bases(contents) == contents
    assert db._packed == {}
    db.close()


def test_a_few_bases_are_packed_at_the_commit_without_a_thread(tmp_path: Path) -> None:
    import threading

    db = StatusDB(tmp_path / "s.db")
    db.stage_put(Row("u", "u", "1", "", "u", "1", ""), EVENT.encode())
    with db.packing_ahead():
        assert "calsync-pack" not in [t.name for t in threading.enumerate()]
    db.commit()
    assert db.base("u") == EVENT.encode()
    db.close()
