"""Property-based tests of the engine (Hypothesis state machines).

Random adds, edits, deletes and conflicting edits on 2 or 3 stores (memory,
vdir, ics) connected by pairs, random failing writes and precondition races
(another program writing between calsync's listing and its write), then syncs.
After each quiescent round (failures off, syncs repeated until nothing
changes): all stores hold the same items (by canonical hash); no item that was
never deleted is missing; nothing a sync removed or overwrote is lost (it is
in a store or in history); a repeated sync does nothing.

CI runs at least 500 examples in all; set CALSYNC_HYPOTHESIS_EXAMPLES for more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from calsync.items import Item
from calsync.stores import Listing, Store, StoreContext, StoreError
from calsync.stores.ics import IcsStore
from calsync.stores.memory import MemoryStore
from calsync.stores.vdir import VdirStore
from calsync.sync.engine import Engine, PairOptions
from calsync.sync.history import History
from calsync.sync.status import StatusDB
from tests.conftest import event
from tests.sync.helpers import contents

EXAMPLES = int(os.environ.get("CALSYNC_HYPOTHESIS_EXAMPLES", "300"))
UIDS = [f"uid-{i}" for i in range(6)]
WORDS = ["Lunch", "Standup", "Dentist", "Review", "Gym", "Call"]


def _fresh(store: Store) -> Store:
    """Another reader of the same data (so the store under test keeps its state)."""
    ctx = StoreContext(cache_dir=store.ctx.cache_dir.with_name("peek"))
    if isinstance(store, IcsStore):
        return IcsStore(store.name, ctx, store.path)
    if isinstance(store, VdirStore):
        return VdirStore(store.name, ctx, store.path)
    return store


class Flaky(Store):
    """Wraps a real store; can fail its next writes or race another writer."""

    def __init__(self, inner: Store, root: Path) -> None:
        super().__init__(inner.name, inner.ctx)
        self.inner = inner
        self.root = root
        self.type = inner.type  # type: ignore[misc]
        self.buffered = inner.buffered  # type: ignore[misc]
        self.failures = 0
        self.race = False
        self.replaced: set[str] = set()  # versions the other program overwrote

    def identity(self) -> str:
        return self.inner.identity()

    def list(self) -> Listing:
        return self.inner.list()

    def get(self, id: str) -> Any:
        return self.inner.get(id)

    def get_many(self, ids: Any) -> Any:
        return self.inner.get_many(ids)

    def _maybe_fail(self, id: str | None) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("injected write failure", store=self.name, id=id)
        if self.race:
            self.race = False
            self._other_writer(id)

    def _other_writer(self, id: str | None) -> None:
        """Another program changes the store under calsync's feet."""
        inner = self.inner
        # what it overwrites is its own doing, not calsync's: not expected in history
        self.replaced |= {i.hash for i in contents(_fresh(inner)).values()}
        if isinstance(inner, MemoryStore) and id in inner.items:
            inner.put_raw(id, event(id, "Raced by another program"))
        elif isinstance(inner, VdirStore) and id and (inner.path / id).exists():
            data = (inner.path / id).read_bytes()
            (inner.path / id).write_bytes(data.replace(b"SUMMARY:", b"SUMMARY:Raced "))
        elif isinstance(inner, IcsStore) and inner.path.exists():
            data = inner.path.read_bytes()
            inner.path.write_bytes(data.replace(b"SUMMARY:", b"SUMMARY:Raced ", 1))

    def add(self, item: Item) -> tuple[str, str]:
        self._maybe_fail(None)
        return self.inner.add(item)

    def update(self, id: str, item: Item, version: str) -> str:
        self._maybe_fail(id)
        return self.inner.update(id, item, version)

    def delete(self, id: str, version: str) -> None:
        self._maybe_fail(id)
        self.inner.delete(id, version)

    def flush(self) -> None:
        self.inner.flush()


