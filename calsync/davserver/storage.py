"""The Radicale storage plugin: calsync stores as the calendars of configured users.

Radicale (used as a library) does the protocol: WebDAV/CalDAV requests,
XML, filters, REPORTs, discovery properties.  It asks its storage for
collections and items; this plugin answers from calsync:

* ``/`` (root), ``/<user>/`` (the principal and calendar home: no items),
  ``/<user>/<store>/`` (a calendar: the store's items) for every store in the
  user's ``calendars``; nothing else exists, and nothing can be created or
  deleted but items;
* items carry the ETag ``DavService`` derives from the store's version, and
  facts Radicale needs (UID, component, time range) cached by ETag in the
  state DB, so a PROPFIND or a time-range query parses only items it has
  never seen;
* ``sync()``: the changes recorded by ``DavState`` since the token; an
  unknown token raises ValueError, which Radicale answers with
  ``valid-sync-token``;
* ``upload``/``delete``: through ``DavService`` (history first, pair locks,
  the store's own concurrency check), using the exact bytes the client sent
  rather than Radicale's re-serialization.

Items Radicale cannot reason about stay served (listed, readable, deletable),
and queries treat them conservatively:

* a recurrence whose expansion stops at the budget (``items.expansion``, bound
  into Radicale by ``radicale_hooks``: a FREQ=SECONDLY event, a count of
  millions) *matches* every time-range filter it might match (its cached range
  runs to the end of time, and a filter that stopped expanding it counts as a
  match); ``expand`` and free-busy reports show its occurrences found within
  the budget (the first ``MAX_OCCURRENCES``);
* an item whose time range cannot be computed at all (a start in year 9999
  whose end overflows, a VEVENT without DTSTART) is listed with the whole of
  time as its range, and matches every time-range filter;
* either way a query answers within the budget per item, and an item's facts
  are computed once per ETag.
"""

from __future__ import annotations

import email.utils
import logging
import posixpath
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import vobject
from radicale import item as radicale_item
from radicale import pathutils, types
from radicale import storage as radicale_storage
from radicale.app import report as radicale_report
from radicale.item import filter as radicale_filter

from calsync.davserver import context, radicale_hooks
from calsync.davserver.context import DavAbort
from calsync.davserver.service import DavService, View
from calsync.items import Item, expansion

log = logging.getLogger("calsync.davserver")

COMPONENTS = "VEVENT,VTODO,VJOURNAL"
Facts = tuple[str, str, int, int]  # uid, component, start, end


def _http_date(when: float) -> str:
    return email.utils.formatdate(when, usegmt=True)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


EVERY = (radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX)  # all of time


def facts_of(text: str) -> Facts:
    """UID, main component and enclosing time range, as Radicale computes them
    (a range whose expansion stopped at the budget runs to the end of time)."""
    vobj = vobject.readOne(text)
    tag = radicale_item.find_tag(vobj)
    uid = radicale_item.get_uid_from_object(vobj) or ""
    watch = expansion.watch()
    start, end = radicale_item.find_time_range(vobj, tag)
    if watch.truncated:
        end = radicale_filter.TIMESTAMP_MAX
    return uid, tag, start, end


class _Batch:
    """Items of one listing whose text is fetched together, on first need."""

    def __init__(self, service: DavService, view: View) -> None:
        self.service = service
        self.view = view
        self.texts: dict[str, str | None] = {}
        self.pending: set[str] = set()
        self.lock = threading.Lock()

    def text(self, href: str) -> str:
        with self.lock:
            if href not in self.texts:
                wanted = sorted(self.pending | {href})
                self.pending.clear()
                for h in wanted:
                    self.texts.setdefault(h, None)
                for h, item, _ in self.service.fetch(self.view, wanted):
                    self.texts[h] = _text(item.raw) if item is not None else None
        text = self.texts.get(href)
        if text is None:
            raise RuntimeError(f"calendar {self.view.name}: item {href} cannot be read now")
        return text


class LazyItem(radicale_item.Item):
    """A Radicale item whose text is read from the store only when asked for."""

    def __init__(self, batch: _Batch, href: str, etag: str, facts: Facts, **kw: Any) -> None:
        uid, tag, start, end = facts
        super().__init__(
            href=href,
            text="",
            etag=etag,
            uid=uid,
            name="VCALENDAR",
            component_name=tag,
            time_range=(start, end),
            **kw,
        )
        self._text = None
        self._batch = batch

    def serialize(self) -> str:
        if self._text is None:
            self._text = self._batch.text(self.href or "")
        return self._text

    @property
    def vobject_item(self) -> Any:
        if self._vobject_item is None:
            self._vobject_item = vobject.readOne(self.serialize())
        return self._vobject_item


