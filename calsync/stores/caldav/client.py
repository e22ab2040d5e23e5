"""A thin WebDAV client on httpx: one keep-alive connection pool, safe defaults.

Why our own: the sync needs exactly PROPFIND, REPORT, PUT, DELETE, MKCALENDAR
with full control over preconditions, batching and error bodies; a general
library (python-caldav) would sit between us and the raw bytes, has its own
object model for the server quirks, and pulls in ~20 dependencies.

- Auth: Basic or Digest.  ``auto`` sends the first request without
  credentials and answers the server's challenge (Digest preferred); the
  scheme learnt is remembered by the store so later runs send Basic
  preemptively (one request for a no-change sync).
- Every body is read with a size cap (decompressed bytes), so a hostile or
  broken server cannot exhaust memory.
- Reads (PROPFIND, REPORT, GET) are retried once after a network error or a
  5xx; writes never are (their preconditions make a blind retry unsafe to
  interpret).  A read that timed out is retried with ``PATIENCE`` times the
  timeout, and reading a whole calendar gets that from the start: a slow
  server (a large calendar, caches built on first access -- Radicale spent
  42 s on its first listing of 10k items) is still working on the request, and
  one more impatient try would only double its work.
- Messages never contain credentials: URLs carry none (refused in config),
  headers are never logged.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from calsync.stores.caldav import xml

log = logging.getLogger("calsync.caldav")

MAX_BODY = 256 * 1024 * 1024  # bytes of a response body, after decompression
READ_METHODS = frozenset({"PROPFIND", "REPORT", "GET", "OPTIONS"})
PATIENCE = 4  # timeout multiplier for a read tried again after a timeout
USER_AGENT = "calsync/0.1"

T = TypeVar("T")


class DavError(Exception):
    """A request could not be made or its answer not be read (no credentials inside)."""


class DavNetworkError(DavError):
    """Connection refused/reset, timeout, TLS failure, truncated body: try again later."""


class DavTimeout(DavNetworkError):
    """Connected, but no answer within the timeout: the server may still be working
    on it."""


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def etag(self) -> str | None:
        return self.headers.get("etag")

    def multistatus(self) -> xml.Multistatus:
        return xml.parse_multistatus(self.body)


class AutoAuth(httpx.Auth):
    """Basic or Digest, chosen from the server's challenge unless configured."""

    requires_response_body = False

    def __init__(self, username: str, password: Callable[[], str], scheme: str | None) -> None:
        self._username = username
        self._password = password
        self.scheme = scheme  # "basic" | "digest" | None (not known yet)
        self._digest: httpx.DigestAuth | None = None

    def _basic(self, request: httpx.Request) -> None:
        pair = f"{self._username}:{self._password()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")

    def _digest_auth(self) -> httpx.DigestAuth:
        if self._digest is None:
            self._digest = httpx.DigestAuth(self._username, self._password())
        return self._digest

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.scheme == "basic":
            self._basic(request)
            yield request
            return
        if self.scheme == "digest":
            yield from self._digest_auth().auth_flow(request)
            return
        response = yield request
        if response.status_code != 401:
            return
        offered = [
            h.split(None, 1)[0].lower() for h in response.headers.get_list("www-authenticate")
        ]
        if "digest" in offered:
            self.scheme = "digest"
            flow = self._digest_auth().auth_flow(request)
            next(flow)  # the unauthenticated request: we already have its 401
            try:
                authed = flow.send(response)
            except StopIteration:
                return
            response = yield authed
            try:
                flow.send(response)
            except StopIteration:
                pass
        elif "basic" in offered:
            self.scheme = "basic"
            self._basic(request)
            yield request


