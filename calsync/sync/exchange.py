"""One-shot exchange with a configured store: import a file's items, export them all.

Import adds or updates by UID.  It holds the locks of every pair using the
store (so no sync runs meanwhile), saves each version it overwrites in the
history (like the engine, reason ``update``, pair ``import``), and skips items
whose content is already there.  The copies of a UID the file holds twice
that are not the item go to the history too (reason ``duplicate``).  The next
sync of those pairs carries the imported changes to the other side.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

from calsync.config import Config
from calsync.items import Item, ItemError
from calsync.stores import NotFound, PreconditionFailed, Store, StoreError
from calsync.sync import history as hist
from calsync.sync.history import History
from calsync.sync.lock import Busy, pair_lock
from calsync.sync.runner import history_file

IMPORT_PAIR = "import"

log = logging.getLogger(__name__)


class ExchangeError(Exception):
    """The whole import or export could not run (store unusable, pair busy...)."""


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # messages naming the item
    # added items whose file gave no UID (identified by content: an entry edited
    # since an earlier import comes in as a new item)
    without_uid: list[str] = field(default_factory=list)


def _ids_by_uid(store: Store) -> tuple[dict[str, str], dict[str, str]]:
    """UID -> id of every readable item; and the ids the store lists as unreadable."""
    listing = store.list()
    by_uid = {uid: id for id, uid in listing.uids.items() if id in listing.versions}
    unknown = [id for id in listing.versions if id not in listing.uids]
    for id, got, _ in store.get_many(unknown):
        if isinstance(got, Item):
            by_uid[got.uid] = id
    return by_uid, listing.errors


def import_items(cfg: Config, store_name: str, items: list[Item]) -> ImportResult:
    """Add or update ``items`` in the configured store ``store_name``."""
    result = ImportResult()
    with ExitStack() as stack:
        for pair in sorted(cfg.pairs_of_store(store_name)):
            try:
                stack.enter_context(pair_lock(cfg.state_dir / "locks" / f"{pair}.lock"))
            except Busy:
                raise ExchangeError(
                    f"another calsync is syncing pair {pair} (which uses {store_name}) "
                    "right now; try again"
                ) from None
        try:
            store = cfg.store(store_name)
        except StoreError as e:
            raise ExchangeError(str(e)) from e
        stack.callback(store.close)
        history = History(history_file(cfg))
        stack.callback(history.close)
        try:
            by_uid, unreadable = _ids_by_uid(store)
        except StoreError as e:
            raise ExchangeError(str(e)) from e
        written: list[tuple[str, str]] = []  # (outcome, uid), counted once flushed
        for item in items:
            try:
                outcome = _import_one(store, history, item, by_uid, unreadable)
            except (StoreError, ItemError) as e:
                result.failed.append(f"{item.uid}: {e}")
                continue
            if item.notes is not None:
                _noted(history, store.name, item)
            if outcome == "unchanged":
                result.unchanged.append(item.uid)
            else:
                written.append((outcome, item.uid))
        try:
            store.flush()
        except StoreError as e:
            result.failed += [f"{uid}: {e}" for _, uid in written]
            return result
        derived = {item.uid for item in items if item.uid_derived}
        for outcome, uid in written:
            (result.added if outcome == "added" else result.updated).append(uid)
            if outcome == "added" and uid in derived:
                result.without_uid.append(uid)
    return result


def _noted(history: History, store: str, item: Item) -> None:
    """What reading the file repaired (logged) and the copies of a UID it held
    twice that are not the item (kept in history, as a sync keeps them)."""
    assert item.notes is not None
    if item.notes.repairs:
        log.warning(
            "import: item %s: repaired on reading (%s)", item.uid, "; ".join(item.notes.repairs)
        )
    for content, why in item.notes.dropped:
        log.warning("import: item %s: a copy not imported is kept in history: %s", item.uid, why)
        history.record(
            uid=item.uid, store=store, pair=IMPORT_PAIR, reason=hist.DUPLICATE, content=content
        )


def _import_one(
    store: Store, history: History, item: Item, by_uid: dict[str, str], unreadable: dict[str, str]
) -> str:
    id = by_uid.get(item.uid)
    if id is None:
        if item.uid in unreadable:
            raise StoreError(
                f"an item with this UID is in {store.name} but cannot be read there "
                f"({unreadable[item.uid]}); not overwritten"
            )
        store.add(item)
        return "added"
    try:
        current, version = store.get(id)
    except NotFound:
        store.add(item)
        return "added"
    if current.hash == item.hash:
        return "unchanged"
    history.record(
        uid=item.uid,
        store=store.name,
        pair=IMPORT_PAIR,
        reason=hist.UPDATE,
        content=current.raw,
        id=id,
        hash=current.hash,
    )
    try:
        store.update(id, item, version)
    except PreconditionFailed as e:
        raise StoreError(f"changed in {store.name} during the import ({e}); try again") from e
    return "updated"


def export_items(cfg: Config, store_name: str) -> tuple[list[Item], list[str]]:
    """Every item of the store (by id order), and messages for those it cannot read."""
    try:
        store = cfg.store(store_name)
    except StoreError as e:
        raise ExchangeError(str(e)) from e
    try:
        listing = store.list()
        problems = [f"{store_name}: {id}: {why}" for id, why in sorted(listing.errors.items())]
        items: list[Item] = []
        readable = sorted(id for id in listing.versions if id not in listing.errors)
        for _, got, _ in store.get_many(readable):
            if isinstance(got, Item):
                items.append(got)
            else:
                problems.append(str(got))
        return items, problems
    except StoreError as e:
        raise ExchangeError(str(e)) from e
    finally:
        store.close()
