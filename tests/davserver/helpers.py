"""The gateway with the CalDAV endpoint and the daemon, in-process, on a free port."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from calsync.config import Config, parse
from calsync.gateway.app import create_app, features_for
from calsync.gateway.daemon import Daemon
from calsync.gateway.server import BackgroundServer
from calsync.sync.history import History

USER = "alice"
PASSWORD = "pa55-W0rd-for-DAV"

CONFIG = """
[general]
state_dir = "{tmp}/state"
[stores.hub]
type = "vdir"
path = "{tmp}/hub"
create = true
[stores.laptop]
type = "ics"
path = "{tmp}/laptop.ics"
[pairs.main]
a = "hub"
b = "laptop"
[caldav.users.alice]
password = "{password}"
calendars = ["hub", "laptop"]
[caldav.users.bob]
password = "bobs-password"
calendars = ["laptop"]
{extra}
"""


def config_text(tmp: Path, extra: str = "") -> str:
    return CONFIG.format(tmp=tmp, password=PASSWORD, extra=extra)


@dataclass
class Gateway:
    """A running gateway: the daemon (scheduler, no watchers) + CalDAV (+ SyncML)."""

    cfg: Config
    server: BackgroundServer
    daemon: Daemon
    tmp: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def dav(self) -> str:
        return self.base + "/dav/"

    def url(self, path: str) -> str:
        return self.base + path

    def request(
        self, method: str, path: str, *, auth: tuple[str, str] | None = (USER, PASSWORD), **kw: Any
    ) -> httpx.Response:
        return httpx.request(method, self.url(path), auth=auth, timeout=60, **kw)

    def history(self, uid: str | None) -> list[Any]:
        h = History(self.cfg.state_dir / "history.sqlite")
        try:
            return h.versions(uid)
        finally:
            h.close()

    def idle(self) -> bool:
        return all(not s.running and not s.jobs for s in self.daemon.scheduler.pairs.values())

    def stop(self) -> None:
        self.server.stop()


def start(tmp: Path, text: str | None = None) -> Gateway:
    for d in ("hub",):
        (tmp / d).mkdir(exist_ok=True)
    cfg, errors = parse(text or config_text(tmp), tmp / "config.toml")
    assert not errors, errors
    daemon = Daemon(cfg, url="http://127.0.0.1", config_path=None, watch=False)
    app = create_app([daemon, *features_for(cfg, on_store_changed=daemon.store_changed)])
    server = BackgroundServer(app).start()
    return Gateway(cfg, server, daemon, tmp)


def wait_for(check: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def ics(
    uid: str, summary: str = "Meeting", start: str = "20250301T100000Z", extra: str = ""
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//calsync dav tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20250101T000000Z",
        f"DTSTART:{start}",
        "DURATION:PT1H",
        f"SUMMARY:{summary}",
        *([extra] if extra else []),
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"
