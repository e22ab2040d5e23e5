"""Syncing one pair: guards, listing, fetching, planning, executing.

The order of writes is what makes a crash at any point harmless:

1. a version about to be overwritten or deleted is saved to history and
   committed;
2. the store write happens;
3. the status row describing it is staged, and committed in a batch only
   after the store made its writes durable (``Store.flush``; a buffered store
   such as an ``.ics`` file writes everything there, at the end).

So the status may lag behind the stores, never run ahead of them.  A lagging
status converges on the next sync: an item present on both sides with equal
content and no status row is adopted; two sides that both "changed" to the
same content are recorded, not conflicted; a delete already done is forgotten.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from calsync.items import Item, ItemError
from calsync.plain import Plain
from calsync.stores import (
    FlushFailed,
    Listing,
    NotFound,
    PreconditionFailed,
    Store,
    StoreError,
)
from calsync.sync import MODES, REPORTED
from calsync.sync import history as hist
from calsync.sync.history import History
from calsync.sync.packing import unpack
from calsync.sync.plan import (
    Action,
    Add,
    Changed,
    Conflict,
    Delete,
    Forget,
    New,
    Plan,
    Record,
    Report,
    SideIndex,
    Update,
    index_side,
    one_way,
    other,
    plan,
    refresh,
    to_fetch,
)
from calsync.sync.status import Row, StatusDB

log = logging.getLogger("calsync.sync")

# Durability points (filesystem sync + status commit): after this many store
# writes or seconds, whichever comes first, and at the end.  Each costs a
# filesystem sync, so not too often; each bounds the work a crash makes the
# next sync redo (it re-adopts what was written since), so not too rarely.
CHECKPOINT_EVERY = 5000
CHECKPOINT_SECONDS = 10.0
# The versions that a run of this many actions will replace or delete are saved
# to history in one transaction before the first of them (rule 1 above at one
# commit per run instead of one per item; a crash may leave a copy too many in
# history, never one too few).
HISTORY_BATCH = 500

# Fault injection for the crash tests: SIGKILL this process at the N-th crash
# point (before and after every store write and status commit).  Read once.
_CRASH_AT = int(os.environ.get("CALSYNC_CRASH_AT", "0") or 0)
_crash_counter = 0


def crash_point() -> None:
    """Where a crash test may kill us; a no-op unless CALSYNC_CRASH_AT is set."""
    global _crash_counter
    if not _CRASH_AT:
        return
    _crash_counter += 1
    if _crash_counter == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)


class PairOptions(Plain):
    """The engine-relevant settings of a pair (see ``calsync.config``)."""

    __slots__ = ("conflict", "max_delete", "merge_fallback", "name", "on_empty")
    name: str
    conflict: str
    merge_fallback: str
    on_empty: str  # abort | sync
    max_delete: float | int  # a fraction of a side's items, or an absolute count

    def __init__(
        self,
        name: str,
        conflict: str = "merge",
        merge_fallback: str = "newest",
        on_empty: str = "abort",
        max_delete: float | int = 0.5,
    ) -> None:
        self.name = name
        self.conflict = conflict
        self.merge_fallback = merge_fallback
        self.on_empty = on_empty
        self.max_delete = max_delete

    @classmethod
    def of(cls, name: str, settings: Any) -> PairOptions:
        """From a configured pair or a SyncML account (they hold the same settings)."""
        return cls(
            name=name,
            conflict=settings.conflict,
            merge_fallback=settings.merge_fallback,
            on_empty=settings.on_empty,
            max_delete=settings.max_delete,
        )


class GuardStop(Exception):
    """A guard refused the sync; nothing was written."""


class ItemFailure(Plain):
    __slots__ = ("id", "message", "side", "store", "uid")
    store: str
    side: str
    id: str | None
    uid: str | None
    message: str

    def __init__(
        self, store: str, side: str, id: str | None, uid: str | None, message: str
    ) -> None:
        self.store = store
        self.side = side
        self.id = id
        self.uid = uid
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "side": self.side,
            "id": self.id,
            "uid": self.uid,
            "message": self.message,
        }

    def __str__(self) -> str:
        what = self.uid or self.id or "?"
        return f"{self.store}: {what}: {self.message}"


class SyncResult(Plain):
    __slots__ = (
        "added_a",
        "added_b",
        "collections",
        "conflicts",
        "deleted_a",
        "deleted_b",
        "errors",
        "guard",
        "pair",
        "seconds",
        "stopped",
        "updated_a",
        "updated_b",
    )
    pair: str
    added_a: int
    added_b: int
    updated_a: int
    updated_b: int
    deleted_a: int
    deleted_b: int
    conflicts: int
    errors: list[ItemFailure]
    stopped: str | None  # why the whole pair did not sync (guard, store down)
    guard: bool  # True when ``stopped`` is a guard (needs --force or a decision)
    seconds: float
    # a pair with collections: each one's result (the counts above are their sums)
    collections: dict[str, SyncResult] | None

    def __init__(
        self,
        pair: str,
        added_a: int = 0,
        added_b: int = 0,
        updated_a: int = 0,
        updated_b: int = 0,
        deleted_a: int = 0,
        deleted_b: int = 0,
        conflicts: int = 0,
        errors: list[ItemFailure] | None = None,
        stopped: str | None = None,
        guard: bool = False,
        seconds: float = 0.0,
        collections: dict[str, SyncResult] | None = None,
    ) -> None:
        self.pair = pair
        self.added_a = added_a
        self.added_b = added_b
        self.updated_a = updated_a
        self.updated_b = updated_b
        self.deleted_a = deleted_a
        self.deleted_b = deleted_b
        self.conflicts = conflicts
        self.errors = errors if errors is not None else []
        self.stopped = stopped
        self.guard = guard
        self.seconds = seconds
        self.collections = collections

    def bump(self, what: str, side: str, n: int = 1) -> None:
        key = f"{what}_{side}"
        setattr(self, key, getattr(self, key) + n)

    @property
    def changes(self) -> int:
        return (
            self.added_a
            + self.added_b
            + self.updated_a
            + self.updated_b
            + self.deleted_a
            + self.deleted_b
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "added_a": self.added_a,
            "added_b": self.added_b,
            "updated_a": self.updated_a,
            "updated_b": self.updated_b,
            "deleted_a": self.deleted_a,
            "deleted_b": self.deleted_b,
            "conflicts": self.conflicts,
            "errors": [e.to_json() for e in self.errors],
        }
        if self.stopped:
            out["stopped"] = self.stopped
            if self.guard:  # a safety guard: it waits for a decision (--force)
                out["guard"] = True
        if self.collections is not None:  # only for pairs with collections
            out["collections"] = {n: r.to_json() for n, r in self.collections.items()}
        return out


Progress = Callable[[int, int], None]

# SyncResult.stopped of a run told to stop (Engine(cancel=...)) at a safe point
INTERRUPTED = "interrupted (calsync is shutting down)"


class Engine:
    """Syncs one pair once (see module docstring)."""

    def __init__(
        self,
        options: PairOptions,
        a: Store,
        b: Store,
        status: StatusDB,
        history: History,
        *,
        force: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
        mode: str = "two-way",
        cancel: Callable[[], bool] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown sync mode {mode!r} (known: {', '.join(MODES)})")
        self.mode = mode
        self.opt = options
        self.stores = {"a": a, "b": b}
        self.status = status
        self.history = history
        self.force = force
        self.dry_run = dry_run
        self.progress = progress
        self.cancel = cancel  # asked between actions: True stops at that safe point
        self.result = SyncResult(options.name)
        # uid -> sides written for it since the last commit, and what was counted
        self._written: dict[str, set[str]] = {}
        self._counted: dict[str, list[tuple[str, str]]] = {}
        self._writes_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._base_hashes: dict[str, str] = {}  # uid -> hash of its base, where computed
        # duplicates that lost in their file, read this run: (uid, side, id, content, why)
        self._dropped: list[tuple[str, str, str, bytes, str]] = []

    # -- top level --------------------------------------------------------------

    def run(self) -> SyncResult:
        started = time.monotonic()
        try:
            self._run()
        except GuardStop as e:
            self.result.stopped = str(e)
            self.result.guard = True
            log.warning("pair %s: %s", self.opt.name, e, extra=REPORTED)
        except StoreError as e:
            self.result.stopped = str(e)
            log.error("pair %s: %s", self.opt.name, e, extra=REPORTED)
        self.result.seconds = time.monotonic() - started
        return self.result

    def _run(self) -> None:
        self._check_identity()
        for side in ("a", "b"):
            self.stores[side].begin_sync(mode=self.mode, side=side, dry_run=self.dry_run)
        if self.mode in ("slow", "refresh-from-a", "refresh-from-b") and not self.dry_run:
            # compare everything afresh: items are matched by UID and content,
            # and nothing is taken for deleted because the status remembered it
            self.status.reset()
        for side in ("a", "b"):  # stores may list in the background meanwhile
            self.stores[side].expect_list()
        rows = self.status.rows() if not self.mode.startswith(("slow", "refresh")) else {}
        listings = {side: self.stores[side].list() for side in ("a", "b")}
        self._check_empty(rows, listings)
        indexes = {side: index_side(rows, side) for side in ("a", "b")}
        fetched = {
            side: self._fetch(rows, listings[side], side, indexes[side]) for side in ("a", "b")
        }
        self._fill_hashes(rows, listings, indexes)
        if self.mode.startswith("refresh-from-"):
            the_plan = refresh(listings, fetched, self.mode[-1])
            self._check_refresh_deletes(listings, the_plan)
        else:
            the_plan = plan(rows, listings, fetched, indexes)
            if self.mode.startswith("one-way-"):
                the_plan.actions = one_way(the_plan.actions, self.mode[-1])
        self._check_deletes(rows, the_plan)
        if self.dry_run:
            self._count_plan(the_plan)
            return
        self._execute(the_plan.actions)
        self._finish()

    # -- guards ------------------------------------------------------------------

    def _check_identity(self) -> None:
        changed = []
        for side in ("a", "b"):
            seen = self.status.get_meta(f"identity.{side}")
            now = self.stores[side].identity()
            if seen is not None and seen != now:
                changed.append((side, seen, now))
        if not changed:
            return
        if self.status.count() == 0:
            return
        desc = "; ".join(
            f"store {self.stores[s].name} was {old}, is now {new}" for s, old, new in changed
        )
        if not self.force:
            raise GuardStop(
                f"{desc}. Not syncing: its items would look deleted. If the new location is "
                f"right, run `calsync sync {self.opt.name} --force` to start this pair afresh "
                "(items are matched by UID, nothing is deleted)."
            )
        log.warning("pair %s: %s; starting afresh (--force)", self.opt.name, desc)
        self.status.reset()

    def _check_empty(self, rows: dict[str, Row], listings: dict[str, Listing]) -> None:
        if not rows or self.opt.on_empty == "sync" or self.force:
            return
        for side in ("a", "b"):
            lst = listings[side]
            if not lst.versions and not lst.errors:
                store = self.stores[side]
                raise GuardStop(
                    f"{store.describe()} is empty but held {len(rows)} items at the last "
                    f"sync. Not deleting them everywhere. If you really emptied it, run "
                    f'`calsync sync {self.opt.name} --force` (or set on_empty = "sync" '
                    "for this pair); if not, check the store's configuration."
                )

    def _check_deletes(self, rows: dict[str, Row], the_plan: Plan) -> None:
        if self.force or not rows:
            return
        limit = self.opt.max_delete
        for side in ("a", "b"):
            n = the_plan.deletes_on(side)
            if n <= 1:
                continue
            allowed = limit * len(rows) if isinstance(limit, float) else limit
            if n > allowed:
                what = f"{limit:.0%}" if isinstance(limit, float) else str(limit)
                raise GuardStop(
                    f"this sync would delete {n} of {len(rows)} items from "
                    f"{self.stores[side].describe()}, more than max_delete ({what}). "
                    f"Nothing was changed. If these deletions are intended, run "
                    f"`calsync sync {self.opt.name} --force`."
                )

    def _check_refresh_deletes(self, listings: dict[str, Listing], the_plan: Plan) -> None:
        """A refresh deletes what the source lacks: the delete limit still applies."""
        if self.force:
            return
        limit = self.opt.max_delete
        for side in ("a", "b"):
            n = the_plan.deletes_on(side)
            total = len(listings[side].versions)
            allowed = limit * total if isinstance(limit, float) else limit
            if n > 1 and n > allowed:
                raise GuardStop(
                    f"this refresh would delete {n} of {total} items from "
                    f"{self.stores[side].describe()}, more than max_delete. Nothing was "
                    f"changed. If intended, run it again with --force."
                )

    def _fill_hashes(
        self, rows: dict[str, Row], listings: dict[str, Listing], indexes: dict[str, SideIndex]
    ) -> None:
        """Compute hashes left empty at copy time, for rows that will be compared now.

        Copies record no hash (hashing every item of a first sync is the costliest
        part of it); an empty hash means "the hash of the base", computed here
        only for the few rows whose version moved on some side.
        """
        moved = set()
        for side in ("a", "b"):
            uid_of = indexes[side].uid_of
            moved |= {uid_of[id] for id in indexes[side].moved(listings[side])}
        unhashed = [rows[uid] for uid in moved if not (rows[uid].a_hash and rows[uid].b_hash)]
        bases = self.status.bases(row.uid for row in unhashed)
        for row in unhashed:
            base = bases.get(row.uid)
            try:
                h = Item(base, row.uid).hash if base is not None else "?"
            except ItemError:
                h = "?"
            else:
                self._base_hashes[row.uid] = h  # history needs it if the base is replaced
            row.a_hash = row.a_hash or h
            row.b_hash = row.b_hash or h

    # -- reading -----------------------------------------------------------------

    def _fetch(
        self, rows: dict[str, Row], listing: Listing, side: str, index: SideIndex
    ) -> dict[str, Item | ItemError]:
        ids = to_fetch(rows, listing, side, index)
        out: dict[str, Item | ItemError] = {}
        if not ids:
            return out
        store = self.stores[side]
        for id, got, version in store.get_many(ids):
            out[id] = got
            if version and not isinstance(got, ItemError):
                listing.versions[id] = version  # the version of what we actually read
                if got.notes is not None:
                    self._noted(side, id, got)
        return out

    def _noted(self, side: str, id: str, item: Item) -> None:
        """What reading ``item`` repaired (logged) and dropped (kept in history)."""
        notes = item.notes
        assert notes is not None
        store = self.stores[side].name
        if notes.repairs:
            log.warning(
                "pair %s: %s: item %s: repaired on reading (%s); the source stays as it is",
                self.opt.name,
                store,
                item.uid,
                "; ".join(notes.repairs),
            )
        for content, why in notes.dropped:
            self._dropped.append((item.uid, side, id, content, why))
        if notes.dropped:
            log.warning(
                "pair %s: %s: item %s: the file holds it %d times; syncing one, the other "
                "copies are kept in history (`calsync history %s`): %s",
                self.opt.name,
                store,
                item.uid,
                len(notes.dropped) + 1,
                item.uid,
                "; ".join(why for _, why in notes.dropped),
            )

    def _save_dropped(self) -> None:
        """Keep every duplicate that lost in history (once: a copy saved before is not)."""
        records = []
        for uid, side, id, content, _ in self._dropped:
            record = self._history_record(uid, side, id, hist.DUPLICATE, content=content)
            if record["hash"] is None or not self.history.has(uid, record["store"], record["hash"]):
                records.append(record)
        if records:
            self.history.record_many(records)
        self._dropped.clear()

    # -- writing -----------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        if self._dropped:
            self._save_dropped()
        total = len(actions)
        for side, store in self.stores.items():
            store.expect_adds([a.item for a in actions if isinstance(a, Add) and a.to == side])
        for n, action in enumerate(actions, 1):
            if (n - 1) % HISTORY_BATCH == 0:
                self._presave(actions[n - 1 : n - 1 + HISTORY_BATCH])
            if self.cancel is not None and self.cancel():
                # a safe point: what was done is flushed and recorded by _finish,
                # the rest is planned afresh by the next sync
                left = total - n + 1
                self.result.stopped = f"{INTERRUPTED}: {left} of {total} action(s) left"
                log.warning(
                    "pair %s: interrupted, %d of %d action(s) left", self.opt.name, left, total
                )
                break
            try:
                try:
                    self._do(action)
                except PreconditionFailed:
                    if not isinstance(action, Update | Delete):
                        raise
                    self._after_race(action)
            except (StoreError, ItemError, OSError, ValueError) as e:
                self._fail(action, str(e))
            if self.progress is not None:
                self.progress(n, total)
            if self._writes_since_checkpoint and (
                self._writes_since_checkpoint >= CHECKPOINT_EVERY
                or time.monotonic() - self._last_checkpoint >= CHECKPOINT_SECONDS
            ):
                self._checkpoint()

    def _after_race(self, act: Update | Delete) -> None:
        """Someone changed the target between our listing and our write: decide again.

        The target is read again and the UID goes through the normal rules in
        this same sync: an edit against our update is a conflict (merged or
        settled by the policy, the loser kept in history); an edit against our
        delete wins (the item comes back on the other side); a target that
        vanished meanwhile completes a delete, and takes our update as an add.
        """
        side = act.to if isinstance(act, Update) else act.on
        store = self.stores[side]
        fresh = [(got, version) for id, got, version in store.get_many([act.id]) if id == act.id]
        log.info(
            "pair %s: %s changed on %s during the sync; deciding again",
            self.opt.name,
            act.uid,
            store.name,
        )
        if not fresh:  # gone meanwhile
            if isinstance(act, Delete):
                self.status.stage_remove(act.uid)
                return
            self._add(Add(act.uid, side, act.item, act.source))
            return
        got, version = fresh[0]
        if isinstance(got, ItemError):
            raise got
        if isinstance(act, Delete):  # an edit beats a delete
            self._add(Add(act.uid, other(side), got, (act.id, version)))
            return
        theirs = Changed(act.id, version, got)
        ours = Changed(act.source[0], act.source[1], act.item)
        a, b = (ours, theirs) if side == "b" else (theirs, ours)
        self._conflict(Conflict(act.uid, a, b, has_base=True))

    def _fail(self, action: Action, message: str) -> None:
        uid = getattr(action, "uid", None)
        side = getattr(action, "to", None) or getattr(action, "on", None) or "a"
        id = getattr(action, "id", None)
        store = self.stores[side].name
        if isinstance(action, Add | Update):  # where the item that could not go came from
            message += f" (read from {self.stores[other(side)].name} {action.source[0]})"
        log.error(
            "pair %s: %s: item %s: %s", self.opt.name, store, uid or id, message, extra=REPORTED
        )
        self.result.errors.append(ItemFailure(store, side, id, uid, message))

    def _wrote(self, uid: str, side: str, counter: str) -> None:
        self._written.setdefault(uid, set()).add(side)
        self._counted.setdefault(uid, []).append((counter, side))
        self.result.bump(counter, side)
        self._writes_since_checkpoint += 1

    def _history_record(
        self,
        uid: str,
        side: str,
        id: str | None,
        reason: str,
        *,
        content: bytes | None = None,
        packed: bytes | None = None,
        h: str | None = None,
    ) -> dict[str, Any]:
        """``record``'s arguments for a version given as ``content`` or ``packed``
        (as the status stores it); ``h`` its hash when already known."""
        if h is None:
            try:
                h = Item(content if content is not None else unpack(packed or b""), uid).hash
            except ItemError:
                h = None
        return {
            "uid": uid,
            "store": self.stores[side].name,
            "pair": self.opt.name,
            "reason": reason,
            "content": content,
            "packed": packed,
            "id": id,
            "hash": h,
        }

    def _save_history(self, uid: str, side: str, id: str, content: bytes, reason: str) -> None:
        """Keep ``content`` before it is replaced (a conflict's loser)."""
        self.history.record(**self._history_record(uid, side, id, reason, content=content))

    def _presave(self, window: list[Action]) -> None:
        """Save the bases that the window's updates and deletes replace, in one go.

        Every update and delete runs through ``_execute``, which calls this for
        the window holding it first: ``_update`` and ``_delete`` find their
        base in history already.
        """
        replacing = [act for act in window if isinstance(act, Update | Delete)]
        # as stored: the history keeps the status's packed bytes (no unpacking and
        # packing again), unpacking only a base whose hash is not known yet
        bases = self.status.packed_bases(act.uid for act in replacing)
        records = []
        for act in replacing:
            if isinstance(act, Update):
                side, reason = act.to, hist.UPDATE
            else:
                side, reason = act.on, hist.REMOTE_DELETE
            packed = bases.get(act.uid)
            if packed is not None:
                h = self._base_hashes.get(act.uid)
                records.append(
                    self._history_record(act.uid, side, act.id, reason, packed=packed, h=h)
                )
        if records:
            crash_point()
            self.history.record_many(records)
            crash_point()

    def _do(self, action: Action) -> None:
        crash_point()
        self._do_action(action)
        crash_point()

    def _do_action(self, action: Action) -> None:
        if isinstance(action, Report):
            self.result.errors.append(
                ItemFailure(
                    self.stores[action.side].name,
                    action.side,
                    action.id,
                    action.uid,
                    action.reason,
                )
            )
            log.error(
                "pair %s: %s: item %s: %s",
                self.opt.name,
                self.stores[action.side].name,
                action.uid or action.id,
                action.reason,
                extra=REPORTED,
            )
        elif isinstance(action, Record):
            self.status.stage_put(action.row, action.base.raw if action.base else None)
        elif isinstance(action, Forget):
            self.status.stage_remove(action.uid)
        elif isinstance(action, Add):
            self._add(action)
        elif isinstance(action, Update):
            self._update(action)
        elif isinstance(action, Delete):
            self._delete(action)
        elif isinstance(action, Conflict):
            self._conflict(action)

    def _row(self, uid: str, sides: dict[str, tuple[str, str, str]]) -> Row:
        return Row(uid, *sides["a"], *sides["b"])

    def _add(self, act: Add) -> None:
        store = self.stores[act.to]
        id, version = store.add(act.item)
        log.info("pair %s: added %s to %s", self.opt.name, act.uid, store.name)
        h = act.item.known_hash  # "" = the base's hash, computed only if ever needed
        sides = {act.to: (id, version, h), other(act.to): (*act.source, h)}
        self.status.stage_put(self._row(act.uid, sides), act.item.raw)
        self._wrote(act.uid, act.to, "added")

    def _update(self, act: Update) -> None:
        store = self.stores[act.to]  # what it replaces is in history (_presave)
        crash_point()
        version = store.update(act.id, act.item, act.version)
        log.info("pair %s: updated %s on %s", self.opt.name, act.uid, store.name)
        h = act.item.known_hash
        sides = {act.to: (act.id, version, h), other(act.to): (*act.source, h)}
        self.status.stage_put(self._row(act.uid, sides), act.item.raw)
        self._wrote(act.uid, act.to, "updated")

    def _delete(self, act: Delete) -> None:
        store = self.stores[act.on]  # what it deletes is in history (_presave)
        crash_point()
        try:
            store.delete(act.id, act.version)
        except NotFound:
            pass  # already gone: the goal is reached
        log.info("pair %s: deleted %s from %s", self.opt.name, act.uid, store.name)
        self.status.stage_remove(act.uid)
        self._wrote(act.uid, act.on, "deleted")

    def _conflict(self, act: Conflict) -> None:
        # only needed when there is a conflict
        from calsync.sync.conflict import Clocks, resolve

        base_raw = self.status.base(act.uid) if act.has_base else None
        base = Item(base_raw, act.uid) if base_raw is not None else None
        names = (self.stores["a"].name, self.stores["b"].name)
        res = resolve(
            self.opt.conflict,
            base,
            act.a.item,
            act.b.item,
            fallback=self.opt.merge_fallback,
            names=names,
            clocks=Clocks(lambda: (self._modified("a", act.a), self._modified("b", act.b))),
        )
        result = res.result
        sides: dict[str, tuple[str, str, str]] = {}
        states: dict[str, Changed | New] = {"a": act.a, "b": act.b}
        for side, state in states.items():
            if result.hash == state.item.hash:
                sides[side] = (state.id, state.version, state.item.hash)
                continue
            self._save_history(act.uid, side, state.id, state.item.raw, hist.CONFLICT_LOSER)
            crash_point()
            version = self.stores[side].update(state.id, result, state.version)
            crash_point()
            sides[side] = (state.id, version, result.hash)
            self._wrote(act.uid, side, "updated")
        self.status.stage_put(self._row(act.uid, sides), result.raw)
        self.result.conflicts += 1
        details: dict[str, Any] = {
            "winner": names[0 if res.winner == "a" else 1] if res.winner else None,
            "overlapping": res.overlapping,
            "clock": res.clock,
        }
        if res.copy is not None:
            copy_sides: dict[str, tuple[str, str, str]] = {}
            for side in ("a", "b"):
                id, version = self.stores[side].add(res.copy)
                copy_sides[side] = (id, version, res.copy.hash)
                self._wrote(res.copy.uid, side, "added")
            self.status.stage_put(self._row(res.copy.uid, copy_sides), res.copy.raw)
            details["copy_uid"] = res.copy.uid
        details["stores"] = {"a": names[0], "b": names[1]}
        versions = {
            hist.SIDE_A: (names[0], act.a.item.raw),
            hist.SIDE_B: (names[1], act.b.item.raw),
        }
        if result.hash not in (act.a.item.hash, act.b.item.hash):
            versions[hist.SIDE_RESULT] = (names[0], result.raw)  # a merge: a third version
        self.history.record_conflict(
            pair=self.opt.name,
            uid=act.uid,
            policy=self.opt.conflict,
            outcome=res.outcome,
            details=details,
            sides=versions,
        )
        log.warning(
            "pair %s: conflict on %s resolved: %s%s%s",
            self.opt.name,
            act.uid,
            res.outcome,
            f" ({', '.join(res.overlapping)})" if res.overlapping else "",
            f", decided by {res.clock}" if res.clock else "",
        )

    def _modified(self, side: str, state: Changed | New) -> float | None:
        """When the store of ``side`` last changed the item, if it can tell (and
        its answer is not merely the item's own stamp: ``conflict.echoes``)."""
        from calsync.sync.conflict import echoes

        store = self.stores[side]
        try:
            when = store.modified(state.id)
        except (StoreError, OSError) as e:
            log.info("pair %s: %s: no time for %s: %s", self.opt.name, store.name, state.id, e)
            return None
        if when is not None and echoes(state.item, when):
            log.debug(
                "pair %s: %s: its time of %s is the item's own", self.opt.name, store.name, state.id
            )
            return None
        return when

    # -- durability points ---------------------------------------------------------

    def _checkpoint(self) -> None:
        """Flush unbuffered stores, then commit the rows that only depend on them."""
        with self.status.packing_ahead():
            for store in self.stores.values():
                if not store.buffered:
                    store.flush()
        buffered = {side for side, store in self.stores.items() if store.buffered}
        held = (
            {uid for uid, sides in self._written.items() if not sides.isdisjoint(buffered)}
            if buffered
            else set()
        )
        ready = self.status.staged() - held
        crash_point()
        self.status.commit(ready)
        crash_point()
        for uid in ready:
            self._written.pop(uid, None)
            self._counted.pop(uid, None)
        self._writes_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    def _finish(self) -> None:
        with self.status.packing_ahead():  # dropping the rows of a failed flush is fine
            for side, store in self.stores.items():
                crash_point()
                try:
                    store.flush()
                except StoreError as e:
                    lost = {uid for uid, sides in self._written.items() if side in sides}
                    if isinstance(e, FlushFailed):
                        lost &= e.uids
                    self.status.discard(lost)
                    for uid in sorted(lost):
                        for counter, s in self._counted.get(uid, []):
                            if s == side:
                                self.result.bump(counter, s, -1)
                        self.result.errors.append(
                            ItemFailure(store.name, side, None, uid, f"not written: {e.message}")
                        )
                    log.error("pair %s: %s", self.opt.name, e, extra=REPORTED)
        crash_point()
        self.status.commit()
        crash_point()
        self._written.clear()
        self._counted.clear()
        for side in ("a", "b"):
            self.status.set_meta(f"identity.{side}", self.stores[side].identity())
        self._end_sync()

    def _end_sync(self) -> None:
        """Let stores that mark changes themselves clear what this sync settled."""
        marking = [s for s in ("a", "b") if self.stores[s].marks_changes]
        if not marking:
            return
        rows = self.status.rows()
        for side in marking:
            store = self.stores[side]
            settled = {r.side(side)[0]: r.side(side)[1] for r in rows.values() if r.side(side)[0]}
            try:
                store.end_sync(settled)
            except StoreError as e:
                log.warning("pair %s: %s (change marks stay for the next sync)", self.opt.name, e)
            crash_point()

    def _count_plan(self, the_plan: Plan) -> None:
        for act in the_plan.actions:
            if isinstance(act, Add):
                self.result.bump("added", act.to)
            elif isinstance(act, Update):
                self.result.bump("updated", act.to)
            elif isinstance(act, Delete):
                self.result.bump("deleted", act.on)
            elif isinstance(act, Conflict):
                self.result.conflicts += 1
            elif isinstance(act, Report):
                self.result.errors.append(
                    ItemFailure(self.stores[act.side].name, act.side, act.id, act.uid, act.reason)
                )