class _Base(radicale_storage.BaseCollection):
    def __init__(self, storage: Storage, path: str) -> None:
        self._storage = storage
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        return [(h, None) for h in hrefs]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return []

    def has_uid(self, uid: str) -> bool:
        return False

    def upload(
        self, href: str, item: radicale_item.Item
    ) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        raise context.fail(DavAbort(403, "only calendars hold items"))

    def delete(self, href: str | None = None) -> None:
        raise context.fail(DavAbort(403, "collections cannot be deleted here"))

    def get_meta(self, key: str | None = None) -> Any:
        return {} if key is None else None

    def set_meta(self, props: Mapping[str, str]) -> None:
        raise context.fail(DavAbort(403, "no properties to set here"))

    @property
    def last_modified(self) -> str:
        return _http_date(self._storage.started)

    @property
    def etag(self) -> str:
        return '"calsync-home"'

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        raise ValueError("no sync here")


class Home(_Base):
    """The root, and a user's principal (also their calendar home)."""


class Calendar(_Base):
    """A configured store, as a user's calendar collection."""

    def __init__(self, storage: Storage, user: str, name: str) -> None:
        super().__init__(storage, f"{user}/{name}")
        self.user = user
        self.name = name
        self._view: View | None = None

    @property
    def service(self) -> DavService:
        return self._storage.service

    @property
    def view(self) -> View:
        if self._view is None:
            self._view = self.service.view(self.name)
        return self._view

    # -- reading ------------------------------------------------------------------------------

    def _facts(self, view: View, hrefs: list[str], batch: _Batch | None = None) -> dict[str, Facts]:
        """Facts per href: cached by ETag, else parsed (and remembered)."""
        etags = {h: view.etag(h) for h in hrefs}
        known = self.service.state.item_facts(list(set(etags.values())))
        out = {h: known[e] for h, e in etags.items() if e in known}
        missing = [h for h in hrefs if h not in out]
        if missing:
            learned: dict[str, Facts] = {}
            for href, item, etag in self.service.fetch(view, missing):
                if item is None:
                    continue
                text = _text(item.raw)
                try:
                    facts = facts_of(text)
                except Exception as e:  # vobject's and Radicale's errors are of many kinds
                    log.warning(
                        "calendar %s: item %s (UID %s): no time range (%s); it is served "
                        "as spanning all of time",
                        self.name,
                        href,
                        item.uid,
                        e,
                    )
                    facts = (item.uid, item.kind, *EVERY)
                out[href] = facts
                learned[etag] = facts
                if batch is not None:
                    batch.texts[href] = text
            self.service.state.remember_facts(learned)
        return out

    def _items(self, hrefs: list[str]) -> Iterator[LazyItem]:
        view = self.view
        batch = _Batch(self.service, view)
        facts = self._facts(view, hrefs, batch)
        modified = _http_date(view.snapshot.modified)
        for href in hrefs:
            if href not in facts:
                continue
            if href not in batch.texts:
                batch.pending.add(href)
            yield LazyItem(
                batch,
                href,
                view.etag(href),
                facts[href],
                collection=self,
                last_modified=modified,
            )

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        wanted = list(dict.fromkeys(hrefs))
        view = self.view
        found = {item.href: item for item in self._items([h for h in wanted if h in view.ids])}
        return [(h, found.get(h)) for h in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        return list(self._items(sorted(self.view.ids)))

    def get_filtered(
        self, filters: Iterable[ET.Element]
    ) -> Iterable[tuple[radicale_item.Item, bool]]:
        """Time-range and component prefilters from cached facts (no parsing); the
        items they cannot decide are matched here, as Radicale would, but
        conservatively (see the module docstring), and returned as matched."""
        filters = list(filters)
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, "VCALENDAR")
        chosen: list[tuple[LazyItem, bool]] = []
        for item in self._items(sorted(self.view.ids)):
            if tag is not None and tag != item.component_name:
                continue
            istart, iend = item.time_range
            if istart >= end or iend <= start:
                continue
            chosen.append((item, simple and (start <= istart or iend <= end)))
        if chosen:  # read only the chosen items' text, not the whole calendar's
            batch = chosen[0][0]._batch
            batch.pending &= {item.href for item, _ in chosen}
        if not filters:
            return chosen
        return [(item, True) for item, done in chosen if done or self._matches(item, filters)]

    def _matches(self, item: LazyItem, filters: list[ET.Element]) -> bool:
        """Radicale's own test of the filters, except that an expansion stopped at
        the budget counts as a match, and so does an item spanning all of time
        that Radicale cannot test."""
        watch = expansion.watch()
        try:
            matched = all(radicale_report.test_filter("VCALENDAR", item, f) for f in filters)
        except Exception as e:  # the errors of vobject and Radicale are of many kinds
            if item.time_range != EVERY:
                raise  # as Radicale would: the request fails, or the filter was bad
            log.info("calendar %s: item %s cannot be tested (%s): matched", self.name, item.href, e)
            return True
        return matched or watch.truncated

    def has_uid(self, uid: str) -> bool:
        view = self.view
        if view.uids and len(view.uids) >= len(view.versions):
            return uid in view.uids.values()
        return any(f[0] == uid for f in self._facts(view, list(view.ids)).values())

    # -- collection properties ---------------------------------------------------------------

    def get_meta(self, key: str | None = None) -> Any:
        meta = {
            "D:displayname": self.name,
            "C:supported-calendar-component-set": COMPONENTS,
            **self.service.state.props(self.name, self.user),
            "tag": "VCALENDAR",
        }
        return meta if key is None else meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        keep = {
            k: v for k, v in props.items() if k not in ("tag", "C:supported-calendar-component-set")
        }
        self.service.state.set_props(self.name, self.user, keep)

    @property
    def etag(self) -> str:
        snap = self.view.snapshot
        return f'"{snap.epoch}-{snap.seq}"'

    @property
    def last_modified(self) -> str:
        return _http_date(self.view.snapshot.modified)

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        view = self.view
        token = view.snapshot.token
        if not old_token:
            return token, sorted(view.ids)
        return token, self.service.state.changed_since(self.name, old_token)

    # -- writing ------------------------------------------------------------------------------

    def upload(
        self, href: str, item: radicale_item.Item
    ) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        view = self.view
        raw = self._client_bytes(href, item)
        parsed = self.service.parse(view, href, raw)
        user = self._storage.user() or self.user
        etag, old = self.service.put(view, href, parsed, user)
        text = _text(parsed.raw)
        new = radicale_item.Item(
            collection=self,
            href=href,
            text=text,
            etag=etag,
            last_modified=_http_date(view.snapshot.modified),
        )
        replaced = (
            radicale_item.Item(collection=self, href=href, text=_text(old.raw)) if old else None
        )
        return new, replaced

    def _client_bytes(self, href: str, item: radicale_item.Item) -> bytes:
        """The PUT body as the client sent it, when it is this one item.

        Radicale hands over its vobject re-serialization (which refolds and
        reorders); the client's bytes are kept instead whenever they parse
        to the same UID, so nothing is reformatted on the way.
        """
        ctx = context.current()
        if ctx is not None and ctx.method == "PUT" and ctx.body:
            target = posixpath.basename(pathutils.strip_path(ctx.path))
            if target == href:
                try:
                    if Item.from_bytes(ctx.body).uid == item.uid:
                        return ctx.body
                except ValueError:
                    pass
        return item.serialize().encode("utf-8")

    def delete(self, href: str | None = None) -> None:
        if href is None:
            raise context.fail(DavAbort(403, "calendars are configured, not deleted, here"))
        view = self.view
        if href not in view.ids:
            raise radicale_storage.ComponentNotFoundError(href)
        self.service.delete(view, href, self._storage.user() or self.user)


