"""Running a SyncML client session over HTTP (httpx): the I/O around ``client``.

``HttpTransport`` posts one message and returns the answer's bytes: bounded
body, no redirects, a SyncML content type required, and every failure turned
into ``TransportError`` with a message that names the server but never the
credentials.  Later messages go to the server's ``RespURI``, which must stay
on the configured scheme, host and port (our calendar does not follow a
server elsewhere).

``run_session`` is the loop: message 1, then reply -> next message until the
session is done.  A 401/407 with a challenge is answered once more in a new
session with the challenge's nonce (an md5 client with no or a stale nonce
needs that); a second refusal is ``AuthFailed``.  Every NextNonce the server
sends is stored, even when the session then fails.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from calsync.syncml import codec
from calsync.syncml.client import (
    AuthRequired,
    ClientConfig,
    ClientSession,
    Report,
    SessionFailed,
)
from calsync.syncml.client_mirror import MirrorBackend, ServerMirror

log = logging.getLogger("calsync.syncml.client")

USER_AGENT = "calsync/0.1 (SyncML client)"


class TransportError(SessionFailed):
    """The server could not be reached, or the connection broke."""

    def __init__(self, message: str, *, unreachable: bool = False, status: int | None = None):
        self.unreachable = unreachable
        super().__init__(message, status=status)


class AuthFailed(SessionFailed):
    """The server refused our credentials for good."""


def redact(url: str) -> str:
    """The URL without user info or query (a RespURI's session id is nobody's business)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=host, query="", fragment="").geturl()


class Transport(Protocol):
    """Carries one message to the server and its answer back."""

    def post(
        self, url: str, body: bytes, content_type: str, *, first: bool
    ) -> tuple[bytes, str]: ...

    def close(self) -> None: ...


class HttpTransport:
    """One keep-alive httpx client for the messages of a sync."""

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        max_body: int = 8 * 1024 * 1024,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_body = max_body
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            verify=verify,
        )

    def close(self) -> None:
        self.http.close()

    def post(self, url: str, body: bytes, content_type: str, *, first: bool) -> tuple[bytes, str]:
        where = redact(url)
        headers = {"Content-Type": content_type, "Accept": content_type}
        try:
            with self.http.stream("POST", url, content=body, headers=headers) as r:
                if r.status_code != 200:
                    hint = ""
                    if r.status_code == 500 and first:
                        hint = (
                            " (some servers, SyncEvolution's among them, answer so to a "
                            "device id they do not know)"
                        )
                    raise TransportError(
                        f"the SyncML server at {where} answered HTTP {r.status_code}{hint}",
                        status=r.status_code,
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_body:
                        raise TransportError(
                            f"the answer of {where} is larger than {self.max_body} bytes"
                        )
                    chunks.append(chunk)
                ctype = r.headers.get("content-type", "")
        except httpx.ConnectError as e:
            raise TransportError(
                f"cannot reach the SyncML server at {where}: {_reason(e)}", unreachable=first
            ) from None
        except httpx.TimeoutException:
            raise TransportError(
                f"the SyncML server at {where} did not answer in time", unreachable=first
            ) from None
        except httpx.HTTPError as e:
            raise TransportError(
                f"the connection to the SyncML server at {where} broke: {_reason(e)}"
            ) from None
        data = b"".join(chunks)
        try:
            codec.encoding_of(ctype, data)
        except ValueError:
            raise TransportError(
                f"the server at {where} answered {ctype.split(';')[0] or 'without a type'}, "
                "not SyncML (is the URL right?)"
            ) from None
        return data, ctype


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.split("\n", 1)[0][:200]


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def utc_anchor() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def run_session(
    config: ClientConfig,
    mirror: ServerMirror,
    transport: Transport,
    *,
    mode: int,
    push: bool = True,
) -> Report:
    """One complete session (with one retry after an authentication challenge)."""
    retried = False
    while True:
        state = mirror.session_state()
        backend = MirrorBackend(mirror, config.content_type)
        session = ClientSession(
            config,
            backend,
            mode=mode,
            session_id=state.session_id,
            last_anchor=state.our_anchor,
            now=utc_anchor(),
            nonce=state.nonce,
            slow_due=state.needs_slow,
            push=push,
        )
        try:
            _converse(session, transport)
            return session.report
        except AuthRequired as e:
            backend.fail()
            fresh = e.nonce is not None and e.nonce != state.nonce
            if not retried and config.auth == "md5" and fresh:
                retried = True
                log.info("%s: the server sent a new nonce; logging in again", redact(config.url))
                continue
            hint = ""
            if e.chal_type and e.chal_type.endswith("basic") and config.auth != "basic":
                hint = '; it asks for syncml:auth-basic: set auth = "basic"'
            raise AuthFailed(f"{e}: check username and password{hint}", status=e.status) from None
        except SessionFailed:
            backend.fail()
            raise
        finally:
            if session.next_nonce:
                mirror.save_nonce(session.next_nonce)


def _converse(session: ClientSession, transport: Transport) -> None:
    base = session.config.url
    body: bytes | None = session.first()
    url = base
    first = True
    while body is not None:
        reply, ctype = transport.post(url, body, session.content_type, first=first)
        first = False
        body = session.receive(reply, ctype)
        nxt = session.target
        if not _same_origin(nxt, base):
            raise SessionFailed(
                f"the server sent us on to another host ({redact(nxt)}); not following"
            )
        url = nxt