def redact(url: str) -> str:
    """The URL without user info (never show credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=host).geturl()


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DavClient:
    """Requests against one server (see module docstring)."""

    def __init__(
        self,
        *,
        username: str | None,
        password: Callable[[], str],
        auth_scheme: str | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        retry_delay: float = 0.5,
        compress: bool = True,
    ) -> None:
        """``compress``: ask for gzip-compressed bodies (worth it on any real network;
        on a loopback connection it only costs CPU at both ends)."""
        self.auth = AutoAuth(username, password, auth_scheme) if username else None
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.requests = 0  # sent, for tests and benchmarks
        self._count_lock = threading.Lock()
        self._http = httpx.Client(
            auth=self.auth,
            verify=verify,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT}
            | ({} if compress else {"Accept-Encoding": "identity"}),
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        follow: bool = False,
        retry: bool = True,
    ) -> Response:
        """``retry=False``: one attempt even for a read (nothing waits on its failure)."""
        attempts = 2 if method in READ_METHODS and retry else 1
        timeout = self.timeout
        for attempt in range(attempts):
            try:
                with self._send(method, url, body, headers, follow, timeout) as (r, chunks):
                    resp = Response(r.status_code, r.headers, b"".join(chunks), str(r.url))
            except DavNetworkError as e:
                if attempt + 1 == attempts:
                    raise
                if isinstance(e, DavTimeout):
                    timeout = self.timeout * PATIENCE
            else:
                if resp.status < 500 or attempt + 1 == attempts:
                    return resp
            log.debug("%s %s failed, retrying once", method, redact(url))
            time.sleep(self.retry_delay)
        raise AssertionError("unreachable")

    @contextmanager
    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str] | None,
        follow: bool,
        timeout: float,
    ) -> Generator[tuple[httpx.Response, Iterator[bytes]], None, None]:
        """One request; yields the response and its body as capped chunks.  Network
        and TLS errors (also while the body is read) become DavNetworkError."""
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/xml; charset=utf-8"
        where = f"{method} {redact(url)}"

        def capped(r: httpx.Response) -> Iterator[bytes]:
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY:
                    raise DavError(f"{where}: response larger than {MAX_BODY >> 20} MiB")
                yield chunk

        try:
            with self._http.stream(
                method,
                url,
                content=body,
                headers=hdrs,
                follow_redirects=follow,
                timeout=httpx.Timeout(self.timeout, read=timeout),
            ) as r:
                with self._count_lock:  # get_many sends from worker threads
                    self.requests += 1 + len(r.history)  # redirects and auth challenges
                log.debug("%s -> %s", where, r.status_code)
                yield r, capped(r)
        except httpx.ReadTimeout:
            raise DavTimeout(f"{where}: no answer within {timeout:g} s") from None
        except httpx.TimeoutException:
            raise DavNetworkError(f"{where}: timed out") from None
        except httpx.HTTPError as e:
            raise DavNetworkError(f"{where}: {_describe(e)}") from None
        except ssl.SSLError as e:
            raise DavNetworkError(f"{where}: TLS error: {e.reason or e}") from None
        except OSError as e:
            raise DavNetworkError(f"{where}: {e.strerror or e}") from None

    def stream_report(
        self, url: str, body: bytes, depth: str, consume: Callable[[Iterator[bytes]], T]
    ) -> tuple[Response, T | None]:
        """A REPORT whose 207 body is handed to ``consume`` chunk by chunk, as it
        arrives, instead of being kept (a calendar's every item can be large).

        Returns the response (without its body when it was streamed) and what
        ``consume`` returned; for any other status, the (capped) body and None.
        Never retried: the caller decides what a failure means.  Patient from the
        start (``PATIENCE``): it reads a whole calendar.
        """
        headers = {"Depth": depth}
        patient = self.timeout * PATIENCE
        with self._send("REPORT", url, body, headers, False, patient) as (r, chunks):
            if r.status_code != 207:
                return Response(r.status_code, r.headers, b"".join(chunks), str(r.url)), None
            got = consume(chunks)
            for _ in chunks:  # whatever follows the document must still be read
                pass
            return Response(r.status_code, r.headers, b"", str(r.url)), got

    # -- the few requests CalDAV needs -------------------------------------------------

    def propfind(
        self, url: str, props: list[str], depth: str, *, follow: bool = False, retry: bool = True
    ) -> Response:
        body = xml.propfind(props)
        return self.request("PROPFIND", url, body, {"Depth": depth}, follow=follow, retry=retry)

    def report(self, url: str, body: bytes, depth: str = "1") -> Response:
        return self.request("REPORT", url, body, {"Depth": depth})

    def put(
        self, url: str, data: bytes, *, if_match: str | None = None, create: bool = False
    ) -> Response:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if create:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = if_match
        return self.request("PUT", url, data, headers)

    def delete(self, url: str, *, if_match: str | None) -> Response:
        headers = {"If-Match": if_match} if if_match is not None else {}
        return self.request("DELETE", url, None, headers)


def _describe(e: httpx.HTTPError) -> str:
    """A short reason without the request (whose URL we print ourselves)."""
    cause = e.__context__ or e.__cause__
    text = str(e) or type(e).__name__
    if isinstance(cause, ssl.SSLError):
        text = f"TLS error: {cause.reason or cause}"
    return text
