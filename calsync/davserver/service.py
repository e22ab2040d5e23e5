"""The calsync side of the endpoint: stores seen as collections, and device writes.

A collection is a live view of a configured store: every request lists the
store (``Store.list``: cheap, no parsing), names each item by an href
(its store id when that is a plain name, in any script, else a stable
derived name, or the name the client chose when it created the item), and
gives it an ETag derived from the store's version of it.  So changes the
daemon's pairs make to the store are what a client sees next, with no copy
to keep in step.  A new item is offered to the store under the client's
name (``Store.add_named``: a vdir takes it as its file name when it can);
when the store files it under another id, the state keeps the client's name.

A device's write goes through calsync, in the engine's order:

1. the item is parsed by calsync and checked as every device input is
   (``items.limits``; a malformed one is refused with a message naming the
   calendar and the href);
2. under the pair locks of every pair of that store (so no sync of it runs
   meanwhile, in this process or another), the version about to be
   overwritten or deleted is saved to the history and committed;
3. the store write, with the version the client saw (a store that changed
   since answers 412, the client fetches and tries again);
4. ``on_store_changed(store, "caldav <user>")``: the daemon runs that store's
   pairs, so the change reaches the other stores at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from calsync.config import Config
from calsync.davserver import context
from calsync.davserver.config import DavSettings
from calsync.davserver.context import DavAbort
from calsync.davserver.state import DavState, Snapshot
from calsync.items import Item, ItemError, limits
from calsync.stores import (
    ItemRejected,
    NotFound,
    PreconditionFailed,
    Store,
    StoreError,
    StoreUnavailable,
)
from calsync.sync import history as hist
from calsync.sync.history import History
from calsync.sync.lock import Busy, pair_lock
from calsync.sync.runner import history_file

log = logging.getLogger("calsync.davserver")

LOCK_WAIT = 20.0  # a device write waits this long for a running sync of the store
_NOT_PLAIN = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def plain_name(name: str) -> bool:
    """Whether a name can be an href as it is: one path segment in any script
    (Radicale escapes it), of at most 201 characters, no hidden name, no
    control or format character (Radicale refuses those), no trailing space."""
    if not 0 < len(name) <= 201 or name[0] == "." or name[-1] == " ":
        return False
    if "/" in name or "\\" in name:
        return False
    # isprintable: the common case at C speed (a listing asks for every item); it
    # also refuses spaces other than " " (U+3000...), which are fine
    return name.isprintable() or not any(unicodedata.category(c) in _NOT_PLAIN for c in name)


def default_href(id: str) -> str:
    """The href of a store id: the id itself when it is a plain name."""
    if plain_name(id):
        return id
    base = id.rstrip("/").rpartition("/")[2]  # a URL path (a CalDAV store's id)
    if plain_name(base):
        return base
    return derived_href(id)


def derived_href(id: str) -> str:
    return (
        "calsync-" + hashlib.sha256(id.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".ics"
    )


def etag_of(store: str, id: str, version: str) -> str:
    digest = hashlib.sha256(f"{store}\0{id}\0{version}".encode("utf-8", "surrogateescape"))
    return f'"{digest.hexdigest()[:40]}"'


@dataclass
class View:
    """One request's listing of a store, as a collection sees it."""

    name: str
    store: Store
    ids: dict[str, str]  # href -> store id
    versions: dict[str, str]  # store id -> version
    snapshot: Snapshot
    uids: dict[str, str] = field(default_factory=dict)  # store id -> UID, when listed

    def etag(self, href: str) -> str:
        id = self.ids[href]
        return etag_of(self.name, id, self.versions[id])