class Storage(radicale_storage.BaseStorage):
    """The plugin Radicale instantiates (through the factory in ``davserver.app``).

    Names are text to it, never paths: any script, and characters a file
    system might refuse (Radicale asks, to choose how strictly to check them).
    """

    _supports_unicode = True
    _supports_problematic_chars = True

    def __init__(self, configuration: Any, service: DavService) -> None:
        super().__init__(configuration)
        radicale_hooks.install()  # every rule expansion of Radicale's is bounded from now on
        self.service = service
        self.started = __import__("time").time()
        self._write = threading.Lock()

    def user(self) -> str:
        ctx = context.current()
        return ctx.user if ctx is not None else ""

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Any = None,
        user_groups: set[str] | None = None,
    ) -> Iterable[types.CollectionOrItem]:
        sane = pathutils.strip_path(pathutils.sanitize_path(path))
        parts = [p for p in sane.split("/") if p] if sane else []
        users = self.service.settings.users
        if not parts:
            yield Home(self, "")
            if depth != "0":
                for name in sorted(users):
                    yield Home(self, name)
            return
        user = parts[0]
        if user not in users:
            return
        if len(parts) == 1:
            yield Home(self, user)
            if depth != "0":
                for cal in users[user].calendars:
                    yield Calendar(self, user, cal)
            return
        cal = parts[1]
        if cal not in users[user].calendars:
            return
        collection = Calendar(self, user, cal)
        if len(parts) == 2:
            yield collection
            if depth != "0":
                yield from collection.get_all()
            return
        if len(parts) == 3:
            for _, item in collection.get_multi([parts[2]]):
                if item is not None:
                    yield item

    def move(self, item: radicale_item.Item, to_collection: Any, to_href: str) -> None:
        raise context.fail(DavAbort(403, "MOVE is not supported: copy the item, then delete it"))

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> Any:
        raise context.fail(
            DavAbort(403, "calendars are configured in calsync ([caldav.users.NAME] calendars)")
        )

    @contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        ctx = context.current()
        if ctx is not None and user:
            ctx.user = user
        if mode == "w":
            with self._write:
                yield
        else:
            yield

    def verify(self) -> bool:
        return True
