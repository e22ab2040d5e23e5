"""CalDAV store: a calendar collection on a server (Radicale, Cyrus, Nextcloud...).

Ids are hrefs (percent-decoded paths, see ``hrefs``), versions are ETags.
``list`` is incremental (``listing``; a first listing reads every item's data
along, which ``get_many`` then serves), ``get_many`` reads in calendar-multiget
batches of 50 (500 when many are wanted), writes are conditional: ``If-None-Match: *`` to create,
``If-Match: <etag>`` to replace or delete, so a change made on the server
since we listed is never overwritten -- it fails with ``PreconditionFailed``
and the engine picks the server's version up through its conflict path on the
next sync.

Errors: the collection unreachable / 5xx / unreadable while listing or reading
-> ``StoreUnavailable`` (the pair is skipped, nothing is deleted); a write that
fails -> an error for that item only.  After a few consecutive network
failures the remaining writes of this sync fail at once instead of each
waiting for its timeout.
"""

from __future__ import annotations

import builtins
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NoReturn
from urllib.parse import urlsplit

from calsync.items import Item, ItemError
from calsync.stores import (
    Collection,
    ItemRejected,
    Listing,
    NoCollections,
    NotFound,
    Option,
    PreconditionFailed,
    Store,
    StoreContext,
    StoreError,
    StoreUnavailable,
)
from calsync.stores._files import write_atomic
from calsync.stores._tls import tls_verify
from calsync.stores.caldav import xml
from calsync.stores.caldav.client import (
    PATIENCE,
    DavClient,
    DavError,
    DavNetworkError,
    Response,
    is_loopback,
    redact,
)
from calsync.stores.caldav.discovery import DiscoveryError, account, find_calendar, home_of
from calsync.stores.caldav.hrefs import normalize, quote_path, to_url
from calsync.stores.caldav.listing import (
    PREFETCH_BYTES,
    Info,
    ListingError,
    State,
    later_token,
    norm_etag,
    refresh,
)
from calsync.stores.caldav.text import escape_free_text
from calsync.stores.vdir import file_name

log = logging.getLogger("calsync.caldav")

BATCH = 50  # hrefs per calendar-multiget (what Apple's clients use)
# ...unless many items are wanted: a server's fixed cost per request (Radicale lists
# the collection's directory for each) then dominates; 500 per request halves
# Radicale's work, and a server refusing so big a REPORT gets batches of 50 instead
MANY, LARGE_BATCH = 1000, 500
IN_FLIGHT = 2  # multigets sent ahead of the one being parsed
BREAKER = 3  # consecutive network failures after which writes fail fast
STATE_FORMAT = 1
DEFAULT_FULL_EVERY = 86400.0

UID_CONFLICT = {"no-uid-conflict", "unique-scheduling-object-resource"}
COMPONENT_REFUSED = {"supported-calendar-component", "supported-component"}
INVALID = {"valid-calendar-data", "valid-calendar-object-resource", "calendar-data-valid"}