class DavService:
    """Stores as collections for the Radicale plugin; writes with history and locks."""

    def __init__(
        self,
        cfg: Config,
        settings: DavSettings,
        *,
        on_store_changed: Callable[[str, str], None] | None = None,
        lock_wait: float = LOCK_WAIT,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.state = DavState(cfg.state_dir / "davserver.sqlite")
        self.on_store_changed: list[Callable[[str, str], None]] = (
            [on_store_changed] if on_store_changed else []
        )
        self.lock_wait = lock_wait
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def close(self) -> None:
        self.state.close()

    # -- reading -----------------------------------------------------------------------------

    def open_store(self, name: str) -> Store:
        """A store instance for this request (closed when the request ends)."""
        try:
            store = self.cfg.store(name)
        except StoreError as e:
            raise context.fail(DavAbort(503, f"calendar {name}: {e}", retry_after=30)) from None
        ctx = context.current()
        if ctx is not None:
            ctx.stores.append(store)
        return store

    def view(self, name: str) -> View:
        """The store's listing, once per request (a PUT asks for it twice)."""
        ctx = context.current()
        if ctx is not None and name in ctx.views:
            found: View = ctx.views[name]
            return found
        made = self._view(name)
        if ctx is not None:
            ctx.views[name] = made
        return made

    def _view(self, name: str) -> View:
        store = self.open_store(name)
        try:
            listing = store.list()
        except (StoreError, OSError) as e:
            log.warning("calendar %s cannot be listed: %s", name, e)
            raise context.fail(DavAbort(503, f"calendar {name}: {e}", retry_after=30)) from None
        live = set(listing.versions) | set(listing.errors)
        mapped = self.state.hrefs(name)
        stale = [h for h, id in mapped.items() if id not in live]
        self.state.forget_hrefs(name, stale)
        ids: dict[str, str] = {}
        named = set()
        for href, id in mapped.items():
            if id in listing.versions:
                ids[href] = id
                named.add(id)
        kept: set[str] = set()
        for id in listing.versions:
            if id in named:
                continue
            href = default_href(id)
            if href in ids:
                href = derived_href(id)
            ids[href] = id
        for id in listing.errors:
            if id not in named:
                kept.add(default_href(id))
        current = {href: etag_of(name, id, listing.versions[id]) for href, id in ids.items()}
        snap = self.state.refresh(name, store.identity(), current, keep=kept)
        for id, why in listing.errors.items():
            log.warning("calendar %s: item %s is not served now: %s", name, id, why)
        return View(name, store, ids, dict(listing.versions), snap, dict(listing.uids))

    def fetch(self, view: View, hrefs: list[str]) -> Iterator[tuple[str, Item | None, str]]:
        """(href, item or None, etag) for each href that exists; bad items are logged."""
        by_id = {view.ids[h]: h for h in hrefs if h in view.ids}
        if not by_id:
            return
        try:
            got = list(view.store.get_many(list(by_id)))
        except (StoreError, OSError) as e:
            raise context.fail(
                DavAbort(503, f"calendar {view.name}: {e}", retry_after=30)
            ) from None
        for id, item, version in got:
            href = by_id[id]
            if isinstance(item, ItemError):
                log.warning(
                    "calendar %s: item %s (%s) cannot be served: %s", view.name, href, id, item
                )
                yield href, None, ""
                continue
            if version and version != view.versions.get(id):
                view.versions[id] = version  # what we actually read
            yield href, item, view.etag(href)

    # -- writing -----------------------------------------------------------------------------

    def _store_lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(name, threading.Lock())

    @contextmanager
    def writing(self, name: str) -> Iterator[None]:
        """No sync of the store's pairs runs while a device writes to it."""
        lock = self._store_lock(name)
        if not lock.acquire(timeout=self.lock_wait):
            raise context.fail(DavAbort(503, f"calendar {name} is busy", retry_after=5))
        try:
            with ExitStack() as stack:
                for pair in sorted(self.cfg.pairs_of_store(name)):
                    path = self.cfg.state_dir / "locks" / f"{pair}.lock"
                    try:
                        stack.enter_context(pair_lock(path, wait=self.lock_wait))
                    except Busy:
                        raise context.fail(
                            DavAbort(
                                503,
                                f"calendar {name} is being synced (pair {pair}); try again",
                                retry_after=5,
                            )
                        ) from None
                yield
        finally:
            lock.release()

    def parse(self, view: View, href: str, raw: bytes) -> Item:
        if len(raw) > self.settings.max_size:
            raise context.fail(
                DavAbort(
                    413, f"calendar {view.name}: {href}: larger than {self.settings.max_size} bytes"
                )
            )
        source = f"calendar {view.name}: {href}"
        try:
            item = Item.from_bytes(raw, source=source)
            limits.check_input(item, source)  # the rules every device input meets
        except ItemError as e:
            raise context.fail(DavAbort(400, str(e))) from None
        return item

    def put(self, view: View, href: str, item: Item, user: str) -> tuple[str, Item | None]:
        """Store ``item`` at ``href``; returns (new ETag, the replaced item or None)."""
        name = view.name
        store = view.store
        id = view.ids.get(href)
        old: Item | None = None
        try:
            with self.writing(name):
                if id is not None:
                    try:
                        old, version = store.get(id)
                    except NotFound:
                        id = None
                    else:
                        if version != view.versions.get(id):
                            raise store.error(PreconditionFailed, "changed since it was listed", id)
                if id is not None and old is not None:
                    self._save(name, id, old, user, hist.UPDATE)
                    version = store.update(id, item, version)
                else:
                    id, version = store.add_named(item, href)
                store.flush()
        except PreconditionFailed as e:
            raise context.fail(DavAbort(412, f"calendar {name}: {href}: {e.message}")) from None
        except ItemRejected as e:
            raise context.fail(DavAbort(403, f"calendar {name}: {href}: {e.message}")) from None
        except StoreUnavailable as e:
            raise context.fail(
                DavAbort(503, f"calendar {name}: {e.message}", retry_after=30)
            ) from None
        except StoreError as e:
            raise context.fail(DavAbort(500, f"calendar {name}: {href}: {e}")) from None
        if old is None:
            view.ids[href] = id
            if default_href(id) != href:
                self.state.set_href(name, href, id)
        view.versions[id] = version
        log.info(
            "caldav %s %s %s in calendar %s", user, "updated" if old else "added", item.uid, name
        )
        self._changed(name, user)
        return view.etag(href), old

    def delete(self, view: View, href: str, user: str) -> None:
        name = view.name
        store = view.store
        id = view.ids[href]
        try:
            with self.writing(name):
                try:
                    old, version = store.get(id)
                except NotFound:
                    return  # already gone: the goal is reached
                if version != view.versions.get(id):
                    raise store.error(PreconditionFailed, "changed since it was listed", id)
                self._save(name, id, old, user, hist.REMOTE_DELETE)
                store.delete(id, version)
                store.flush()
        except PreconditionFailed as e:
            raise context.fail(DavAbort(412, f"calendar {name}: {href}: {e.message}")) from None
        except NotFound:
            return
        except StoreUnavailable as e:
            raise context.fail(
                DavAbort(503, f"calendar {name}: {e.message}", retry_after=30)
            ) from None
        except StoreError as e:
            raise context.fail(DavAbort(500, f"calendar {name}: {href}: {e}")) from None
        log.info("caldav %s deleted %s from calendar %s", user, old.uid, name)
        self.state.forget_hrefs(name, [href])
        self._changed(name, user)

    def _save(self, store: str, id: str, old: Item, user: str, reason: str) -> None:
        """The version about to go, into the history (committed before the write)."""
        try:
            h: str | None = old.hash
        except ItemError:
            h = None
        history = History(history_file(self.cfg))
        try:
            history.record(
                uid=old.uid,
                store=store,
                pair=f"caldav/{user}",
                reason=reason,
                content=old.raw,
                id=id,
                hash=h,
            )
        finally:
            history.close()

    def _changed(self, store: str, user: str) -> None:
        for hook in self.on_store_changed:
            try:
                hook(store, f"caldav {user}")
            except Exception:
                log.exception("store-changed hook failed for %s", store)
