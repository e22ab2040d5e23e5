"""Talking to the target: raw requests from any loopback address, and legitimate clients.

``send`` writes one request by hand on its own connection (from a given
source address, with any headers, any body: what client libraries refuse to
send) and reads the answer, if any.  The legitimate clients are the ones the
tests of each endpoint already use: the simulated phone of
``tests/syncml/simdevice.py`` speaking HTTP (``HttpPhone``: a whole session
with md5 login, its items, our statuses and the Map), the python ``caldav``
library's requests and hand-written CalDAV requests, and the control API with
its token.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from calsync.syncml.model import Message
from tests.adversarial.target import (
    DAV_PASSWORD,
    DAV_USER,
    FEED,
    SYNCML_ACCOUNT,
    SYNCML_PASSWORD,
    Target,
)
from tests.conftest import event
from tests.davserver import raw
from tests.syncml.scripted import HttpDevice, alert
from tests.syncml.simdevice import SimPhone

LEGIT = "127.0.0.1"  # the legitimate clients' address: no attack comes from it

QUERY = (
    b'<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
    b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>'
    b'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    b'<C:time-range start="20250101T000000Z" end="20260101T000000Z"/>'
    b"</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
)


@dataclass
class Answer:
    """What came back for one request (``status`` None: the connection closed unanswered)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.status} after {self.seconds:.2f} s: {self.body[:200]!r}"


def send(
    target: Target,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    length: int | None = None,
    source: str | None = None,
    timeout: float = 60,
) -> Answer:
    """One request on a connection of its own.  ``length``: the Content-Length to
    announce (default: the body's); a body the server stops reading is cut short."""
    started = time.monotonic()
    with raw.connect(target.port, source or target.source(), timeout=timeout) as sock:
        head = raw.head(
            method,
            path,
            length=len(body) if length is None else length,
            headers={"Connection": "close", **(headers or {})},
        )
        try:
            sock.sendall(head)
            view = memoryview(body)
            for at in range(0, len(body), 1 << 20):
                sock.sendall(view[at : at + (1 << 20)])
        except OSError:  # the server answered and closed before the whole body
            pass
        got = raw.response(sock, timeout)
    seconds = time.monotonic() - started
    if got is None:
        return Answer(None, seconds=seconds)
    status, got_headers, got_body = got
    return Answer(status, got_headers, got_body, seconds)


# -- legitimate clients ------------------------------------------------------------------


class HttpPhone(SimPhone):
    """``SimPhone`` (a phone with items, anchors and change log) over HTTP to a real
    ``/sync``: whole sessions, md5 login included."""

    def __init__(self, target: Target, name: str = "legit-phone", **kw: Any) -> None:
        super().__init__(None, None, name, **kw)  # type: ignore[arg-type]
        encoding = self.dev.encoding
        self.dev = HttpDevice(
            f"{target.url}/sync",
            device=name,
            user=SYNCML_ACCOUNT,
            password=SYNCML_PASSWORD,
            encoding=encoding,
        )
        self.dev.http.close()
        self.dev.http = httpx.Client(transport=httpx.HTTPTransport(local_address=LEGIT), timeout=60)

    def _first(self, token: str, data: bytes) -> tuple[Any, Message]:
        del token  # the server chooses its session ids
        reply = self.dev.post(data, self.dev.base)
        return None, self.dev.message(reply)

    def _send(self, session: Any, commands: list[Any], final: bool = True) -> Message:
        return self.dev.message(self.dev.post(self.dev.encode(self.dev.header(), commands, final)))

    def close(self) -> None:
        self.dev.http.close()


class Legit:
    """The legitimate clients of every endpoint, from ``LEGIT``, each one request
    that must succeed (``probe``, by endpoint name)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(local_address=LEGIT), timeout=60, base_url=target.url
        )
        self.phone = HttpPhone(target)

    def propfind(self) -> httpx.Response:
        r = self.http.request(
            "PROPFIND",
            f"/dav/{DAV_USER}/dir/",
            auth=(DAV_USER, DAV_PASSWORD),
            headers={"Depth": "1"},
        )
        assert r.status_code == 207, (r.status_code, r.text[:300])
        return r

    def status(self) -> httpx.Response:
        r = self.http.get("/api/status", headers={"Authorization": f"Bearer {self.target.token}"})
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return r

    def login(self) -> Message:
        """One SyncML login (md5; the phone keeps its nonce, so one request once it has
        one), asking for a slow sync (a new login of the device drops this session)."""
        return self.phone.dev.login([alert(201)])

    def dav_session(self) -> None:
        """What a CalDAV client does: PUT an event, read it back, query, list."""
        auth = (DAV_USER, DAV_PASSWORD)
        uid = f"legit-dav-{os.urandom(4).hex()}"
        path = f"/dav/{DAV_USER}/dir/{uid}.ics"
        r = self.http.put(path, content=event(uid, "From CalDAV"), auth=auth)
        assert r.status_code == 201, (r.status_code, r.text[:300])
        r = self.http.get(path, auth=auth)
        assert r.status_code == 200 and uid in r.text, r.status_code
        r = self.http.request(
            "REPORT", f"/dav/{DAV_USER}/dir/", content=QUERY, auth=auth, headers={"Depth": "1"}
        )
        assert r.status_code == 207 and uid in r.text, (r.status_code, r.text[:300])
        self.propfind()

    def feed(self) -> httpx.Response:
        """What a calendar program subscribed to the feed does: fetch it."""
        r = self.http.get(f"/feeds/{FEED}.ics", params={"token": self.target.feed_token})
        assert r.status_code == 200 and r.text.startswith("BEGIN:VCALENDAR"), (
            r.status_code,
            r.text[:300],
        )
        return r

    def feed_session(self) -> None:
        """Fetch the feed, then again as subscribers do (304 while nothing changed)."""
        etag = self.feed().headers["etag"]
        r = self.http.get(
            f"/feeds/{FEED}.ics",
            params={"token": self.target.feed_token},
            headers={"If-None-Match": etag},
        )
        assert r.status_code in (200, 304), r.status_code  # 200: a sync changed the store

    def web(self) -> httpx.Response:
        """Open the web page (on this machine it asks no password)."""
        r = self.http.get("/")
        assert r.status_code == 200 and 'data-pair="p"' in r.text, (r.status_code, r.text[:300])
        return r

    def web_session(self) -> None:
        """The page, then its Sync now button (a form with the page's CSRF token)."""
        page = self.web()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        r = self.http.post("/web/sync", data={"pair": "p", "csrf": csrf.group(1)})
        assert r.status_code == 303, (r.status_code, r.text[:300])

    def api_session(self) -> None:
        """What the command line does: status, a sync waited for, the history."""
        token = {"Authorization": f"Bearer {self.target.token}"}
        self.status()
        r = self.http.post("/api/sync", json={"pairs": ["p"], "wait": True}, headers=token)
        assert r.status_code == 200 and r.json()["exit_code"] == 0, (r.status_code, r.text[:300])
        r = self.http.get("/api/history?limit=5", headers=token)
        assert r.status_code == 200, (r.status_code, r.text[:300])

    def close(self) -> None:
        self.http.close()
        self.phone.close()
