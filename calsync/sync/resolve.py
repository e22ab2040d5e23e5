"""Deciding a logged conflict again: keep a's version, b's, or both.

The engine resolves every conflict by the pair's policy when it meets it, and
logs both sides' versions with it (``History.conflict_sides``).  Whoever looks
at it later (the web page, ``POST /api/resolve``) may decide otherwise:

- ``keep = "a"`` / ``"b"``: that side's version goes under the UID, and the
  conflict copy the engine made (keep-both, or a newest that nothing decided:
  ``copy_uid``) is deleted;
- ``keep = "both"``: the winner's version (a's when no clock decided, or for
  a merge) under the UID, and the other side's as a marked copy: the very
  item ``conflict.conflict_copy`` makes (same UID), so a copy the engine made
  already is not made twice.

Rules:

- the writes go to every store of the conflict that is configured here (a
  device's mirror is not: the device gets the decision at its next session
  through the account's store).  Both sides of a pair then hold the same
  content, which the next sync records without a new conflict; a side that
  could not be written gets it from that sync like any edit;
- a store already holding what is wanted is not written: deciding twice
  changes nothing the second time;
- every replaced or deleted version is saved to history first (reason
  ``resolve``), and a store that changed meanwhile is an error
  (``RestoreError``), never overwritten (``sync.restore``'s writes);
- the decision is logged with the conflict (``History.record_resolution``)
  once the stores are flushed.
"""

from __future__ import annotations

from typing import Final, Literal

from calsync.config import Config
from calsync.items import Item, ItemError
from calsync.plain import Plain
from calsync.stores import Store, StoreError
from calsync.sync import history as hist
from calsync.sync.conflict import conflict_copy
from calsync.sync.history import History
from calsync.sync.restore import NothingSaved, RestoreError, put, remove
from calsync.sync.runner import history_file

Keep = Literal["a", "b", "both"]
KEEPS: Final = ("a", "b", "both")


class Resolved(Plain):
    """What a decision wrote: the stores changed (the caller syncs their pairs)."""

    __slots__ = ("changed", "conflict", "keep", "uid")
    conflict: int
    uid: str
    keep: str
    changed: list[str]

    def __init__(self, conflict: int, uid: str, keep: str, changed: list[str]) -> None:
        self.conflict = conflict
        self.uid = uid
        self.keep = keep
        self.changed = changed


def resolve(cfg: Config, n: int, keep: str) -> Resolved:
    """Decide conflict ``n`` again (see the module docstring).

    NothingSaved: no such conflict, or it was logged without its versions (an
    older calsync), or none of its stores is configured here; RestoreError: a
    store changed meanwhile; StoreError/ItemError as the stores raise them.
    """
    if keep not in KEEPS:
        raise ValueError(f"keep must be one of {', '.join(KEEPS)}")
    history = History(history_file(cfg))
    try:
        logged = history.conflict(n)
        if logged is None:
            raise NothingSaved(f"no conflict number {n}")
        sides = history.conflict_sides(n)
        if hist.SIDE_A not in sides or hist.SIDE_B not in sides:
            raise NothingSaved(
                f"conflict {n} was logged without its versions (an older calsync): "
                f"restore a version of {logged['uid']} from its history instead"
            )
        uid = str(logged["uid"])
        versions = {
            side: Item.from_bytes(content, source=f"conflict {n}, side {side}")
            for side, (_, content) in sides.items()
            if side in (hist.SIDE_A, hist.SIDE_B)
        }
        names = {side: store for side, (store, _) in sides.items()}
        copy_uid = logged.get("copy_uid")
        if keep == "both":
            winner = "b" if logged.get("winner") == names["b"] else "a"
            loser = "a" if winner == "b" else "b"
            wanted = versions[winner]
            copy: Item | None = conflict_copy(versions[loser], names[loser])
        else:
            wanted, copy = versions[keep], None
        stores = _configured(cfg, [names["a"], names["b"]])
        if not stores:
            raise NothingSaved(
                f"conflict {n} is between {names['a']} and {names['b']}, "
                "neither of them a configured store"
            )
        pair = str(logged["pair"])
        changed = [
            name
            for name in stores
            if _write(cfg, history, cfg.store(name), wanted, copy, copy_uid, pair=pair)
        ]
        history.record_resolution(n, keep)
        return Resolved(n, uid, keep, changed)
    finally:
        history.close()


def _configured(cfg: Config, names: list[str]) -> list[str]:
    return [name for name in dict.fromkeys(names) if name in cfg.stores]


def _write(
    cfg: Config,
    history: History,
    store: Store,
    wanted: Item,
    copy: Item | None,
    copy_uid: object,
    *,
    pair: str,
) -> bool:
    """The decision in one store, flushed; whether anything was written."""
    try:
        wrote = put(cfg, history, store, wanted, reason=hist.RESOLVE, pair=pair)
        if copy is not None:
            wrote = put(cfg, history, store, copy, reason=hist.RESOLVE, pair=pair) or wrote
        elif isinstance(copy_uid, str) and copy_uid:
            wrote = remove(cfg, history, store, copy_uid, reason=hist.RESOLVE, pair=pair) or wrote
        store.flush()
        return wrote
    except (StoreError, ItemError) as e:
        raise RestoreError(f"{store.name}: {e}") from e
    finally:
        store.close()
