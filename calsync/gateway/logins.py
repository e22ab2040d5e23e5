"""Password logins on the gateway's endpoints: Basic credentials, and throttling failures.

Shared by the endpoints that take a user name and password (``/dav/`` today;
SyncML's auth-basic and others may use the same pieces):

* ``parse_basic(value)``: an ``Authorization: Basic ...`` header's user and
  password; ``MalformedCredentials`` for anything undecodable (the caller
  answers 401, never 500).  The text is UTF-8, or Latin-1 when it is not
  valid UTF-8 (what Radicale and older clients do).
* ``source_key(host)``: who a failure is counted against: the IPv4 address,
  or the IPv6 /64 network (one machine or LAN holds a whole /64, so counting
  single IPv6 addresses would count nothing).
* ``FailureThrottle``: token buckets of failed logins, one per source and
  one overall.  A source may fail ``burst`` times, then once per ``refill``
  seconds; while its bucket is empty its requests are refused *without
  checking the password* (429): no guess is tested, right or wrong.  The
  overall bucket bounds many sources together: when it is empty, sources
  that guessed recently (and any unknown source while the table of sources
  overflowed) are refused too, while a source that never guessed is still
  checked, so a legitimate client elsewhere keeps working during an attack.
  A failure that tested no password (``failed(key, guess=False)``: a SyncML
  device's first contact, which only learns its nonce) counts in the
  source's own bucket but does not make it a suspect: a device paired a
  minute ago must not be locked out by others' guessing.
  Successes change nothing (a valid account must not reset the count for
  guessing another one).
* ``account_check(cfg)``: whether a user name and password are a CalDAV
  user's or a SyncML account's (and whether that account may see a store):
  the feeds log people in with it; ``account_login(cfg)`` says whose password
  it was (the account, and the device for an app password): the web page's
  logins, whose scope depends on it (``authz``).
* ``FAILURE_DELAY``: how long a failed or refused login waits before its
  answer.  The wait belongs in the event loop (``asyncio.sleep``), never in a
  worker thread: a thread pool of 8 sleeping 1 s per failure let 40 clients
  with wrong passwords starve everyone (issue #19, finding 7).

Why hand-written: the rules are a few lines of arithmetic over a dict, and
libraries for rate limiting bring their own storage and clocks; the throttle
takes a clock so tests need not sleep.

Bounds: at most ``max_sources`` sources are remembered (oldest failure first
out), each for ``remember`` seconds after its last failure.  A guesser gets
``burst + elapsed / refill`` tries per source and, across sources, about
``global_burst + elapsed / global_refill`` plus one per source that had not
failed before (the default: 360 an hour per source, 3,600 an hour in all;
the old 8 sleeping threads allowed 28,800 an hour).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from calsync import credentials
from calsync.credentials import app_passwords

if TYPE_CHECKING:
    from calsync.config import Config

ANY_STORE = "\0any"  # account_check's store: any store at all (a valid login)
FAILURE_DELAY = 1.0  # seconds before a failed or refused login is answered
MAX_HEADER = 4096  # an Authorization header longer than this is not credentials


class MalformedCredentials(ValueError):
    """An Authorization header that is not ``Basic base64(user:password)``."""


def parse_basic(value: bytes | str) -> tuple[str, str]:
    """``Basic dXNlcjpwYXNz`` -> ("user", "pass"); MalformedCredentials otherwise."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if len(raw) > MAX_HEADER:
        raise MalformedCredentials("Authorization header too long")
    scheme, _, token = raw.strip().partition(b" ")
    if scheme.lower() != b"basic" or not token.strip():
        raise MalformedCredentials("not Basic credentials")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except binascii.Error:
        raise MalformedCredentials("credentials are not base64") from None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = decoded.decode("latin-1")
    user, colon, password = text.partition(":")
    if not colon:
        raise MalformedCredentials("credentials without a ':' between user and password")
    return user, password


