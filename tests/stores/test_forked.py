"""A one-shot sync's forked helpers: half of a vdir's bulk reads and new files.

Forking is allowed here explicitly (the CLI allows it only in its own
process) and from 4 items on, so that small vdirs take the forked path.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from calsync.items import Item, ItemError
from calsync.stores import StoreContext, _forked
from calsync.stores.vdir import VdirStore
from tests.conftest import event


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Forking allowed from 4 items; yields the sizes of the parts given to children."""
    monkeypatch.setattr(_forked, "_allowed", True)
    monkeypatch.setattr(_forked, "MINIMUM", 4)
    parts: list[int] = []
    real = _forked.Child.__init__

    def counting(
        self: _forked.Child[object], work: object, part: Sequence[object], **kw: bool
    ) -> None:
        parts.append(len(part))
        real(self, work, part, **kw)

    monkeypatch.setattr(_forked.Child, "__init__", counting)
    yield parts


def vdir(tmp_path: Path, name: str = "vdir") -> VdirStore:
    return VdirStore(name, StoreContext(cache_dir=tmp_path / "cache"), tmp_path / name)


def _square(part: Sequence[int]) -> list[int]:
    return [x * x for x in part]


def _fail(part: Sequence[int]) -> list[int]:
    raise RuntimeError("the child fails")


def _hang(part: Sequence[int]) -> list[int]:
    signal.pause()
    return []


def test_a_child_returns_its_work_or_none_when_it_fails() -> None:
    assert _forked.Child(_square, [1, 2, 3]).result() == [1, 4, 9]
    assert _forked.Child(_fail, [1]).result() is None


def test_an_abandoned_child_is_killed_and_reaped() -> None:
    child = _forked.Child(_hang, [1], writes=True)
    pid = child._pid
    assert pid is not None
    child.abandon()
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(pid, os.WNOHANG)


def test_forking_needs_the_process_to_allow_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_forked, "_allowed", False)
    assert not _forked.usable(10**6)
    monkeypatch.setattr(_forked, "_allowed", True)
    assert _forked.usable(_forked.MINIMUM)
    assert not _forked.usable(_forked.MINIMUM - 1)