class SyncMachine(RuleBasedStateMachine):
    n_stores = 2

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="calsync-prop-"))
        self.stores: list[Flaky] = []
        self.never_deleted: set[str] = set()
        self.deleted: set[str] = set()
        self.policy = "merge"

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @initialize(
        kinds=st.lists(st.sampled_from(["memory", "vdir", "ics"]), min_size=3, max_size=3),
        policy=st.sampled_from(["merge", "newest", "a-wins", "b-wins", "keep-both"]),
    )
    def setup(self, kinds: list[str], policy: str) -> None:
        self.policy = policy
        for i, kind in enumerate(kinds[: self.n_stores]):
            ctx = StoreContext(cache_dir=self.root / f"cache{i}")
            inner: Store
            if kind == "memory":
                inner = MemoryStore(f"s{i}", ctx)
            elif kind == "vdir":
                inner = VdirStore(f"s{i}", ctx, self.root / f"vdir{i}", fsync="never")
            else:
                inner = IcsStore(f"s{i}", ctx, self.root / f"cal{i}.ics")
            self.stores.append(Flaky(inner, self.root))

    # -- user actions ----------------------------------------------------------------

    def _find(self, store: Flaky, uid: str) -> tuple[str, str] | None:
        listing = store.inner.list()
        for id, got, version in store.inner.get_many(list(listing.versions)):
            if isinstance(got, Item) and got.uid == uid:
                return id, version
        return None

    @rule(s=st.integers(0, 2), uid=st.sampled_from(UIDS), word=st.sampled_from(WORDS))
    def add(self, s: int, uid: str, word: str) -> None:
        store = self.stores[s % self.n_stores]
        if self._find(store, uid) is not None:
            return
        store.inner.list()
        store.inner.add(Item.from_bytes(event(uid, word)))
        store.inner.flush()
        if uid not in self.deleted:
            self.never_deleted.add(uid)

    @rule(
        s=st.integers(0, 2),
        uid=st.sampled_from(UIDS),
        word=st.sampled_from(WORDS),
        field=st.sampled_from(["SUMMARY", "LOCATION", "CATEGORIES"]),
        stamp=st.integers(1, 9),
    )
    def edit(self, s: int, uid: str, word: str, field: str, stamp: int) -> None:
        store = self.stores[s % self.n_stores]
        found = self._find(store, uid)
        if found is None:
            return
        id, version = found
        current, _ = store.inner.get(id)
        master = current.master()
        assert master is not None
        master.set(field, word)
        master.set("LAST-MODIFIED", f"2025010{stamp}T000000Z")
        store.inner.update(id, Item.from_tree(current.tree), version)
        store.inner.flush()

    @rule(s=st.integers(0, 2), uid=st.sampled_from(UIDS))
    def delete(self, s: int, uid: str) -> None:
        store = self.stores[s % self.n_stores]
        found = self._find(store, uid)
        if found is None:
            return
        store.inner.delete(*found)
        store.inner.flush()
        self.deleted.add(uid)
        self.never_deleted.discard(uid)

    @rule(uid=st.sampled_from(UIDS), w1=st.sampled_from(WORDS), w2=st.sampled_from(WORDS))
    def conflicting_edits(self, uid: str, w1: str, w2: str) -> None:
        self.edit(0, uid, w1, "SUMMARY", 3)
        self.edit(1, uid, w2 + " too", "SUMMARY", 4)

    @rule(s=st.integers(0, 2), n=st.integers(1, 3))
    def fail_next_writes(self, s: int, n: int) -> None:
        self.stores[s % self.n_stores].failures = n

    @rule(s=st.integers(0, 2))
    def race_next_write(self, s: int) -> None:
        self.stores[s % self.n_stores].race = True

    # -- syncing -----------------------------------------------------------------------

    def _pairs(self) -> list[tuple[int, int]]:
        return [(i, i + 1) for i in range(self.n_stores - 1)]

    def _hashes(self) -> set[str]:
        return {it.hash for s in self.stores for it in contents(s.inner).values()}

    def _history_hashes(self) -> set[str]:
        h = History(self.root / "history.sqlite")
        try:
            return {v.hash or "" for v in h.versions()}
        finally:
            h.close()

    def _sync(self, p: int) -> int:
        i, j = self._pairs()[p % len(self._pairs())]
        before = self._hashes()
        status = StatusDB(self.root / f"status-{i}-{j}.sqlite")
        history = History(self.root / "history.sqlite")
        options = PairOptions(
            name=f"p{i}{j}", conflict=self.policy, on_empty="sync", max_delete=1.0
        )
        try:
            result = Engine(options, self.stores[i], self.stores[j], status, history).run()
        finally:
            status.close()
            history.close()
        replaced = set().union(*(s.replaced for s in self.stores))
        lost = before - self._hashes() - self._history_hashes() - replaced
        assert not lost, f"sync of pair {i}-{j} lost {len(lost)} versions"
        return result.changes + result.conflicts

    @rule(p=st.integers(0, 1))
    def sync(self, p: int) -> None:
        self._sync(p)

    @precondition(lambda self: bool(self.stores))
    @rule()
    def settle(self) -> None:
        """Failures off, sync until quiet, then check the invariants."""
        for s in self.stores:
            s.failures, s.race = 0, False
        for _ in range(10):
            changed = sum(self._sync(p) for p in range(len(self._pairs())))
            if not changed:
                break
        else:
            raise AssertionError("syncs did not converge within 10 rounds")
        views = [{u: i.hash for u, i in contents(s.inner).items()} for s in self.stores]
        for view in views[1:]:
            assert view == views[0], "stores disagree after quiescent syncs"
        missing = self.never_deleted - set(views[0])
        assert not missing, f"items never deleted are missing: {missing}"
        # a repeated sync does nothing
        assert sum(self._sync(p) for p in range(len(self._pairs()))) == 0

    @invariant()
    def no_duplicate_uids(self) -> None:
        for s in self.stores:
            contents(s.inner)  # asserts one item per UID


class ThreeStores(SyncMachine):
    n_stores = 3


SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestTwoStores = SyncMachine.TestCase
TestTwoStores.settings = SETTINGS
TestThreeStores = ThreeStores.TestCase
TestThreeStores.settings = SETTINGS
