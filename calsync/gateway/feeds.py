"""Subscription feeds: a store as a read-only iCalendar file at ``/feeds/<name>.ics``.

What Outlook ("Add calendar > From Internet"), Google Calendar ("From URL"),
iOS and Thunderbird subscribe to without any sync protocol.  Settings and
tokens: ``gateway.feedconfig``.

Who may read a feed (checked in this order; nothing else is served):

1. plain HTTP from another machine is refused (403), as on every route with
   secrets: the token in the URL crosses a network only inside TLS;
2. ``?token=`` equal to the feed's token (constant-time), or a feed with
   ``token = false`` (allowed only while the gateway listens on loopback);
3. HTTP Basic credentials of a CalDAV user whose calendars include the store,
   or of a SyncML account whose datastores use it;
4. anything else is 401 with a Basic challenge, for a feed that exists and
   one that does not alike (the answer never says which feeds exist); a
   wrong token or password counts as a failed login (``gateway.logins``: the
   same delay and per-address throttle as CalDAV).  A logged-in user asking
   for a feed that does not exist, or one not theirs, gets 404.

Logs name the feed, never the URL's query (the access log is off) or a token.

The body: ``sync.exchange.export_items`` reads the store (as ``calsync
export``) and ``items.exchange.render`` writes one VCALENDAR with each
VTIMEZONE once; the feed adds ``X-WR-CALNAME`` and
``REFRESH-INTERVAL``/``X-PUBLISHED-TTL``.  ``components`` keeps the items of
those kinds; ``past_days`` drops events whose end (DTEND, else DTSTART, by
date: a day of slack for time zones) is older than that many days, and keeps
every recurring item whatever its first date (no series is expanded).

Caching: the ETag is a hash of the store's listing (ids and versions: the
cheap call every sync makes) and the feed's settings, so ``If-None-Match``
is answered 304 without reading one item; the last body is kept per feed
for the same ETag.  ``Last-Modified`` is the newest LAST-MODIFIED/DTSTAMP of
the items.  HEAD is GET without the body.  Reading runs in a worker thread,
one build per feed at a time.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from calsync.config import Config, ConfigError
from calsync.gateway.feedconfig import Feed, load
from calsync.gateway.logins import (
    ANY_STORE,
    FAILURE_DELAY,
    FailureThrottle,
    MalformedCredentials,
    account_check,
    parse_basic,
    source_key,
)
from calsync.gateway.server import is_loopback, listen_options
from calsync.items import Item
from calsync.items.exchange import render
from calsync.items.lines import Prop, fold
from calsync.items.vcal.text import ical_escape
from calsync.stores import StoreError
from calsync.sync.exchange import ExchangeError, export_items

log = logging.getLogger("calsync.gateway")

REALM = "calsync feeds"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
CONTENT_TYPE = "text/calendar; charset=utf-8"
REFRESH = "PT1H"  # how often subscribers are asked to look again


@dataclass
class _Built:
    etag: str
    body: bytes
    last_modified: datetime | None


class _FeedState:
    """One feed's lock and last body."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.lock = threading.Lock()
        self.built: _Built | None = None