class CalDAVStore(Store):
    type = "caldav"
    options: ClassVar[dict[str, Option]] = {
        "url": Option(
            str,
            "the calendar collection's URL, or the server/principal URL together with `calendar`",
            required=True,
        ),
        "calendar": Option(
            str, "the calendar's display name (or path segment), found by discovery"
        ),
        "username": Option(str, "user name on the server"),
        "password": Option(str, "password (prefer password_command)", secret=True),
        "password_command": Option(
            (str, list), "a command whose first line of output is the password"
        ),
        "auth": Option(
            str,
            "HTTP authentication: auto (from the server's challenge), basic, digest",
            default="auto",
            choices=("auto", "basic", "digest"),
        ),
        "verify_tls": Option(bool, "check the server's TLS certificate", default=True),
        "ca_file": Option(str, "CA certificate(s) to trust for this server (PEM)"),
        "timeout": Option(
            (int, float),
            "seconds to wait for the server per request; a read that times out is tried "
            f"once more with {PATIENCE}x as long, and reading a whole calendar gets that "
            "from the start",
            default=30,
        ),
        "full_listing_every": Option(
            (int, float),
            "seconds between full listings of the calendar (a safety net for servers "
            "that lose deletions in their change log); 0 = every sync",
            default=DEFAULT_FULL_EVERY,
        ),
    }

    def __init__(
        self,
        name: str,
        ctx: StoreContext,
        url: str,
        *,
        calendar: str | None = None,
        username: str | None = None,
        password: Callable[[], str | None] = lambda: None,
        auth: str = "auto",
        verify_tls: bool = True,
        ca_file: str | None = None,
        timeout: float = 30.0,
        full_listing_every: float = DEFAULT_FULL_EVERY,
    ) -> None:
        super().__init__(name, ctx)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(StoreError, f"url must be an http(s) URL, not {redact(url)!r}")
        if parts.username is not None or parts.password is not None:
            raise self.error(StoreError, "put the credentials in username/password, not in the url")
        self.url = url if url.endswith("/") else url + "/"
        self.calendar = calendar
        self.username = username
        self._password_source = password
        self._password: str | None = None
        self.auth_mode = auth
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.timeout = float(timeout)
        self.full_every = float(full_listing_every)
        self._client: DavClient | None = None
        self._collection: str | None = None
        self._state = State()
        self._components: set[str] | None = None
        self._meta: dict[str, str | None] | None = None  # read along with the listing
        self._home: str | None = None  # the calendar home, as a root of collections
        self._hint: Info | None = None  # the collection as the account's listing saw it
        self._dirty = False
        self._failures = 0
        self.last_listing = ""  # how the last list() went: unchanged | delta | full
        # href -> (ETag, data) read along with a first listing, served by get_many
        self._prefetch: dict[str, tuple[str, bytes]] = {}
        self.prefetch_bytes = PREFETCH_BYTES
        self._token_job: Future[str | None] | None = None  # see _settle_token

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        from calsync.config import resolve_secret

        def password() -> str | None:
            return resolve_secret(section)

        ca_file = section.get("ca_file")
        if ca_file:
            from calsync.stores._files import expand_path

            ca_file = str(expand_path(ca_file, ctx.config_dir))
        return cls(
            name,
            ctx,
            section["url"],
            calendar=section.get("calendar"),
            username=section.get("username"),
            password=password,
            auth=section.get("auth", "auto"),
            verify_tls=section.get("verify_tls", True),
            ca_file=ca_file,
            timeout=section.get("timeout", 30),
            full_listing_every=section.get("full_listing_every", DEFAULT_FULL_EVERY),
        )

    def identity(self) -> str:
        where = redact(self.url)
        return f"caldav:{where}" + (f"#{self.calendar}" if self.calendar else "")

    def describe(self) -> str:
        cal = f" calendar {self.calendar!r}" if self.calendar else ""
        return f"CalDAV{cal} at {redact(self._collection or self.url)}"

    # -- connection, cache --------------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.ctx.cache_dir / "caldav-state.json"

    def _secret(self) -> str:
        return self._password or ""

    def _connect(self) -> DavClient:
        if self._client is not None:
            return self._client
        saved = self._load()
        if self.username:
            try:
                self._password = self._password_source() or ""
            except Exception as e:  # ConfigError from password_command (never the password)
                raise self.error(StoreUnavailable, f"cannot get the password: {e}") from None
        scheme = None if self.auth_mode == "auto" else self.auth_mode
        if scheme is None and saved.get("auth") in ("basic", "digest"):
            scheme = saved["auth"]
        try:
            verify = tls_verify(self.verify_tls, self.ca_file)
        except OSError as e:
            raise self.error(StoreUnavailable, f"cannot read ca_file {self.ca_file}: {e}") from None
        self._client = DavClient(
            username=self.username,
            password=self._secret,
            auth_scheme=scheme,
            verify=verify,
            timeout=self.timeout,
            compress=not is_loopback(self.url),
        )
        return self._client

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if data.get("format") != STATE_FORMAT or data.get("key") != self.identity():
            return {}
        if isinstance(data.get("collection"), str):
            self._collection = data["collection"]
        if isinstance(data.get("home"), str):
            self._home = data["home"]
        self._state = State.from_json(data.get("state") or {})
        return data

    def _save(self) -> None:
        payload = {
            "format": STATE_FORMAT,
            "key": self.identity(),
            "collection": self._collection,
            "home": self._home,
            "auth": self._client.auth.scheme if self._client and self._client.auth else None,
            "state": self._state.to_json(),
        }
        try:
            if not self.ctx.cache_dir.is_dir():  # inside the private state directory
                from calsync.perms import private_dir

                private_dir(self.ctx.cache_dir)
            write_atomic(self._state_file, json.dumps(payload).encode(), fsync=False, private=True)
            self._dirty = False
        except OSError as e:
            log.warning("%s: cannot write the cache %s: %s", self.name, self._state_file, e)

    def _unavailable(self, e: Exception) -> StoreError:
        return self.error(StoreUnavailable, f"{self.describe()}: {e}")

    def _resolve(self, client: DavClient) -> str:
        if self._collection is None:
            self._collection = find_calendar(client, self.url, self.calendar).url
        return self._collection

    @property
    def collection(self) -> str:
        """The calendar collection URL (after ``list``)."""
        assert self._collection is not None
        return self._collection

    # -- reading ------------------------------------------------------------------

    def list(self) -> Listing:
        self._settle_token()
        client = self._connect()
        for attempt in (1, 2):
            try:
                url = self._resolve(client)
                result = refresh(
                    client,
                    url,
                    self._state,
                    full_every=self.full_every,
                    now=time.time(),
                    prefetch=self.prefetch_bytes,
                    info=self._hint if attempt == 1 else None,
                )
                self._hint = None
            except ListingError as e:
                if e.status == 404 and self.calendar and attempt == 1:
                    self._collection = None  # moved or renamed: discover again
                    self._state = State()
                    continue
                raise self._unavailable(e) from None
            except (DavError, xml.XmlError) as e:
                raise self._unavailable(e) from None
            break
        for note in result.notes:
            log.info("%s: %s", self.name, note)
        self.last_listing = result.how
        self._state = result.state
        self._prefetch = result.bodies
        self._components = result.info.components
        self._meta = {"displayname": result.info.displayname, "color": result.info.color}
        self._save()
        if result.token_later:
            pool = ThreadPoolExecutor(1, thread_name_prefix="caldav-token")
            self._token_job = pool.submit(later_token, client, url, result.state.ctag)
            pool.shutdown(wait=False)
        assert self._state.etags is not None
        return Listing(dict(self._state.etags))

    def _settle_token(self, *, wait: bool = True) -> None:
        """Keep the sync-token read after a first listing (``listing.later_token``).

        It is read while the engine works on the listing, and waited for before our
        first write (which would change the ctag and so void the token) and when the
        store closes.  ``wait=False`` (the engine's checkpoints): only if it is in.
        """
        job = self._token_job
        if job is None or not (wait or job.done()):
            return
        self._token_job = None
        try:
            token = job.result()
        except (DavError, xml.XmlError) as e:
            log.info("%s: cannot read the sync-token (%s); the next change lists all", self.name, e)
            return
        if token is None:
            log.info("%s: the calendar changed while it was listed; no sync-token kept", self.name)
            return
        self._state.token = token
        self._dirty = True

    @property
    def _etags(self) -> dict[str, str]:
        if self._state.etags is None:
            self._state.etags = {}
        return self._state.etags

    def _url(self, id: str) -> str:
        base = self._collection or self.url
        path = id if id.startswith("/") else normalize(base, base) + id
        return to_url(base, path)

    def _path(self, id: str) -> str:
        base = self._collection or self.url
        return id if id.startswith("/") else normalize(base, base) + id

    def _parse(self, data: bytes, id: str) -> Item:
        try:
            return Item.from_bytes(data, source=self.name)
        except ItemError as e:
            e.id = e.id or id
            raise

    def get(self, id: str) -> tuple[Item, str]:
        client = self._connect()
        self._resolve_quietly(client)
        path = self._path(id)
        try:
            resp = client.request("GET", self._url(path))
        except DavError as e:
            raise self._unavailable(e) from None
        if resp.status in (404, 410):
            raise self.error(NotFound, "no such resource on the server", path)
        if not resp.ok:
            raise self.error(StoreError, f"GET answered HTTP {resp.status}", path)
        etag = norm_etag(resp.etag()) or self._etags.get(path, "")
        return self._parse(resp.body, path), etag

    def _resolve_quietly(self, client: DavClient) -> None:
        if self._collection is None:
            try:
                self._resolve(client)
            except DavError as e:
                raise self._unavailable(e) from None

    def get_many(self, ids: Iterable[str]) -> Iterator[tuple[str, Item | ItemError, str]]:
        """Items read along with the listing (a first sync) come from memory; the
        rest by calendar-multiget in batches of 50 (500 when more than 1000 are
        wanted), up to ``IN_FLIGHT`` requests at once, so the server works on the next
        batch while we parse the last one."""
        client = self._connect()
        self._resolve_quietly(client)
        hits: list[tuple[str, tuple[str, bytes]]] = []
        paths = []
        for id in ids:
            path = self._path(id)
            got = self._prefetch.pop(path, None)
            if got is not None and got[0] == self._etags.get(path):
                hits.append((path, got))
            else:
                paths.append(path)
        size = LARGE_BATCH if len(paths) > MANY else BATCH
        batches = [paths[i : i + size] for i in range(0, len(paths), size)]
        if len(batches) <= 1:
            yield from (self._found(path, data, etag) for path, (etag, data) in hits)
            for batch in batches:
                yield from self._multiget(client, batch, self._report(client, batch))
            return
        pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="caldav-multiget")
        try:
            pending = deque(pool.submit(self._report, client, b) for b in batches[:IN_FLIGHT])
            queued = len(pending)
            yield from (self._found(path, data, etag) for path, (etag, data) in hits)
            for batch in batches:
                ms = pending.popleft().result()
                if queued < len(batches):
                    pending.append(pool.submit(self._report, client, batches[queued]))
                    queued += 1
                yield from self._multiget(client, batch, ms)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _report(self, client: DavClient, batch: Sequence[str]) -> xml.Multistatus | None:
        """One calendar-multiget (thread-safe: no store state touched); None when
        refused (its items are then read one by one).  A large batch refused is sent
        again in batches of 50."""
        try:
            resp = client.report(self.collection, xml.multiget([quote_path(p) for p in batch]), "1")
            if resp.status == 207:
                return resp.multistatus()
        except (DavError, xml.XmlError) as e:
            raise self._unavailable(e) from None
        if len(batch) <= BATCH:
            return None
        log.info(
            "%s: a multiget of %d answered HTTP %d; %d at a time",
            self.name,
            len(batch),
            resp.status,
            BATCH,
        )
        out = xml.Multistatus([])
        for i in range(0, len(batch), BATCH):
            ms = self._report(client, batch[i : i + BATCH])
            if ms is not None:
                out.responses += ms.responses
        return out

    def _multiget(
        self, client: DavClient, batch: Sequence[str], ms: xml.Multistatus | None
    ) -> Iterator[tuple[str, Item | ItemError, str]]:
        wanted = set(batch)
        url = self.collection
        seen: set[str] = set()
        if ms is not None:
            for r in ms.responses:
                path = normalize(r.href, url)
                if path not in wanted or path in seen:
                    continue  # unsolicited or repeated (Zimbra, DavMail)
                data = xml.calendar_data(r)
                if r.status in (404, 410) or data is None:
                    continue  # confirmed below, one by one
                seen.add(path)
                etag = norm_etag(r.text(xml.GETETAG)) or self._etags.get(path, "")
                yield self._found(path, data, etag)
        for path in batch:
            if path not in seen:
                yield from self._get_one(client, path)

    def _found(self, path: str, data: bytes, etag: str) -> tuple[str, Item | ItemError, str]:
        if etag and self._etags.get(path) != etag:
            self._learn(path, etag)
        try:
            return path, self._parse(data, path), etag
        except ItemError as e:
            return path, e, ""

    def _get_one(self, client: DavClient, path: str) -> Iterator[tuple[str, Item | ItemError, str]]:
        """A resource the multiget did not return: gone, or an href it did not match."""
        try:
            resp = client.request("GET", self._url(path))
        except DavError as e:
            raise self._unavailable(e) from None
        if resp.status in (404, 410):
            if self._etags.pop(path, None) is not None:
                self._dirty = True
            return
        if resp.status >= 500:
            raise self._unavailable(DavError(f"GET {path}: HTTP {resp.status}"))
        if not resp.ok:
            yield (
                path,
                ItemError(f"cannot read it: HTTP {resp.status}", source=self.name, id=path),
                "",
            )
            return
        etag = norm_etag(resp.etag()) or self._etags.get(path, "")
        yield self._found(path, resp.body, etag)

    # -- writing ------------------------------------------------------------------

    def _write(self, fn: Callable[[], Response], id: str) -> Response:
        self._settle_token()
        if self._failures >= BREAKER:
            raise self.error(
                StoreError,
                f"skipped: the server did not answer the last {self._failures} requests",
                id,
            )
        try:
            resp = fn()
        except DavNetworkError as e:
            self._failures += 1
            raise self.error(StoreError, str(e), id) from None
        except DavError as e:
            raise self.error(StoreError, str(e), id) from None
        self._failures = 0
        return resp

    def _check_component(self, item: Item) -> None:
        if self._components is not None and item.kind not in self._components:
            allowed = ", ".join(sorted(self._components)) or "nothing"
            raise self.error(
                ItemRejected,
                f"server refuses this component type ({item.kind}; the calendar takes {allowed})",
                item.uid,
            )

    def add(self, item: Item) -> tuple[str, str]:
        client = self._connect()
        self._resolve_quietly(client)
        self._check_component(item)
        base = normalize(self.collection, self.collection)
        name = file_name(item.uid, ".ics")
        body = escape_free_text(item.raw)
        for n in range(10):
            path = base + (name if n == 0 else f"{name[:-4]}-{n}.ics")
            resp = self._write(partial(client.put, self._url(path), body, create=True), item.uid)
            if resp.ok:
                return path, self._new_etag(client, path, resp)
            if resp.status != 412 or self._uid_conflict(resp):
                self._refused(client, resp, item, path)
            # 412 without a UID conflict: something lives at this href already
            occupant = self._occupant(client, path)
            if occupant is None:
                raise self.error(
                    ItemRejected,
                    f"server answered 412 to creating {path}, where nothing exists "
                    "(item too large for it?)",
                    item.uid,
                )
            if occupant == item.uid:
                raise self.error(
                    ItemRejected, f"an item with this UID already exists at {path}", item.uid
                )
        raise self.error(ItemRejected, "no free resource name", item.uid)

    def update(self, id: str, item: Item, version: str) -> str:
        client = self._connect()
        self._resolve_quietly(client)
        path = self._path(id)
        if_match = self._if_match(client, path, version)
        resp = self._write(
            lambda: client.put(self._url(path), escape_free_text(item.raw), if_match=if_match), path
        )
        if resp.ok:
            return self._new_etag(client, path, resp)
        if resp.status in (404, 410):
            raise self.error(NotFound, "no such resource on the server", path)
        if resp.status == 412 and not self._uid_conflict(resp):
            raise self.error(
                PreconditionFailed, "changed on the server since it was listed (412)", path
            )
        self._refused(client, resp, item, path)

    def delete(self, id: str, version: str) -> None:
        client = self._connect()
        self._resolve_quietly(client)
        path = self._path(id)
        if_match = self._if_match(client, path, version)
        resp = self._write(lambda: client.delete(self._url(path), if_match=if_match), path)
        if resp.ok or resp.status in (404, 410):
            if self._etags.pop(path, None) is not None:
                self._dirty = True
            if not resp.ok:
                raise self.error(NotFound, "no such resource on the server", path)
            return
        if resp.status == 412:
            raise self.error(
                PreconditionFailed, "changed on the server since it was listed (412)", path
            )
        raise self.error(StoreError, f"server refused to delete it: HTTP {resp.status}", path)

    def _if_match(self, client: DavClient, path: str, version: str) -> str | None:
        """The If-Match value for ``version``; a weak ETag is never sent (it can't match).

        With a weak ETag we check the current one ourselves just before writing.
        """
        if not version.startswith("W/"):
            return version
        current = self._etag_of(client, path)
        if current is None:
            raise self.error(NotFound, "no such resource on the server", path)
        if current != version:
            raise self.error(PreconditionFailed, "changed on the server since it was listed", path)
        return None

    def _etag_of(self, client: DavClient, path: str) -> str | None:
        text = self._prop_of(client, path, "D:getetag", xml.GETETAG)
        return None if text is None else norm_etag(text)

    def modified(self, id: str) -> float | None:
        """The server's ``getlastmodified`` of the item: one PROPFIND, asked only
        for items in conflict; None when the server gives none (or cannot be asked)."""
        client = self._connect()
        self._resolve_quietly(client)
        return http_date(
            self._prop_of(client, self._path(id), "D:getlastmodified", xml.GETLASTMODIFIED)
        )

    def _prop_of(self, client: DavClient, path: str, prop: str, name: str) -> str | None:
        """One property of one resource (PROPFIND, depth 0): its text ("" when the
        server has no such property for it), or None when there is no answer."""
        try:
            resp = client.propfind(self._url(path), [prop], "0")
            if resp.status != 207:
                return None
            for r in resp.multistatus().responses:
                return r.text(name) or ""
        except (DavError, xml.XmlError):
            return None
        return None

    def _new_etag(self, client: DavClient, path: str, resp: Response) -> str:
        """The ETag of what the server now stores; fetched back when the PUT had none."""
        etag = norm_etag(resp.etag())
        if not etag or etag.startswith("W/"):
            etag = self._etag_of(client, path) or etag
        self._learn(path, etag)
        return etag

    def _learn(self, path: str, etag: str) -> None:
        """Record an ETag seen after the last listing (see ``listing.State.fresh``)."""
        self._etags[path] = etag
        self._prefetch.pop(path, None)
        self._state.fresh.add(path)
        self._dirty = True

    def _uid_conflict(self, resp: Response) -> bool:
        names, _, _ = xml.error_conditions(resp.body)
        return bool(names & UID_CONFLICT)

    def _refused(self, client: DavClient, resp: Response, item: Item, path: str) -> NoReturn:
        """Raise the right error for a refused PUT (never returns)."""
        names, hrefs, text = xml.error_conditions(resp.body)
        detail = f" ({text})" if text else ""
        if names & UID_CONFLICT or (resp.status == 409 and "uid" in text.lower()):
            where = [normalize(h, self.collection) for h in hrefs]
            where = where or list(self._find_uid(client, item))
            at = f" at {', '.join(where)}" if where else " elsewhere on the server"
            raise self.error(
                ItemRejected, f"an item with this UID already exists{at} (HTTP {resp.status})", path
            )
        if names & COMPONENT_REFUSED or resp.status == 415:
            raise self.error(
                ItemRejected, f"server refuses this component type ({item.kind}){detail}", path
            )
        if names & INVALID:
            raise self.error(ItemRejected, f"server rejects the item as invalid{detail}", path)
        if resp.status == 413 or names & {"max-resource-size"}:
            raise self.error(ItemRejected, f"too large for the server{detail}", path)
        if resp.status >= 500:
            raise self.error(StoreError, f"server error: HTTP {resp.status}{detail}", path)
        raise self.error(ItemRejected, f"server refused it: HTTP {resp.status}{detail}", path)

    def _find_uid(self, client: DavClient, item: Item) -> Sequence[str]:
        """Hrefs in our calendar holding ``item.uid`` (for the UID-conflict message)."""
        try:
            resp = client.report(self.collection, xml.uid_query(item.uid, item.kind), "1")
            if resp.status != 207:
                return []
            hrefs = [normalize(r.href, self.collection) for r in resp.multistatus().responses]
        except (DavError, xml.XmlError):
            return []
        found = []
        for h in hrefs:
            try:
                if self._occupant(client, h) == item.uid:
                    found.append(h)
            except StoreError:
                found.append(h)  # the query matched it; good enough for a message
        return found

    def _occupant(self, client: DavClient, path: str) -> str | None:
        """The UID stored at ``path``: None when nothing is there, "" when what is there
        is not a calendar item; StoreError when we cannot tell (try again later)."""
        try:
            resp = client.request("GET", self._url(path))
        except DavError as e:
            raise self.error(StoreError, f"cannot check {path}: {e}", path) from None
        if resp.status in (404, 410):
            return None
        if not resp.ok:
            raise self.error(StoreError, f"cannot check {path}: HTTP {resp.status}", path)
        try:
            return Item.from_bytes(resp.body).uid
        except ItemError:
            return ""

    # -- an account's calendars, a calendar's metadata ---------------------------

    def _home_url(self, client: DavClient) -> str:
        if self._home is None:
            self._home = home_of(client, self.url)
        return self._home

    def collections(self) -> builtins.list[Collection]:
        """The account's calendars: one PROPFIND of the home (found once, then
        kept in the cache), which also reads each calendar's ctag: its sub-pair's
        listing then needs no probe of its own (``take_hint``)."""
        client = self._connect()
        cached = self._home is not None
        try:
            try:
                found = account(client, self._home_url(client))
            except DiscoveryError:
                if not cached:
                    raise
                self._home = None  # moved: find it again
                found = account(client, self._home_url(client))
        except (DavError, xml.XmlError) as e:
            raise self._unavailable(e) from None
        self._save()
        return found

    def take_hint(self, hint: object) -> None:
        if isinstance(hint, Info) and hint.ctag:
            self._hint = hint

    def create_collection(
        self,
        name: str,
        displayname: str | None = None,
        color: str | None = None,
        components: tuple[str, ...] | None = None,
    ) -> Collection:
        """MKCALENDAR with the display name and component set; the colour is set
        after it with PROPPATCH (a server that refuses it still has the calendar)."""
        if not name or name in (".", "..") or "/" in name:
            raise self.error(NoCollections, f"{name!r} cannot be a calendar's URL segment")
        client = self._connect()
        try:
            home = self._home_url(client)
            url = home + quote_path(name) + "/"
            body = xml.mkcalendar(displayname or name, components or ())
            resp = client.request("MKCALENDAR", url, body)
            if resp.status in (403, 405, 501):
                raise self.error(
                    NoCollections,
                    f"the server refused to create the calendar {redact(url)} "
                    f"(MKCALENDAR: HTTP {resp.status}); create it there by hand",
                )
            if not resp.ok:
                raise self.error(StoreError, f"MKCALENDAR {redact(url)}: HTTP {resp.status}")
            made = Collection(name, url, displayname or name, None, components)
            if color:
                made.color = (
                    color if self._proppatch(client, url, {"A:calendar-color": color}) else None
                )
            return made
        except (DavError, xml.XmlError) as e:
            raise self._unavailable(e) from None

    def remove_collection(self, collection: Collection) -> None:
        """DELETE the calendar, only when it lists no member any more."""
        from calsync.stores.caldav.listing import full_listing

        client = self._connect()
        try:
            if full_listing(client, collection.where):
                raise self.error(StoreError, f"{redact(collection.where)} is not empty: it stays")
            resp = client.request("DELETE", collection.where)
        except (DavError, xml.XmlError) as e:
            raise self._unavailable(e) from None
        if not resp.ok and resp.status != 404:
            raise self.error(StoreError, f"DELETE {redact(collection.where)}: HTTP {resp.status}")

    def collection_section(self, section: dict[str, Any], collection: Collection) -> dict[str, Any]:
        out = {k: v for k, v in section.items() if k != "calendar"}
        out["url"] = collection.where
        learnt = self._client.auth.scheme if self._client and self._client.auth else None
        learnt = learnt or self._load().get("auth")  # what the last discovery learnt
        if out.get("auth", "auto") == "auto" and learnt in ("basic", "digest"):
            out["auth"] = learnt  # the account's scheme: no challenge per calendar
        return out

    def get_meta(self, key: str) -> str | None:
        if self._meta is None:  # not listed in this sync: ask
            client = self._connect()
            try:
                url = self._resolve(client)
                resp = client.propfind(url, ["D:displayname", "A:calendar-color"], "0")
                if resp.status != 207 or not (ms := resp.multistatus()).responses:
                    raise self.error(StoreError, f"PROPFIND {redact(url)}: HTTP {resp.status}")
            except (DavError, xml.XmlError) as e:
                raise self._unavailable(e) from None
            r = ms.responses[0]
            self._meta = {
                "displayname": (r.text(xml.DISPLAYNAME) or "").strip() or None,
                "color": (r.text(xml.CALENDAR_COLOR) or "").strip() or None,
            }
        return self._meta.get(key)

    def set_meta(self, key: str, value: str | None) -> None:
        prop = {"displayname": "D:displayname", "color": "A:calendar-color"}[key]
        client = self._connect()
        try:
            url = self._resolve(client)
            if not self._proppatch(client, url, {prop: value}):
                raise self.error(StoreError, f"the server did not take the {key} of {redact(url)}")
        except (DavError, xml.XmlError) as e:
            raise self._unavailable(e) from None
        if self._meta is not None:
            self._meta[key] = value

    def _proppatch(self, client: DavClient, url: str, values: dict[str, str | None]) -> bool:
        """Whether the server took every property (a 207 with only 2xx propstats)."""
        resp = client.request("PROPPATCH", url, xml.proppatch(values))
        if resp.status != 207:
            return resp.ok
        refused = xml.refused_props(resp.body)
        if refused:
            log.info("%s: %s refused %s", self.name, redact(url), ", ".join(refused))
        return not refused

    def adopt(self, collection: str, etags: dict[str, str]) -> None:
        """Remember ``etags`` (href -> ETag) of ``collection`` as the last listing,
        without a sync-token: what a migrated status holds (``calsync migrate``).
        The next listing then asks for ETags only (an initial sync-collection or
        PROPFIND), never for the items' data."""
        self._collection = collection if collection.endswith("/") else collection + "/"
        self._state = State(
            etags={normalize(h, self._collection): norm_etag(e) for h, e in etags.items()},
            full_at=time.time(),
        )
        self._save()

    def flush(self) -> None:
        self._settle_token(wait=False)
        if self._dirty:
            self._save()

    def close(self) -> None:
        self._settle_token()
        self.flush()
        self._prefetch = {}
        if self._client is not None:
            self._client.close()
            self._client = None


def http_date(text: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date (``getlastmodified``'s form,
    RFC 9110 5.6.7); None when there is none or it does not parse."""
    if not text or not text.strip():
        return None
    from datetime import UTC
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text.strip())
    except ValueError:  # not a date
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
