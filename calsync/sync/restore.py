"""Putting a version from history back into a store, and the store writes it shares
with deciding a conflict again (``sync.resolve``).

Rules (the engine's order of writes, for a write that is not a sync):
- the version a write replaces or deletes goes to history first (committed);
- the store write carries the version just read, so a store that changed in
  between is an error (``RestoreError``: try again), never overwritten blindly;
- the store is flushed before the call returns: the caller then tells the
  daemon the store changed, and the next sync carries the write to the other
  side as it would any edit.
"""

from __future__ import annotations

from calsync.config import Config
from calsync.items import Item
from calsync.stores import NotFound, PreconditionFailed, Store
from calsync.sync import history as hist
from calsync.sync.history import History, Version
from calsync.sync.runner import history_file, status_file
from calsync.sync.status import StatusDB


class RestoreError(Exception):
    pass


class NothingSaved(RestoreError, LookupError):
    """No such saved version, conflict or store: nothing to put back."""


def _find_id(cfg: Config, store: Store, uid: str) -> str | None:
    """The id of ``uid`` in ``store``, from the status of any pair using it."""
    for pair in cfg.pairs.values():
        for side, name in (("a", pair.a), ("b", pair.b)):
            if name != store.name or not status_file(cfg, pair.name).exists():
                continue
            db = StatusDB(status_file(cfg, pair.name))
            try:
                row = db.rows().get(uid)
            finally:
                db.close()
            if row is not None:
                return row.side(side)[0]
    return None


def current(cfg: Config, store: Store, uid: str) -> tuple[str, Item, str] | None:
    """(id, item, version) of ``uid`` in ``store`` now, or None if it holds none."""
    id = _find_id(cfg, store, uid)
    listing = store.list()
    if id is None and uid in listing.versions:
        id = uid  # stores addressed by UID
    if id is None or id not in listing.versions:
        return None
    item, version = store.get(id)
    return id, item, version


def put(cfg: Config, history: History, store: Store, item: Item, *, reason: str, pair: str) -> bool:
    """``item`` under its UID in ``store`` (the replaced version saved first); False
    when the store held exactly that already.  Not flushed."""
    try:
        now = current(cfg, store, item.uid)
        if now is None:
            store.add(item)
            return True
        id, old, version = now
        if old.hash == item.hash:
            return False
        history.record(
            uid=item.uid, store=store.name, pair=pair, reason=reason, content=old.raw, id=id,
            hash=old.hash,
        )  # fmt: skip
        store.update(id, item, version)
        return True
    except (NotFound, PreconditionFailed) as e:
        raise RestoreError(f"{store.name} changed meanwhile ({e}); try again") from e


def remove(
    cfg: Config, history: History, store: Store, uid: str, *, reason: str, pair: str
) -> bool:
    """Delete ``uid`` from ``store`` (saved first); False when it holds none.  Not flushed."""
    try:
        now = current(cfg, store, uid)
        if now is None:
            return False
        id, old, version = now
        history.record(
            uid=uid, store=store.name, pair=pair, reason=reason, content=old.raw, id=id,
            hash=old.hash,
        )  # fmt: skip
        store.delete(id, version)
        return True
    except (NotFound, PreconditionFailed) as e:
        raise RestoreError(f"{store.name} changed meanwhile ({e}); try again") from e


def restore(cfg: Config, uid: str, number: int | None, to: str | None) -> tuple[Version, str]:
    """Restore version ``number`` (default: the newest) of ``uid``; returns it and the store."""
    history = History(history_file(cfg))
    try:
        versions = history.versions(uid)
        if number is not None:
            versions = [v for v in versions if v.n == number]
        if not versions:
            raise NothingSaved(
                f"no saved version {number} of {uid}" if number else f"no saved version of {uid}"
            )
        version = versions[0]
        target = to or version.store
        if target not in cfg.stores:
            raise NothingSaved(f"no store named {target!r}")
        store = cfg.store(target)
        item = Item.from_bytes(version.content, source=f"history #{version.n}")
        try:
            put(cfg, history, store, item, reason=hist.RESTORE, pair="restore")
            store.flush()
        finally:
            store.close()
        return version, target
    finally:
        history.close()
