"""Which side is newer when both changed an item (issue 20, item 9).

``newest`` (and ``keep-both``, and a merge's ``merge_fallback = newest``)
goes by the item's own clocks, then by the stores' (a file's mtime...), and
when nothing tells it keeps both versions instead of picking one silently.
The conflict log says which clock decided.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from calsync.items import Item
from calsync.stores import Store, StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.memory import MemoryStore
from calsync.stores.vdir import VdirStore
from calsync.sync.conflict import UNDECIDED, Clocks, resolve
from tests.cli.helpers import calsync
from tests.conftest import event
from tests.sync.helpers import Pair, contents, edit, put, summaries

T = 1_750_000_000.0  # a file time, in the past


def vdir(tmp: Path, name: str) -> VdirStore:
    return VdirStore(name, StoreContext(cache_dir=tmp / "cache" / name), tmp / name)


def file_of(store: VdirStore, uid: str) -> Path:
    for path in store.path.glob("*.ics"):
        if Item.from_bytes(path.read_bytes()).uid == uid:
            return path
    raise KeyError(uid)


def conflicts(pair: Pair) -> list[dict[str, object]]:
    h = pair.history()
    try:
        return h.conflicts()
    finally:
        h.close()


def edited_on_both(pair: Pair, a: bytes, b: bytes) -> None:
    put(pair.a, event("x", "Original"))
    assert pair.sync().added_b == 1
    edit(pair.a, "x", a)
    edit(pair.b, "x", b)


@pytest.mark.parametrize("newer", ["a", "b"])
def test_newest_without_item_clocks_goes_by_the_files_mtime(tmp_path: Path, newer: str) -> None:
    pair = Pair(vdir(tmp_path, "a"), vdir(tmp_path, "b"), tmp_path / "state", conflict="newest")
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit"))  # same stamps
    os.utime(file_of(pair.a, "x"), (T, T + (100 if newer == "a" else 0)))
    os.utime(file_of(pair.b, "x"), (T, T + (100 if newer == "b" else 0)))
    r = pair.sync()
    assert r.conflicts == 1 and not r.errors
    won = f"{newer.upper()} edit"
    assert summaries(pair.a) == summaries(pair.b) == {"x": won}
    (row,) = conflicts(pair)
    assert row["clock"] == "store mtime" and row["winner"] == newer
    assert row["outcome"] == "newest" and "copy_uid" not in row
    h = pair.history()
    (loser,) = [v for v in h.versions("x") if v.reason == "conflict-loser"]
    h.close()
    assert b"SUMMARY:" + ("B" if newer == "a" else "A").encode() + b" edit" in loser.content


def test_when_nothing_tells_newest_keeps_both(tmp_path: Path) -> None:
    pair = Pair(vdir(tmp_path, "a"), vdir(tmp_path, "b"), tmp_path / "state", conflict="newest")
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit"))
    for store in (pair.a, pair.b):
        os.utime(file_of(store, "x"), (T, T))  # the same second, to the nanosecond
    r = pair.sync()
    assert r.conflicts == 1 and not r.errors
    (row,) = conflicts(pair)
    assert row["clock"] == UNDECIDED and row["winner"] is None
    copy = str(row["copy_uid"])
    assert copy.startswith("x-conflict-")
    for store in (pair.a, pair.b):
        got = summaries(store)
        assert got == {"x": "A edit", copy: "B edit (conflict copy from b)"}, store.name
    h = pair.history()
    (loser,) = [v for v in h.versions("x") if v.reason == "conflict-loser"]
    h.close()
    assert b"SUMMARY:B edit" in loser.content and loser.store == "b"
    again = pair.sync()
    assert again.changes == 0 and again.conflicts == 0


def test_a_store_without_a_clock_keeps_both_too(tmp_path: Path) -> None:
    ctx = StoreContext(cache_dir=tmp_path / "cache")
    pair = Pair(MemoryStore("a", ctx), MemoryStore("b", ctx), tmp_path / "state", conflict="newest")
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit"))
    assert pair.sync().conflicts == 1
    (row,) = conflicts(pair)
    assert row["clock"] == UNDECIDED
    assert set(summaries(pair.a).values()) == {"A edit", "B edit (conflict copy from b)"}


@pytest.mark.parametrize(
    ("clock", "a_extra", "b_extra", "winner"),
    [
        ("LAST-MODIFIED", {"last_modified": "20250301T000000Z"}, {}, "a"),
        ("SEQUENCE", {}, {"extra": "SEQUENCE:3"}, "b"),
        ("DTSTAMP", {"stamp": "20250401T000000Z"}, {}, "a"),
    ],
)
def test_the_items_own_clocks_come_before_the_files(
    tmp_path: Path, clock: str, a_extra: dict[str, str], b_extra: dict[str, str], winner: str
) -> None:
    def version(summary: str, extra: dict[str, str]) -> bytes:
        data = event("x", summary, **{k: v for k, v in extra.items() if k != "stamp"})
        if "stamp" in extra:
            data = data.replace(b"DTSTAMP:20250101T000000Z", f"DTSTAMP:{extra['stamp']}".encode())
        return data

    pair = Pair(vdir(tmp_path, "a"), vdir(tmp_path, "b"), tmp_path / "state", conflict="newest")
    edited_on_both(pair, version("A edit", a_extra), version("B edit", b_extra))
    loser = "b" if winner == "a" else "a"
    os.utime(file_of(getattr(pair, loser), "x"), (T, T + 1000))  # the files say otherwise
    os.utime(file_of(getattr(pair, winner), "x"), (T, T))
    pair.sync()
    assert summaries(pair.a)["x"] == summaries(pair.b)["x"] == f"{winner.upper()} edit"
    (row,) = conflicts(pair)
    assert row["clock"] == clock and row["winner"] == winner


def test_keep_both_says_which_clock_chose_the_one_under_the_uid(tmp_path: Path) -> None:
    pair = Pair(vdir(tmp_path, "a"), vdir(tmp_path, "b"), tmp_path / "state", conflict="keep-both")
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit"))
    os.utime(file_of(pair.a, "x"), (T, T))
    os.utime(file_of(pair.b, "x"), (T, T + 5))
    pair.sync()
    (row,) = conflicts(pair)
    assert row["clock"] == "store mtime" and row["winner"] == "b"
    assert summaries(pair.a) == {
        "x": "B edit",
        str(row["copy_uid"]): "A edit (conflict copy from a)",
    }


def test_merge_fallback_newest_uses_the_same_clocks(tmp_path: Path) -> None:
    pair = Pair(vdir(tmp_path, "a"), vdir(tmp_path, "b"), tmp_path / "state")  # merge
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit", extra="LOCATION:Room 2"))
    os.utime(file_of(pair.a, "x"), (T, T + 60))
    os.utime(file_of(pair.b, "x"), (T, T))
    pair.sync()
    (row,) = conflicts(pair)
    assert row["outcome"] == "merged, overlaps by newest" and row["overlapping"] == [
        "VEVENT:SUMMARY"
    ]
    assert row["clock"] == "store mtime" and "copy_uid" not in row
    (item,) = contents(pair.a).values()
    master = item.master()
    assert master is not None
    assert master.value("SUMMARY") == "A edit" and master.value("LOCATION") == "Room 2"


def test_a_merge_that_nothing_decides_keeps_b_as_a_copy(tmp_path: Path) -> None:
    pair = Pair(vdir(tmp_path, "a"), vdir(tmp_path, "b"), tmp_path / "state")  # merge
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit", extra="LOCATION:Room 2"))
    for store in (pair.a, pair.b):
        os.utime(file_of(store, "x"), (T, T))
    pair.sync()
    (row,) = conflicts(pair)
    assert row["clock"] == UNDECIDED
    copy = str(row["copy_uid"])
    for store in (pair.a, pair.b):
        assert summaries(store) == {"x": "A edit", copy: "B edit (conflict copy from b)"}
    (item,) = [it for uid, it in contents(pair.b).items() if uid == "x"]
    assert item.master().value("LOCATION") == "Room 2"  # type: ignore[union-attr]


def test_an_ics_file_answers_with_the_whole_files_mtime(tmp_path: Path) -> None:
    a = IcsStore("a", StoreContext(cache_dir=tmp_path / "cache" / "a"), tmp_path / "a.ics")
    pair = Pair(a, vdir(tmp_path, "b"), tmp_path / "state", conflict="newest")
    edited_on_both(pair, event("x", "A edit"), event("x", "B edit"))
    os.utime(tmp_path / "a.ics", (T, T + 30))
    os.utime(file_of(pair.b, "x"), (T, T))
    pair.sync()
    (row,) = conflicts(pair)
    assert row["clock"] == "store mtime" and row["winner"] == "a"
    assert summaries(pair.b) == {"x": "A edit"}


def test_the_store_clock_is_asked_only_when_the_items_tie() -> None:
    asked: list[int] = []

    def times() -> tuple[float | None, float | None]:
        asked.append(1)
        return 1.0, 2.0

    a = Item.from_bytes(event("x", "A", last_modified="20250301T000000Z"))
    b = Item.from_bytes(event("x", "B"))
    res = resolve("newest", None, a, b, clocks=Clocks(times))
    assert (res.winner, res.clock, asked) == ("a", "LAST-MODIFIED", [])
    res = resolve("newest", None, Item.from_bytes(event("x", "A")), b, clocks=Clocks(times))
    assert (res.winner, res.clock, asked) == ("b", "store mtime", [1])
    # one store that cannot tell is as good as none
    res = resolve(
        "newest", None, Item.from_bytes(event("x", "A")), b, clocks=Clocks(lambda: (1.0, None))
    )
    assert res.winner is None and res.clock == UNDECIDED and res.copy is not None


def test_conflicts_command_says_which_clock_decided(tmp_path: Path) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    (tmp_path / "config.toml").write_text(
        f'[general]\nstate_dir = "{tmp_path / "state"}"\n'
        '[stores.a]\ntype = "vdir"\npath = "a"\n[stores.b]\ntype = "vdir"\npath = "b"\n'
        '[pairs.main]\na = "a"\nb = "b"\nconflict = "newest"\n'
    )

    (tmp_path / "a" / "x.ics").write_bytes(event("x", "Original"))
    assert calsync(tmp_path, "sync").returncode == 0
    (tmp_path / "a" / "x.ics").write_bytes(event("x", "A edit"))
    (tmp_path / "b" / "x.ics").write_bytes(event("x", "B edit"))
    now = time.time()
    os.utime(tmp_path / "a" / "x.ics", (now, now - 60))
    out = calsync(tmp_path, "sync")
    assert out.returncode == 0 and "1 conflict(s) resolved" in out.stdout
    listed = calsync(tmp_path, "conflicts")
    assert "x: newest winner: b decided by: store mtime" in listed.stdout, listed.stdout
    rows = json.loads(calsync(tmp_path, "conflicts", "--json").stdout)["conflicts"]
    assert rows[0]["clock"] == "store mtime" and rows[0]["winner"] == "b"


def store_of(kind: str, tmp: Path) -> Store:
    ctx = StoreContext(cache_dir=tmp / "cache")
    return vdir(tmp, "s") if kind == "vdir" else IcsStore("s", ctx, tmp / "s.ics")


@pytest.mark.parametrize("kind", ["vdir", "ics"])
def test_local_stores_tell_an_items_time_cheaply(tmp_path: Path, kind: str) -> None:
    store = store_of(kind, tmp_path)
    id = put(store, event("x"))
    listing = store.list()
    when = store.modified(id)
    assert when is not None and abs(when - time.time()) < 60
    assert store.modified("nope.ics") is None and listing.versions


@pytest.mark.parametrize("newer", ["device", "file"])
def test_a_device_tells_its_sessions_time(tmp_path: Path, newer: str) -> None:
    """A SyncML device says nothing of when it edited: its change counts as made
    when the session brought it (a file changed later than that is newer)."""
    from calsync.syncml.mirror import DeviceDB, MirrorStore
    from calsync.syncml.model import TWO_WAY
    from calsync.syncml.session import IncomingChange

    db = DeviceDB(tmp_path / "syncml.sqlite")
    ds = db.datastore("alice", "phone-1", "calendar")
    ctx = StoreContext(cache_dir=tmp_path / "cache" / "m")

    def session(data: bytes, op: str) -> MirrorStore:
        """The device sends ``data``, and the engine runs with its mirror."""
        ch = IncomingChange(op, "1", data, "text/calendar")
        assert db.apply(ds, TWO_WAY, [ch], where="phone-1") in ([201], [200])
        return MirrorStore("phone-1/calendar", ctx, db, ds, identity="syncml:alice/phone-1")

    b = vdir(tmp_path, "b")
    pair = Pair(session(event("x", "Original"), "Add"), b, tmp_path / "state", conflict="newest")
    assert pair.sync().added_b == 1
    edit(b, "x", event("x", "File edit"))  # same stamps as the device's below
    pair.a = session(event("x", "Device edit"), "Replace")
    later = time.time() + 3600 if newer == "file" else T
    os.utime(file_of(b, "x"), (later, later))
    result = pair.sync()
    db.close()
    assert result.conflicts == 1 and not result.errors, result
    (row,) = conflicts(pair)
    assert row["clock"] == "store mtime"
    assert summaries(b) == {"x": "Device edit" if newer == "device" else "File edit"}
