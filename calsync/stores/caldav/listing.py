"""Incremental listing of a calendar collection: href -> ETag, cheapest first.

1. PROPFIND Depth 0 for the ctag (and the cheap collection properties); the
   sync-token only on servers without a ctag.  Unchanged -> the stored map is
   current: one request.  (Only one of the two: Radicale computes each from
   all items, 0.6-0.8 s at 10k items.)
2. RFC 6578 sync-collection since the stored token (following 507
   truncation) applied to the stored map.  Removals of hrefs we never knew are
   ignored (Radicale reports long-deleted items).  Any 4xx -> the token is
   rejected -> 4.  A "delta" that repeats most of the map unchanged is a full
   listing in disguise (DAViCal answers an unknown token that way, hiding
   deletions) -> verified with a PROPFIND Depth 1.
3. First listing: one calendar-query
   REPORT asks for every item's ETag *and* data: the engine is about to fetch
   every item of a first sync anyway, and one request costs the server less than
   a listing plus a multiget per 50 items (Radicale has a fixed cost per request
   that grows with the collection).  The reply is parsed as it arrives, and the
   data kept, up to ``prefetch`` bytes, for ``get_many``.  Refused (Radicale's
   10000-VEVENT limit per REPORT answers 400), failed or cut short (a 507 for the
   collection, a member without an ETag) -> PROPFIND Depth 1 lists every href
   with its ETag (the plainest listing there is; on Radicale cheaper than an
   initial sync-collection, and free of its tombstones), and whatever data did
   arrive is still served where its ETag matches that listing.  An empty answer
   is double-checked the same way.  RFC 4791 has the server return every
   matching resource; a server that silently left some out would be corrected
   by the periodic full listing (5).
   The sync-token for the next delta is read *after* this listing, while the
   engine works on what it got (``later_token``): on Radicale reading it costs
   as much as a quarter of the whole first sync (0.6 s at 10k items), and
   nothing else waits for it.  It is kept only if the ctag read with it is the
   one the probe read before the listing: then nothing changed in between and
   the map is exactly the state at that token.  Otherwise, or on a server
   without a ctag (whose probe reads the token before the listing, as always),
   the next changed sync starts with an initial sync-collection (4).
4. Token rejected: sync-collection with an empty token -- every member with
   its ETag *and* a new token in one reply (404 tombstones dropped; an empty
   reply is double-checked with a PROPFIND, as some servers answer an initial
   sync with nothing).  Servers without sync-collection: PROPFIND Depth 1.
5. Every ``full_every`` seconds: PROPFIND Depth 1, a safety net for servers
   that lose deletions in their change log.

Why the map is stored with the token and what that promises: the map must be
*at least as new as the token* for every href -- each entry is the state at
the token or a later one.  Then the delta since that token (which reports the
latest state of everything changed after it) turns the map into exactly the
server's current state.  The new token and map are therefore stored together,
only after a listing completed (every page, every fallback); a failure on the
way stores nothing and the old pair stays valid.  The ctag saved is the one
read *before* listing, never newer than the map.

The engine never relies on the cache for what changed: ``list()`` always
returns the *whole* map and the engine diffs it against its own status.  So a
cache that is ahead of the engine (a crash after listing, a failed fetch) loses
nothing -- the next sync sees the same differences again.  What the cache must
never do is claim a state the server has not reached or miss a change; the
rule above guarantees that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from calsync.stores.caldav import xml
from calsync.stores.caldav.client import DavClient, DavError, redact
from calsync.stores.caldav.hrefs import normalize, same

MAX_PAGES = 10_000  # sync-collection continuation pages (507) before giving up
PREFETCH_BYTES = 32 << 20  # calendar data a first listing keeps for get_many


class ListingError(DavError):
    """The collection cannot be listed now (status, bad reply); nothing is stored."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenRejected(Exception):
    """The server does not accept our sync-token (any 4xx): list everything."""


def norm_etag(value: str | None) -> str:
    """ETags verbatim, but always quoted (some servers drop quotes in PROPFIND)."""
    v = (value or "").strip()
    if not v or v.startswith('"') or v.startswith("W/"):
        return v
    return f'"{v}"'