def source_key(host: str) -> str:
    """The source a failed login is counted against (IPv4 address, IPv6 /64)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket or a name: counted as given
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class _Bucket:
    __slots__ = ("failed_at", "guessed", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp  # when tokens were last brought up to date
        self.failed_at = stamp  # the last failure (when the source is forgotten)
        self.guessed = False  # one of its failures tested a password

    def fill(self, now: float, capacity: float, refill: float) -> float:
        self.tokens = min(capacity, self.tokens + (now - self.stamp) / refill)
        self.stamp = now
        return self.tokens


class FailureThrottle:
    """Failed logins per source and overall (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        burst: int = 10,
        refill: float = 10.0,
        global_burst: int = 100,
        global_refill: float = 1.0,
        remember: float = 900.0,
        max_sources: int = 16384,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.refill = refill
        self.global_burst = global_burst
        self.global_refill = global_refill
        self.remember = remember
        self.max_sources = max_sources
        self.clock = clock
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()  # oldest failure first
        self._all = _Bucket(float(global_burst), clock())
        self._overflowed_until = float("-inf")

    def refusal(self, key: str) -> float | None:
        """Seconds until ``key`` may be checked again, or None: check it now."""
        now = self.clock()
        self._forget(now)
        bucket = self._sources.get(key)
        if bucket is not None and bucket.fill(now, self.burst, self.refill) < 1:
            return (1 - bucket.tokens) * self.refill
        overall = self._all.fill(now, self.global_burst, self.global_refill)
        suspect = (bucket is not None and bucket.guessed) or now < self._overflowed_until
        if overall < 1 and suspect:
            return (1 - overall) * self.global_refill
        return None

    def failed(self, key: str, *, guess: bool = True) -> None:
        """Count a failed login from ``key`` (call it before the answer's delay);
        ``guess``: it tested a password (see the module docstring)."""
        now = self.clock()
        bucket = self._sources.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.fill(now, self.burst, self.refill)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        bucket.failed_at = now
        bucket.guessed = bucket.guessed or guess
        self._sources[key] = bucket  # newest failure last
        self._all.fill(now, self.global_burst, self.global_refill)
        self._all.tokens = max(0.0, self._all.tokens - 1)
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)
            self._overflowed_until = now + self.remember

    def locked(self, key: str) -> bool:
        """Whether ``key``'s own bucket is empty (for logging the moment it happens)."""
        bucket = self._sources.get(key)
        return bucket is not None and bucket.fill(self.clock(), self.burst, self.refill) < 1

    def sources(self) -> int:
        """How many sources are remembered (each one for ``remember`` seconds)."""
        return len(self._sources)

    def _forget(self, now: float) -> None:
        """Drop sources whose last failure is older than ``remember`` (oldest first)."""
        while self._sources:
            key, bucket = next(iter(self._sources.items()))
            if now - bucket.failed_at < self.remember:
                break
            del self._sources[key]


def account_login(cfg: Config) -> Callable[[str, str], tuple[credentials.Login, set[str]] | None]:
    """Whose password (user, password) is -- a CalDAV user's or SyncML account's own,
    or one of its devices' app passwords -- with the stores that login may use
    (None: neither)."""
    dav = None
    accounts: dict[str, tuple[str, set[str]]] = {}
    if cfg.section("caldav").get("users"):
        from calsync.davserver.config import load as caldav_settings

        dav = caldav_settings(cfg)
    if cfg.section("syncml").get("accounts"):
        from calsync.syncml.config import load as syncml_settings

        for name, account in syncml_settings(cfg).server.accounts.items():
            accounts[name] = (account.password, set(account.datastores.values()))
    devices = app_passwords(cfg.state_dir)  # a paired device's app password counts too

    def login(user: str, password: str) -> tuple[credentials.Login, set[str]] | None:
        if dav is not None:
            found = dav.login(user, password)
            if found is not None:
                return found, set(dav.stores_of(user))
        expected, stores = accounts.get(user, ("\0" * 16, set()))
        found = credentials.check(user, password, expected, devices)
        return (found, stores) if found is not None and user in accounts else None

    return login


def account_check(cfg: Config) -> Callable[[str, str, str], bool]:
    """Whether (user, password) is a CalDAV user or SyncML account allowed ``store``
    (``ANY_STORE``: any store; the feeds tell 404 from 401 with it)."""
    login = account_login(cfg)

    def check(user: str, password: str, store: str) -> bool:
        found = login(user, password)
        return found is not None and (store == ANY_STORE or store in found[1])

    return check