class FeedsFeature:
    """The ``/feeds/`` routes (a gateway feature)."""

    def __init__(
        self,
        cfg: Config,
        feeds: dict[str, Feed],
        *,
        credentials: Callable[[str, str, str], bool] | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self.cfg = cfg
        self.feeds = {name: _FeedState(feed) for name, feed in feeds.items()}
        self.credentials = credentials or (lambda user, password, store: False)
        self.throttle = throttle or FailureThrottle()
        self.routes: list[BaseRoute] = [
            Route("/feeds/{file}", self.serve, methods=["GET", "HEAD"]),
        ]

    @classmethod
    def from_config(cls, cfg: Config) -> FeedsFeature:
        feeds = load(cfg)
        open_feeds = [f.name for f in feeds.values() if f.token is None]
        if open_feeds:
            host = listen_options(cfg).host
            if not is_loopback(host):
                raise ConfigError(
                    f"feeds {', '.join(open_feeds)} have token = false, but the gateway "
                    f"listens on {host}: a feed without a token is for loopback only",
                    path=cfg.path,
                    key=f"feeds.{open_feeds[0]}.token",
                )
        return cls(cfg, feeds, credentials=account_check(cfg))

    def startup(self) -> None:
        return None

    def shutdown(self) -> None:
        return None

    # -- the route ----------------------------------------------------------------------

    async def serve(self, request: Request) -> Response:
        client = request.client
        host = client.host if client else ""
        if request.url.scheme != "https" and not is_loopback(host):
            return PlainTextResponse("feeds need TLS from other machines (https)\n", 403)
        file = request.path_params["file"]
        name = file[: -len(".ics")] if file.endswith(".ics") else None
        state = self.feeds.get(name or "")
        allowed = await self._allowed(request, state, host)
        if isinstance(allowed, Response):
            return allowed
        assert state is not None
        try:
            built = await run_in_threadpool(self._build, state)
        except (ExchangeError, StoreError) as e:
            log.warning("feed %s: cannot read store %s: %s", state.feed.name, state.feed.store, e)
            return PlainTextResponse("the calendar cannot be read right now\n", 503)
        headers = {"ETag": built.etag, "Cache-Control": "private, no-cache"}
        if built.last_modified is not None:
            headers["Last-Modified"] = email.utils.format_datetime(built.last_modified, True)
        if _matches(request.headers.get("if-none-match"), built.etag):
            return Response(status_code=304, headers=headers)
        return Response(
            built.body, media_type=None, headers={**headers, "Content-Type": CONTENT_TYPE}
        )

    async def _allowed(
        self, request: Request, state: _FeedState | None, host: str
    ) -> Response | None:
        """None when the request may read ``state``'s feed, else the answer."""
        key = source_key(host)
        token = request.query_params.get("token")
        auth = request.headers.get("authorization")
        if state is not None and state.feed.token is None:
            return None
        if token is None and auth is None:
            return PlainTextResponse("this feed's URL has a token, or log in\n", 401, CHALLENGE)
        wait = self.throttle.refusal(key)
        if wait is not None:
            await asyncio.sleep(FAILURE_DELAY)
            retry = {"Retry-After": str(max(1, int(wait + 0.999)))}
            return PlainTextResponse("too many failed attempts: try again later\n", 429, retry)
        if token is not None:
            expected = state.feed.token if state is not None else None
            if hmac.compare_digest(token.encode(), (expected or "\0" * 32).encode()) and expected:
                return None
            return await self._failed(key, "a wrong token", state)
        try:
            user, password = parse_basic(auth or "")
        except MalformedCredentials as e:
            return PlainTextResponse(f"{e}\n", 401, CHALLENGE)
        store = state.feed.store if state is not None else ""
        # no await between the throttle's answer and counting a failure: simultaneous
        # guesses would all be tested (the check is a constant-time compare, no I/O)
        ok = self.credentials(user, password, store)
        if ok and state is not None:
            return None
        if ok or self.credentials(user, password, ANY_STORE):
            return PlainTextResponse("no such feed\n", 404)
        return await self._failed(key, f"a failed login as {user[:64]!r}", state)

    async def _failed(self, key: str, what: str, state: _FeedState | None) -> Response:
        self.throttle.failed(key)
        log.warning("feed %s: %s from %s", state.feed.name if state else "(unknown)", what, key)
        await asyncio.sleep(FAILURE_DELAY)
        return PlainTextResponse("wrong token or credentials\n", 401, CHALLENGE)

    # -- the body -----------------------------------------------------------------------

    def _build(self, state: _FeedState) -> _Built:
        feed = state.feed
        with state.lock:
            store = self.cfg.store(feed.store)
            try:
                listing = store.list()
            finally:
                store.close()
            etag = _etag(feed, listing.versions, listing.errors)
            if state.built is not None and state.built.etag == etag:
                return state.built
            items, problems = export_items(self.cfg, feed.store)
            for problem in problems:
                log.warning("feed %s: left out: %s", feed.name, problem)
            kept = [i for i in items if _wanted(i, feed)]
            body, _ = render(kept, "ics")
            built = _Built(etag, _named(body, feed.title), _newest(kept))
            state.built = built
            return built


def _etag(feed: Feed, versions: dict[str, str], errors: dict[str, str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((feed.title, feed.components, feed.past_days, _cutoff(feed))).encode())
    for id in sorted(versions):
        h.update(f"{id}\0{versions[id]}\n".encode())
    h.update(repr(sorted(errors)).encode())
    return f'"{h.hexdigest()}"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _named(body: bytes, title: str) -> bytes:
    """The calendar with its name and refresh hints after BEGIN:VCALENDAR."""
    head, sep, rest = body.partition(b"\r\n")
    extra = [
        Prop("X-WR-CALNAME", (), ical_escape(title)),
        Prop("REFRESH-INTERVAL", (("VALUE", "DURATION"),), REFRESH),
        Prop("X-PUBLISHED-TTL", (), REFRESH),
    ]
    lines = b"".join(fold(p.to_line()).encode("utf-8") + b"\r\n" for p in extra)
    return head + sep + lines + rest


def _cutoff(feed: Feed) -> date | None:
    if feed.past_days is None:
        return None
    return datetime.now(UTC).date() - timedelta(days=feed.past_days + 1)


def _wanted(item: Item, feed: Feed) -> bool:
    comps = item.components()
    if not comps or comps[0].name not in feed.components:
        return False
    cutoff = _cutoff(feed)
    if cutoff is None or comps[0].name != "VEVENT":
        return True
    for comp in comps:
        if comp.get("RRULE") is not None or comp.get("RDATE") is not None:
            return True
    last = None
    for comp in comps:
        value = comp.value("DTEND") or comp.value("DTSTART") or ""
        try:
            day = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return True  # a date we cannot read: keep the event
        last = day if last is None or day > last else last
    return last is None or last >= cutoff


def _newest(items: list[Item]) -> datetime | None:
    newest = None
    for item in items:
        for comp in item.components():
            for name in ("LAST-MODIFIED", "DTSTAMP"):
                value = comp.value(name) or ""
                try:
                    moment = datetime.strptime(value[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
                except ValueError:
                    continue
                if newest is None or moment > newest:
                    newest = moment
    return newest