def test_forked_reads_give_what_serial_reads_give(
    tmp_path: Path, forking: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """Good, malformed, unusual and vanished files: the same items, the same
    errors and warnings (the parent reads and reports all but the common
    case), in the same order."""
    store = vdir(tmp_path)
    store.path.mkdir()
    for i in range(12):
        (store.path / f"e{i}.ics").write_bytes(event(f"e{i}", f"Event {i}"))
    (store.path / "bad.ics").write_bytes(b"BEGIN:VCALENDAR\r\nnonsense\r\nEND:VCALENDAR\r\n")
    two = event("two-a").replace(b"END:VCALENDAR\r\n", b"") + event("two-b").split(b"\r\n", 3)[3]
    (store.path / "two.ics").write_bytes(two)
    (store.path / "nouid.ics").write_bytes(event("x").replace(b"UID:x\r\n", b""))
    ids = [*sorted(store.list().versions), "gone.ics"]
    forked = [(id, repr(got), v) for id, got, v in store.get_many(ids)]
    assert forking == [len(ids) - len(ids) // 2]
    assert ids.index("nouid.ics") >= len(ids) // 2  # in the helper's part
    assert [r.message for r in caplog.records if "has no UID" in r.message]  # warned here
    _forked._allowed = False
    serial = [(id, repr(got), v) for id, got, v in store.get_many(ids)]
    assert forked == serial
    assert [id for id, *_ in forked] == [i for i in ids if i != "gone.ics"]
    errors = {id: got for id, got, _ in store.get_many(ids) if isinstance(got, ItemError)}
    assert set(errors) == {"bad.ics", "two.ics"}


def test_forked_new_files_are_written_once_each(tmp_path: Path, forking: list[int]) -> None:
    store = vdir(tmp_path)
    items = [Item.from_bytes(event(f"n{i}", f"New {i}")) for i in range(10)]
    taken = Item.from_bytes(event("n7", "Other content, same UID"))
    store.expect_adds(items)
    assert forking == [5]
    got = [store.add(item) for item in items]
    assert store.add(taken)[0] == "n7-1.ics"  # not expected: written here, as always
    store.flush()
    store.close()
    names = sorted(os.listdir(store.path))
    assert names == sorted([f"n{i}.ics" for i in range(10)] + ["n7-1.ics"])
    listing = store.list().versions
    for (name, version), item in zip(got, items, strict=True):
        assert listing[name] == version  # the child's answers are the files' versions
        assert (store.path / name).read_bytes() == item.raw


def test_a_failed_writer_leaves_no_duplicate(
    tmp_path: Path, forking: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that wrote its files but whose answer is lost: the parent writes
    that part again and takes the identical files as written, no copies."""
    monkeypatch.setattr(_forked.Child, "result", lambda self: (self._reap(), None)[1])
    store = vdir(tmp_path)
    items = [Item.from_bytes(event(f"n{i}", f"New {i}")) for i in range(8)]
    store.expect_adds(items)
    got = [store.add(item) for item in items]
    assert [name for name, _ in got] == [f"n{i}.ics" for i in range(8)]
    assert sorted(os.listdir(store.path)) == sorted(name for name, _ in got)


def test_an_existing_identical_file_is_taken_as_the_add(tmp_path: Path) -> None:
    store = vdir(tmp_path)
    store.path.mkdir()
    item = Item.from_bytes(event("x"))
    (store.path / "x.ics").write_bytes(item.raw)
    name, version = store.add(item)
    assert name == "x.ics" and version == store.list().versions["x.ics"]
    other = Item.from_bytes(event("x", "Changed"))
    assert store.add(other)[0] == "x-1.ics"  # different content: never overwritten
    assert (store.path / "x.ics").read_bytes() == item.raw


def test_a_sync_stopped_before_its_adds_leaves_complete_files(
    tmp_path: Path, forking: list[int]
) -> None:
    """close() with answers not taken: the child is stopped; what it wrote is
    whole, and adding the items again takes those files rather than copying."""
    store = vdir(tmp_path)
    items = [Item.from_bytes(event(f"n{i}", f"New {i}")) for i in range(40)]
    store.expect_adds(items)
    store.close()
    for name in os.listdir(store.path):
        assert Item.from_bytes((store.path / name).read_bytes()).uid == name[:-4]
    again = vdir(tmp_path)
    assert [again.add(i)[0] for i in items] == [f"n{i}.ics" for i in range(40)]
    assert len(os.listdir(store.path)) == 40


def test_a_listing_ahead_is_the_listing(tmp_path: Path, forking: list[int]) -> None:
    """expect_list lists the directory in a helper; list() then gives exactly
    what a listing here gives (what changed since is seen by the next listing,
    as with any listing)."""
    store = vdir(tmp_path)
    store.path.mkdir()
    for i in range(12):
        (store.path / f"e{i}.ics").write_bytes(event(f"e{i}"))
    (store.path / "not-an-item.txt").write_bytes(b"x")
    (store.path / "sub.ics").mkdir()
    store.expect_list()
    assert forking == [1]  # one helper lists the directory
    ahead = store.list().versions
    _forked._allowed = False
    assert ahead == vdir(tmp_path).list().versions
    assert sorted(ahead) == sorted(f"e{i}.ics" for i in range(12))
    assert store.get("e3.ics")[1] == ahead["e3.ics"]  # get() reads by that listing


def test_a_listing_ahead_never_collected_is_stopped(tmp_path: Path, forking: list[int]) -> None:
    store = vdir(tmp_path)
    store.path.mkdir()
    for i in range(8):
        (store.path / f"e{i}.ics").write_bytes(event(f"e{i}"))
    store.expect_list()
    assert store._listing_ahead is not None
    pid = store._listing_ahead._pid
    store.close()
    assert store._listing_ahead is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid or -1, os.WNOHANG)


def test_listing_ahead_creates_nothing(tmp_path: Path, forking: list[int]) -> None:
    """expect_list comes before the engine's guards: a store whose directory
    is not there (moved, mistyped) is left as it is until the engine lists it."""
    store = vdir(tmp_path, "missing")
    store.expect_list()
    assert forking == [] and not store.path.exists()
    store.close()
