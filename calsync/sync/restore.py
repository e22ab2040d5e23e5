"""Putting a version from history back into a store."""

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


def restore(cfg: Config, uid: str, number: int | None, to: str | None) -> tuple[Version, str]:
    """Restore version ``number`` (default: the newest) of ``uid``; returns it and the store."""
    history = History(history_file(cfg))
    try:
        versions = history.versions(uid)
        if number is not None:
            versions = [v for v in versions if v.n == number]
        if not versions:
            raise RestoreError(
                f"no saved version {number} of {uid}" if number else f"no saved version of {uid}"
            )
        version = versions[0]
        target = to or version.store
        if target not in cfg.stores:
            raise RestoreError(f"no store named {target!r}")
        store = cfg.store(target)
        item = Item.from_bytes(version.content, source=f"history #{version.n}")
        try:
            id = _find_id(cfg, store, uid)
            listing = store.list()
            if id is None and uid in listing.versions:
                id = uid  # stores addressed by UID
            if id is not None and id in listing.versions:
                current, cur_version = store.get(id)
                history.record(
                    uid=uid,
                    store=store.name,
                    pair="restore",
                    reason=hist.RESTORE,
                    content=current.raw,
                    id=id,
                    hash=current.hash,
                )
                store.update(id, item, cur_version)
            else:
                store.add(item)
            store.flush()
        except (NotFound, PreconditionFailed) as e:
            raise RestoreError(f"{store.name} changed during the restore ({e}); try again") from e
        finally:
            store.close()
        return version, target
    finally:
        history.close()