@dataclass
class State:
    """What the store remembers between syncs (see module docstring)."""

    ctag: str | None = None
    token: str | None = None
    etags: dict[str, str] | None = None  # None: never listed
    full_at: float = 0.0  # time of the last full listing
    # hrefs whose ETag we learnt after the token (our own writes, reads): a delta
    # repeating them is expected, not a sign of a full listing in disguise
    fresh: set[str] = field(default_factory=set)
    ctagless: bool = False  # the server has no CS:getctag: probe the sync-token instead

    def to_json(self) -> dict[str, Any]:
        return {
            "ctag": self.ctag,
            "token": self.token,
            "etags": self.etags,
            "full_at": self.full_at,
            "fresh": sorted(self.fresh),
            "ctagless": self.ctagless,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        etags = data.get("etags")
        return cls(
            ctag=data.get("ctag"),
            token=data.get("token"),
            etags=dict(etags) if isinstance(etags, dict) else None,
            full_at=float(data.get("full_at") or 0.0),
            fresh=set(data.get("fresh") or ()),
            ctagless=bool(data.get("ctagless")),
        )


@dataclass
class Info:
    """The collection's own properties (PROPFIND Depth 0)."""

    ctag: str | None
    token: str | None
    reports: set[str]
    components: set[str] | None
    is_calendar: bool
    displayname: str | None = None  # read along for a pair's ``metadata`` (no request more)
    color: str | None = None


@dataclass
class Result:
    state: State
    how: str  # unchanged | delta | full
    info: Info
    requests: int = 0
    notes: list[str] = field(default_factory=list)
    # href -> (ETag, calendar data) read along with the listing (first listing only)
    bodies: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    # a first listing that left the token to ``later_token`` (see module docstring)
    token_later: bool = False


INFO_PROPS = [
    "D:supported-report-set",
    "C:supported-calendar-component-set",
    "D:resourcetype",
    "D:displayname",
    "A:calendar-color",
]


def probe(client: DavClient, url: str, *, token: bool) -> Info:
    props = [*INFO_PROPS, "CS:getctag"] + (["D:sync-token"] if token else [])
    resp = client.propfind(url, props, "0")
    if resp.status == 404:
        raise ListingError(f"no calendar at {redact(url)} (HTTP 404)", 404)
    if resp.status in (401, 403):
        raise ListingError(
            f"access to {redact(url)} denied (HTTP {resp.status}); check username/password",
            resp.status,
        )
    if resp.status != 207:
        raise ListingError(f"PROPFIND {redact(url)}: HTTP {resp.status}", resp.status)
    ms = resp.multistatus()
    if not ms.responses:
        raise ListingError(f"PROPFIND {redact(url)}: empty multistatus")
    r = ms.responses[0]
    return Info(
        ctag=(r.text(xml.GETCTAG) or "").strip() or None,
        token=(r.text(xml.SYNC_TOKEN) or "").strip() or None,
        reports=xml.reports(r),
        components=xml.components(r),
        is_calendar=xml.is_calendar(r),
        displayname=(r.text(xml.DISPLAYNAME) or "").strip() or None,
        color=(r.text(xml.CALENDAR_COLOR) or "").strip() or None,
    )


def full_listing(client: DavClient, url: str) -> dict[str, str]:
    """href -> ETag of every member resource (collections skipped)."""
    resp = client.propfind(url, ["D:getetag", "D:resourcetype", "D:getcontenttype"], "1")
    if resp.status != 207:
        raise ListingError(f"PROPFIND Depth 1 {redact(url)}: HTTP {resp.status}", resp.status)
    own = normalize(url, url)
    out: dict[str, str] = {}
    for r in resp.multistatus().responses:
        path = normalize(r.href, url)
        if same(path, own) or xml.is_collection(r):
            continue
        if r.status is not None and not 200 <= r.status < 300:
            continue
        out[path] = norm_etag(r.text(xml.GETETAG))
    return out


@dataclass
class Everything:
    """What a calendar-query for every item returned."""

    etags: dict[str, str]
    bodies: dict[str, tuple[str, bytes]]  # within the budget; the rest has ETags only
    complete: bool  # False: the server cut it short or left members out


def collect(responses: Iterable[xml.DavResponse], url: str, budget: int) -> Everything:
    """Every member's ETag and, up to ``budget`` bytes, its data, from the responses of
    a calendar-query for everything; ``complete`` says whether they can be trusted as
    the whole listing."""
    own = normalize(url, url)
    got = Everything({}, {}, complete=True)
    kept = 0
    for r in responses:
        path = normalize(r.href, url)
        if same(path, own):  # only ever there to say the answer was cut (507)
            got.complete = got.complete and (r.status is None or 200 <= r.status < 300)
            continue
        etag = norm_etag(r.text(xml.GETETAG))
        if (r.status is not None and not 200 <= r.status < 300) or not etag:
            got.complete = False  # a member we cannot version: let PROPFIND list it
            continue
        got.etags[path] = etag
        data = xml.calendar_data(r)
        if data is not None and kept + len(data) <= budget:
            got.bodies[path] = (etag, data)
            kept += len(data)
    return got


def everything(client: DavClient, url: str, budget: int) -> Everything:
    """``collect`` over one calendar-query REPORT parsed as it arrives.  ListingError
    when refused; DavError, XmlError on a failed or malformed reply (nothing partial
    is returned then)."""

    def consume(chunks: Iterator[bytes]) -> Everything:
        return collect(xml.iter_multistatus(chunks), url, budget)

    resp, got = client.stream_report(url, xml.query_all(), "1", consume)
    if got is None:
        raise ListingError(f"calendar-query {redact(url)}: HTTP {resp.status}", resp.status)
    return got


def _first_listing(
    client: DavClient, url: str, prefetch: int, notes: list[str]
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """href -> ETag of every member, and the data read along (see module docstring)."""
    if prefetch <= 0:
        return full_listing(client, url), {}
    try:
        got = everything(client, url, prefetch)
    except (DavError, xml.XmlError) as e:
        notes.append(f"calendar-query for everything failed ({e}); listing with PROPFIND")
        return full_listing(client, url), {}
    if got.complete and got.etags:
        return got.etags, got.bodies
    if got.complete:  # nothing at all: cheap to make sure (an empty calendar, usually)
        return full_listing(client, url), {}
    notes.append("calendar-query for everything came back incomplete; listing with PROPFIND")
    return full_listing(client, url), got.bodies


def later_token(client: DavClient, url: str, ctag: str | None) -> str | None:
    """The sync-token to keep after a first listing whose probe read ``ctag``, or
    None when the collection changed since (see module docstring).  Network errors
    propagate; not retried (closing the store waits for it, and a missing token
    only makes the next changed sync list everything)."""
    if not ctag:
        return None
    resp = client.propfind(url, ["CS:getctag", "D:sync-token"], "0", retry=False)
    if resp.status != 207:
        return None
    ms = resp.multistatus()
    if not ms.responses:
        return None
    r = ms.responses[0]
    if (r.text(xml.GETCTAG) or "").strip() != ctag:
        return None
    return (r.text(xml.SYNC_TOKEN) or "").strip() or None


@dataclass
class Delta:
    changed: dict[str, str]
    removed: set[str]
    token: str


def delta(client: DavClient, url: str, token: str | None) -> Delta:
    """Everything changed since ``token`` (None: every member), all pages.

    TokenRejected on any 4xx."""
    own = normalize(url, url)
    changed: dict[str, str] = {}
    removed: set[str] = set()
    for _ in range(MAX_PAGES):
        resp = client.report(url, xml.sync_collection(token), "1")
        if 400 <= resp.status < 500:
            raise TokenRejected(f"HTTP {resp.status}")
        if resp.status != 207:
            raise ListingError(f"sync-collection {redact(url)}: HTTP {resp.status}", resp.status)
        ms = resp.multistatus()
        if not ms.sync_token:
            raise TokenRejected("reply without a sync-token")
        truncated = False
        for r in ms.responses:
            path = normalize(r.href, url)
            if same(path, own):
                truncated = truncated or r.status == 507
                continue
            if r.status in (404, 410):
                removed.add(path)
                changed.pop(path, None)
                continue
            if r.status is not None and not 200 <= r.status < 300:
                continue
            if xml.is_collection(r):
                continue
            changed[path] = norm_etag(r.text(xml.GETETAG))
            removed.discard(path)
        token = ms.sync_token
        if not truncated:
            return Delta(changed, removed, token)
    raise ListingError(f"sync-collection {redact(url)}: more than {MAX_PAGES} pages")


def refresh(
    client: DavClient,
    url: str,
    old: State,
    *,
    full_every: float,
    now: float,
    prefetch: int = PREFETCH_BYTES,
    info: Info | None = None,
) -> Result:
    """The current href -> ETag map (see module docstring); never mutates ``old``.

    ``prefetch``: bytes of calendar data a first listing may read along (0: none).
    ``info``: the collection's properties as a PROPFIND of its account just read
    them (with a ctag), instead of a probe of its own: its ctag is then older
    than what is listed after it, which only ever makes the next sync look again."""
    before = client.requests
    first = old.etags is None
    if info is None or not info.ctag or old.ctagless:
        info = probe(client, url, token=old.ctagless)
    if first and info.ctag is None and not old.ctagless:  # a server without a ctag
        info = probe(client, url, token=True)
    if not info.is_calendar:
        raise ListingError(f"{redact(url)} is not a calendar collection")
    ctagless = info.ctag is None
    due = old.etags is None or full_every <= 0 or now - old.full_at >= full_every
    marker, old_marker = (info.token, old.token) if ctagless else (info.ctag, old.ctag)
    notes: list[str] = []

    def result(
        etags: dict[str, str],
        token: str | None,
        how: str,
        full_at: float,
        bodies: dict[str, tuple[str, bytes]] | None = None,
    ) -> Result:
        new = State(info.ctag, token, etags, full_at, ctagless=ctagless)
        return Result(new, how, info, client.requests - before, notes, bodies or {})

    if not due and marker and marker == old_marker:
        assert old.etags is not None
        new = State(old.ctag, old.token, dict(old.etags), old.full_at, set(old.fresh), ctagless)
        return Result(new, "unchanged", info, client.requests - before)
    sync = "sync-collection" in info.reports
    if sync and old.token and old.etags is not None:
        if due:  # the periodic safety net; the old token stays valid for it
            return result(full_listing(client, url), old.token, "full", now)
        try:
            d = delta(client, url, old.token)
        except TokenRejected as e:
            notes.append(f"sync-token rejected ({e}); listing everything")
        else:
            echoes = sum(
                1
                for p, e in d.changed.items()
                if e and old.etags.get(p) == e and p not in old.fresh
            )
            if echoes and echoes * 2 >= len(old.etags):
                notes.append(
                    f"sync-collection repeated {echoes} unchanged items (an unknown token "
                    "answered with a full listing?); verifying with a full listing"
                )
                return result(full_listing(client, url), d.token, "full", now)
            etags = dict(old.etags)
            for path in d.removed:
                etags.pop(path, None)  # never knew it: ignore (Radicale tombstones)
            etags.update(d.changed)
            return result(etags, d.token, "delta", old.full_at)
    if first:  # the token of a ctagless server was read before listing: safe to keep
        etags, bodies = _first_listing(client, url, prefetch, notes)
        got = result(etags, info.token, "full", now, bodies)
        got.token_later = sync and not ctagless
        return got
    if not sync:
        return result(full_listing(client, url), info.token, "full", now)
    try:  # the token was rejected: list everything and get a new token at once
        d = delta(client, url, None)
    except TokenRejected as e:
        notes.append(f"initial sync-collection refused ({e}); PROPFIND listing")
        return result(full_listing(client, url), None, "full", now)
    if d.changed:
        return result(dict(d.changed), d.token, "full", now)
    etags = full_listing(client, url)  # some servers answer an initial sync with nothing
    return result(etags, None if etags else d.token, "full", now)
