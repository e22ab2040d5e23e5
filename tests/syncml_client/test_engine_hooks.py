"""The two engine hooks the SyncML client needs: ``begin_sync`` and ``FlushFailed``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from calsync.items import Item
from calsync.stores import FlushFailed, StoreContext
from calsync.stores.memory import MemoryStore
from calsync.sync.status import StatusDB
from tests.conftest import event
from tests.sync.helpers import Pair, put, summaries


class Recording(MemoryStore):
    """A buffered memory store that remembers ``begin_sync`` and can fail some writes."""

    buffered: ClassVar[bool] = True

    def __init__(self, name: str, ctx: StoreContext) -> None:
        super().__init__(name, ctx)
        self.begun: list[dict[str, Any]] = []
        self.refuse: set[str] = set()
        self.queued: list[str] = []

    def begin_sync(self, *, mode: str, side: str, dry_run: bool) -> None:
        self.begun.append({"mode": mode, "side": side, "dry_run": dry_run})

    def add(self, item: Item) -> tuple[str, str]:
        self.queued.append(item.uid)
        return super().add(item)

    def flush(self) -> None:
        failed = {uid for uid in self.queued if uid in self.refuse}
        self.queued = []
        if failed:
            raise FlushFailed("refused by the test", store=self.name, uids=failed)


def stores(tmp: Path) -> tuple[Recording, Recording]:
    return (
        Recording("one", StoreContext(tmp / "c1")),
        Recording("two", StoreContext(tmp / "c2")),
    )


def test_stores_learn_the_mode_and_their_side_before_listing(tmp_path: Path) -> None:
    a, b = stores(tmp_path)
    pair = Pair(a, b, tmp_path)
    pair.sync()
    pair.sync(mode="one-way-a-to-b", dry_run=True)
    assert a.begun == [
        {"mode": "two-way", "side": "a", "dry_run": False},
        {"mode": "one-way-a-to-b", "side": "a", "dry_run": True},
    ]
    assert [x["side"] for x in b.begun] == ["b", "b"]


def test_a_partly_failed_flush_keeps_the_status_of_just_those_items(tmp_path: Path) -> None:
    a, b = stores(tmp_path)
    for uid in ("ok1", "bad", "ok2"):
        put(a, event(uid, uid.upper()))
    b.refuse = {"bad"}
    pair = Pair(a, b, tmp_path)
    r = pair.sync()
    assert [(e.uid, "not written: refused by the test" in e.message) for e in r.errors] == [
        ("bad", True)
    ]
    assert r.added_b == 2
    status = StatusDB(tmp_path / "status.sqlite")
    try:
        assert set(status.rows()) == {"ok1", "ok2"}
    finally:
        status.close()
    b.refuse = set()
    r = pair.sync()  # "bad" is in both stores now, without a status row: adopted
    assert not r.errors and r.changes == 0
    assert summaries(b) == {"ok1": "OK1", "bad": "BAD", "ok2": "OK2"}
