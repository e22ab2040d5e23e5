"""A pair's ``metadata``: a calendar's display name and colour, synced like items.

The value each key had after the last sync is kept in the pair's status DB
(``meta`` ``metadata.KEY``).  Per key:

- both sides equal: recorded;
- one side changed since (the other still has the recorded value): copied to
  the other side (None removes it there);
- both changed: the pair's conflict rule -- ``a-wins``/``b-wins``, else the
  ``merge_fallback`` when it is one of those; otherwise (``newest``: a name has
  no clock) the conflict is reported and nothing is written, until the user
  makes the sides agree or picks a side;
- never synced before and different: as a conflict (a first sync has no base).

A store that cannot write a key now (Thunderbird running keeps its prefs.js
to itself) reports an error for that key and keeps the old record, so the next
sync tries again.  ``dry_run`` decides and reports but writes nothing.
"""

from __future__ import annotations

import logging

from calsync.config import PairConfig
from calsync.stores import Store, StoreError
from calsync.sync.engine import ItemFailure, SyncResult
from calsync.sync.status import StatusDB

log = logging.getLogger("calsync.metadata")

UNSET = "\0unset"  # the record of a key the last sync saw on neither side


def winner(pair: PairConfig) -> str | None:
    """The side whose value wins when both changed: "a", "b" or None (report)."""
    for rule in (pair.conflict, pair.merge_fallback):
        if rule in ("a-wins", "b-wins"):
            return rule[0]
    return None


def decide(
    base: str | None, va: str | None, vb: str | None, wins: str | None
) -> tuple[str, str | None] | None:
    """Pure: what to do for one key: None (in sync), ("a"/"b", value) to write that
    side, or ("conflict", None)."""
    if va == vb:
        return None
    if base is not None and va == base:
        return ("a", vb)
    if base is not None and vb == base:
        return ("b", va)
    if wins == "a":
        return ("b", va)
    if wins == "b":
        return ("a", vb)
    return ("conflict", None)


def sync_metadata(
    pair: PairConfig,
    a: Store,
    b: Store,
    status: StatusDB,
    result: SyncResult,
    *,
    dry_run: bool,
) -> None:
    """Sync ``pair.metadata`` between ``a`` and ``b``; problems go to ``result.errors``."""
    stores = {"a": a, "b": b}
    wins = winner(pair)
    for key in pair.metadata:
        try:
            va, vb = a.get_meta(key), b.get_meta(key)
        except StoreError as e:
            result.errors.append(ItemFailure(e.store or pair.name, "a", None, None, f"{key}: {e}"))
            continue
        recorded = status.get_meta(f"metadata.{key}")
        base = None if recorded is None else (None if recorded == UNSET else recorded)
        if recorded is None and (va is None or vb is None):
            base = None
            # first sync: a value on one side only is new there
            action = None if va == vb else ("b", va) if vb is None else ("a", vb)
        else:
            action = decide(base, va, vb, wins)
        if action is None:
            if not dry_run:
                status.set_meta(f"metadata.{key}", UNSET if va is None else va)
            continue
        side, value = action
        if side == "conflict":
            result.errors.append(
                ItemFailure(
                    pair.name,
                    "a",
                    None,
                    None,
                    f"{key} changed on both sides ({va!r} on {a.name}, {vb!r} on {b.name}); "
                    "set it the same on both, or set conflict = a-wins / b-wins",
                )
            )
            continue
        store = stores[side]
        log.info("pair %s: %s of %s: %r", pair.name, key, store.name, value)
        if dry_run:
            continue
        try:
            store.set_meta(key, value)
        except StoreError as e:
            result.errors.append(ItemFailure(store.name, side, None, None, f"{key}: {e}"))
            continue
        status.set_meta(f"metadata.{key}", UNSET if value is None else value)
