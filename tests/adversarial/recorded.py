"""Real CalDAV request bodies, recorded from a real client (the python ``caldav`` library).

There are no captured CalDAV conversations in ``/work/shared/peers``, so the
suite records its own: the library discovers the calendars and does what a
client does (PUT of events and a task, queries by time range with and
without expansion, by UID, a multiget, sync-collection, free-busy, property
reads and writes, an update with If-Match, a DELETE) against the gateway
in-process, and an ASGI wrapper keeps each request's method, path, the
headers that shape it and its body, as it arrived.  Recorded once per test
process.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calsync.config import parse
from calsync.gateway.app import create_app, features_for
from calsync.gateway.server import BackgroundServer
from tests.adversarial.target import DAV_PASSWORD, DAV_USER, config_text
from tests.conftest import event

if TYPE_CHECKING:
    from tests.adversarial.endpoints import Sample

KEPT_HEADERS = ("content-type", "depth", "if-match", "if-none-match", "prefer", "brief")


class Recorder:
    """ASGI wrapper: every request's method, path, some headers and body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def __call__(self, scope: Any, receive: Callable[..., Any], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts: list[bytes] = []

        async def recording() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.decode("latin-1") in KEPT_HEADERS
        }
        path = scope["path"] + (
            f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        )
        self.seen.append((scope["method"], path, headers, b"".join(parts)))


def _client_session(url: str) -> None:
    import caldav
    from caldav.elements import dav

    client = caldav.DAVClient(url=f"{url}/dav/", username=DAV_USER, password=DAV_PASSWORD)
    principal = client.principal()
    principal.calendars()
    cal = client.calendar(url=f"{url}/dav/{DAV_USER}/captures/")
    cal.get_properties([dav.DisplayName()])
    cal.set_properties([dav.DisplayName("Captures")])
    weekly = event("rec-weekly", "Weekly", extra="RRULE:FREQ=WEEKLY;COUNT=10").decode()
    one = cal.save_event(event("rec-one", "Once").decode())
    cal.save_event(weekly)
    cal.save_todo(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:rec-todo\r\n"
        "DTSTAMP:20250101T000000Z\r\nSUMMARY:Task\r\nDUE:20250310T100000Z\r\nEND:VTODO\r\n"
        "END:VCALENDAR\r\n"
    )
    start, end = (
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    cal.events()
    cal.todos()
    cal.search(start=start, end=end, event=True, expand=False)
    cal.search(start=start, end=end, event=True, expand=True)
    cal.event_by_uid("rec-weekly")
    cal.calendar_multiget([one.url])
    cal.objects_by_sync_token(load_objects=True)
    cal.freebusy_request(start, end)
    one.load()
    one.vobject_instance.vevent.summary.value = "Once, edited"
    one.save()
    one.delete()


@functools.cache
def caldav_requests() -> list[Sample]:
    """The recorded requests, each once (a retry after a 401 carries the same body)."""
    from tests.adversarial.endpoints import Sample

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "dir").mkdir()
        (root / "captures").mkdir()
        cfg, errors = parse(config_text(root), root / "config.toml")
        assert not errors, errors
        recorder = Recorder(create_app(features_for(cfg)))
        with BackgroundServer(recorder) as server:  # type: ignore[arg-type]
            _client_session(f"http://127.0.0.1:{server.port}")
    samples: dict[tuple[str, str, bytes], Sample] = {}
    for n, (method, path, headers, body) in enumerate(recorder.seen):
        key = (method, path, body)
        if key not in samples:
            samples[key] = Sample(f"caldav-{n}-{method}", method, path, headers, body)
    found = list(samples.values())
    assert sum(bool(s.body) for s in found) >= 10, [(s.method, s.path) for s in found]
    return found
