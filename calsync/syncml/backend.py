"""Carrying out a SyncML session's requests: state DB, device mirrors, the engine.

``ServerSession`` (sans-I/O) yields requests; ``Backend`` is the callable the
transport answers them with.  It is where SyncML meets the rest of calsync:
nonces, DevInf and anchors live in ``<state>/syncml.sqlite`` (``DeviceDB``),
and ``RunSync`` runs the ordinary ``Engine`` between a device's mirror and the
account's store, under the pair lock, with the pair's own status DB
(``<state>/pairs/syncml-<account>-<device>-<datastore>.sqlite``) and the
shared history.  Blocking: the transport calls it from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from calsync.config import Config
from calsync.credentials import app_passwords
from calsync.items import Item, ItemError
from calsync.stores import Store, StoreContext, StoreError
from calsync.sync.engine import Engine, PairOptions
from calsync.sync.history import History
from calsync.sync.lock import Busy, pair_lock
from calsync.sync.runner import history_file
from calsync.sync.status import StatusDB
from calsync.syncml import content
from calsync.syncml import devinf as di
from calsync.syncml.config import AccountSettings
from calsync.syncml.mirror import DeviceDB, MirrorStore
from calsync.syncml.model import REFRESH_FROM_CLIENT, SLOW_SYNC
from calsync.syncml.session import (
    ENGINE_MODES,
    ApplyChanges,
    BeginSync,
    ConsumeNonce,
    Finish,
    IssueNonce,
    LoadAppPasswords,
    LoadDevInf,
    LoadNonce,
    OpenDatastore,
    Progress,
    Request,
    RunSync,
    SaveDevInf,
    SaveNonce,
    SyncOutcome,
)
from calsync.syncml.storeview import kind_view

log = logging.getLogger("calsync.syncml")


def pair_name(account: str, device: str, datastore: str) -> str:
    """``syncml-<account>-<device>-<datastore>``, safe as a file name and unique."""
    raw = f"syncml-{account}-{device}-{datastore}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    if safe != raw:
        safe += "-" + hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
    return safe


class Backend:
    """Answers ``ServerSession`` requests (one SQLite connection per thread)."""

    def __init__(self, cfg: Config, accounts: dict[str, AccountSettings]) -> None:
        self.cfg = cfg
        self.accounts = accounts
        self.state_dir = cfg.state_dir
        self.db_path = self.state_dir / "syncml.sqlite"
        self._local = threading.local()
        self.lock_wait = 60.0
        # one request per device at a time, even when a device's new session
        # overtakes its old one that is still running
        self._device_locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # (store name, who changed it) after a session wrote to an account's store:
        # the gateway daemon runs that store's pairs right away
        self.on_store_changed: list[Callable[[str, str], None]] = []

    def _device_lock(self, account: str, device: str) -> threading.Lock:
        with self._locks_lock:
            return self._device_locks.setdefault((account, device), threading.Lock())

    def db(self) -> DeviceDB:
        found: DeviceDB | None = getattr(self._local, "db", None)
        if found is None:
            found = DeviceDB(self.db_path)
            self._local.db = found
        return found

    def __call__(self, req: Request) -> Any:
        db = self.db()
        if isinstance(req, LoadNonce):
            return db.nonce(req.device)
        if isinstance(req, SaveNonce):
            db.set_nonce(req.device, req.nonce)
            return None
        if isinstance(req, ConsumeNonce):
            return db.consume_nonce(req.device, req.used, req.next)
        if isinstance(req, IssueNonce):
            return db.issue_nonce(req.device, req.nonce)
        if isinstance(req, LoadDevInf):
            text = db.devinf(req.account, req.device)
            return di.DeviceInfo.from_json(text) if text else None
        if isinstance(req, SaveDevInf):
            db.set_devinf(req.account, req.device, req.info.to_json())
            return None
        if isinstance(req, LoadAppPasswords):
            found = app_passwords(self.state_dir).of_account(req.account)
            return [(p.device, p.password) for p in found]
        with self._device_lock(req.account, req.device):
            return self._datastore_request(db, req)

    def _datastore_request(self, db: DeviceDB, req: Request) -> Any:
        assert not isinstance(
            req,
            LoadNonce
            | SaveNonce
            | ConsumeNonce
            | IssueNonce
            | LoadDevInf
            | SaveDevInf
            | LoadAppPasswords,
        )
        ds = db.datastore(req.account, req.device, req.datastore)
        if isinstance(req, OpenDatastore):
            return db.state(ds)
        if isinstance(req, BeginSync):
            db.begin(ds, req.mode)
            return None
        if isinstance(req, ApplyChanges):
            acct = self.accounts[req.account]
            return db.apply(
                ds,
                req.mode,
                req.changes,
                where=f"device {req.device} ({req.account}, {req.datastore})",
                policy=acct.conflict,
                fallback=acct.merge_fallback,
            )
        if isinstance(req, RunSync):
            return self.run_sync(db, ds, req)
        if isinstance(req, Progress):
            db.progress(ds, req.sent, req.results, req.maps)
            return None
        if isinstance(req, Finish):
            db.finish(ds, req.device_anchor, req.server_anchor, req.ok)
            return None
        raise TypeError(f"unknown request {req!r}")

    # -- the engine --------------------------------------------------------------------------

    def run_sync(self, db: DeviceDB, ds: int, req: RunSync) -> SyncOutcome:
        acct = self.accounts[req.account]
        pair = pair_name(req.account, req.device, req.datastore)
        where = f"device {req.device} ({req.account}, {req.datastore})"
        try:
            with pair_lock(self.state_dir / "locks" / f"{pair}.lock", wait=self.lock_wait):
                db.prepare(ds, req.mode)
                error = self._engine(db, ds, req, acct, pair)
                if error:
                    return SyncOutcome(error=error)
                return SyncOutcome(db.outgoing(ds, req.content_type, where=where))
        except Busy:
            return SyncOutcome(error="another calsync is syncing this device right now")

    def _engine(
        self, db: DeviceDB, ds: int, req: RunSync, acct: AccountSettings, pair: str
    ) -> str | None:
        store_name = acct.datastores[req.datastore]
        try:
            inner = self.cfg.store(store_name)
        except StoreError as e:
            return str(e)
        ctx = StoreContext(cache_dir=self.state_dir / "stores" / pair)
        mirror = MirrorStore(
            f"{req.device}/{req.datastore}",
            ctx,
            db,
            ds,
            identity=f"syncml:{req.account}/{req.device}/{req.datastore}",
        )
        kinds = acct.kinds(req.datastore)
        side_b: Store = inner
        if kinds is not None:
            side_b = kind_view(inner, kinds, db, lambda: set(mirror.list().uids.values()))
        status = StatusDB(self.state_dir / "pairs" / f"{pair}.sqlite")
        history = History(history_file(self.cfg))
        try:
            if req.mode in (SLOW_SYNC, REFRESH_FROM_CLIENT):
                self._match_by_content(db, ds, mirror, side_b)
            options = PairOptions.of(pair, acct)
            engine = Engine(options, mirror, side_b, status, history, mode=ENGINE_MODES[req.mode])
            result = engine.run()
            history.prune(self.cfg.retention_days)
            status.set_meta("last_run", str(time.time()))
            status.set_meta("last_result", json.dumps(result.to_json()))
        finally:
            mirror.close()
            side_b.close()
            status.close()
            history.close()
        for err in result.errors:
            log.error("%s: %s", pair, err)
        if result.added_b or result.updated_b or result.deleted_b:
            for notify in self.on_store_changed:
                notify(store_name, f"SyncML device {req.device}")
        log.info(
            "%s: %s mode: device +%d ~%d -%d, store +%d ~%d -%d, %d conflict(s) in %.2f s",
            pair,
            ENGINE_MODES[req.mode],
            result.added_a,
            result.updated_a,
            result.deleted_a,
            result.added_b,
            result.updated_b,
            result.deleted_b,
            result.conflicts,
            result.seconds,
        )
        if result.stopped:
            hint = ""
            if result.guard:
                hint = (
                    f" (for this device, adjust max_delete / on_empty in "
                    f"[syncml.accounts.{req.account}] if the change is intended)"
                )
            return result.stopped + hint
        return None

    def _match_by_content(self, db: DeviceDB, ds: int, mirror: MirrorStore, store: Store) -> None:
        """Slow sync: give device items that match a store item by content its UID.

        Phones that drop or rewrite UIDs (vCalendar ones) would otherwise get
        every event twice.  Matches by (type, start, summary), one to one.
        """
        m_list = mirror.list()
        if not m_list.versions:
            return
        s_list = store.list()
        uids = dict(s_list.uids)
        missing = [id for id in s_list.versions if id not in uids and id not in s_list.errors]
        items: dict[str, Item] = {}
        for id, got, _ in store.get_many(missing):
            if isinstance(got, Item):
                uids[id] = got.uid
                items[id] = got
        store_uids = set(uids.values())
        lonely = [g for g, uid in m_list.uids.items() if uid not in store_uids]
        if not lonely:
            return
        mirror_uids = set(m_list.uids.values())
        candidates = [id for id, uid in uids.items() if uid not in mirror_uids]
        if not candidates:
            return
        need = [id for id in candidates if id not in items]
        for id, got, _ in store.get_many(need):
            if isinstance(got, Item):
                items[id] = got
        keys: dict[tuple[str, str, str], str | None] = {}
        for id in candidates:
            item = items.get(id)
            key = content.content_key(item) if item is not None else None
            if key is not None:
                keys[key] = None if key in keys else item.uid  # type: ignore[union-attr]
        for guid in lonely:
            try:
                item, _ = mirror.get(guid)
            except (StoreError, ItemError):
                continue
            key = content.content_key(item)
            uid = keys.get(key) if key is not None else None
            if uid:
                log.info("slow sync: device item %s is %s by its content", item.uid, uid)
                db.rename_uid(ds, guid, uid)
                keys[key] = None  # type: ignore[index]
