"""Real CalDAV servers for the tests, started with the scripts in ../shared/peers/caldav.

Each script takes PORT DATADIR, installs what it needs on first use and prints
one PID.  Starting is serialised across xdist workers with a file lock (apt and
pip installs must not run twice at once).  A server that cannot be started
FAILS the tests that need it, loudly, with the script's output.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from calsync.stores.caldav import xml
from calsync.stores.caldav.client import DavClient
from calsync.stores.caldav.hrefs import quote_path

USER = "test"
PASSWORD = "test"

HOMES = {
    "radicale": ("http", "/test/"),
    "xandikos": ("https", "/test/calendars/"),
    "cyrus": ("http", "/dav/calendars/user/test/"),
    "davical": ("http", "/caldav.php/test/"),
}
LOCK = Path(tempfile.gettempdir()) / "calsync-caldav-peers.lock"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _exclusive() -> Iterator[None]:
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Peer:
    kind: str
    pid: int
    port: int
    datadir: Path
    startup: float  # seconds the start script took
    _made: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{HOMES[self.kind][0]}://127.0.0.1:{self.port}"

    @property
    def home(self) -> str:
        return self.base + HOMES[self.kind][1]

    @property
    def calendar(self) -> str:
        return self.home + "calendar/"

    def url_of(self, path: str) -> str:
        """Absolute URL of a store id (a decoded path)."""
        return self.base + quote_path(path)

    @property
    def verify(self) -> bool:
        return self.kind != "xandikos"  # self-signed certificate

    def client(self) -> DavClient:
        return DavClient(
            username=USER, password=lambda: PASSWORD, auth_scheme="basic", verify=self.verify
        )

    def mkcalendar(self, comps: tuple[str, ...] = (), name: str | None = None) -> str:
        """A new, empty calendar collection; its URL."""
        name = name or f"t-{uuid.uuid4().hex[:12]}"
        url = f"{self.home}{name}/"
        c = self.client()
        try:
            resp = c.request("MKCALENDAR", url, xml.mkcalendar(name, comps))
        finally:
            c.close()
        assert resp.status == 201, f"MKCALENDAR on {self.kind}: {resp.status} {resp.body[:300]!r}"
        self._made.append(url)
        return url

    def rmcalendar(self, url: str) -> None:
        """Delete the members (Cyrus keeps UIDs of deleted calendars), then the calendar."""
        c = self.client()
        try:
            resp = c.propfind(url, ["D:resourcetype"], "1")
            if resp.status == 207:
                own = url.rstrip("/")
                for r in resp.multistatus().responses:
                    href = r.href.rstrip("/")
                    if not href or own.endswith(href) or xml.is_collection(r):
                        continue
                    c.request("DELETE", self.base + r.href if r.href.startswith("/") else r.href)
            c.request("DELETE", url)
        finally:
            c.close()

    def put(self, url: str, data: bytes) -> str:
        """PUT as another client would (no preconditions); the new ETag."""
        c = self.client()
        try:
            resp = c.request("PUT", url, data, {"Content-Type": "text/calendar; charset=utf-8"})
        finally:
            c.close()
        assert resp.ok, f"PUT {url}: {resp.status} {resp.body[:300]!r}"
        return resp.etag() or ""

    def delete(self, url: str) -> None:
        c = self.client()
        try:
            resp = c.request("DELETE", url)
        finally:
            c.close()
        assert resp.ok, f"DELETE {url}: {resp.status}"

    def stop(self) -> None:
        stop_pid(self.pid)
        shutil.rmtree(self.datadir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def stop_pid(pid: int, wait: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start(kind: str, scripts: Path, root: Path) -> Peer:
    """Start one server of ``kind``; pytest.fail (never skip) when it does not come up."""
    script = scripts / f"{kind}.sh"
    assert script.exists(), f"peer script missing: {script}"
    last = ""
    for _ in range(3):
        port = free_port()
        datadir = root / f"{kind}-{port}"
        started = time.monotonic()
        with _exclusive():
            proc = subprocess.run(
                [str(script), str(port), str(datadir)],
                capture_output=True,
                text=True,
                timeout=900,
                start_new_session=True,
            )
        took = time.monotonic() - started
        out = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and out and out[-1].isdigit():
            return Peer(kind, int(out[-1]), port, datadir, took)
        last = (
            f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
        )
        if "already in use" not in proc.stderr:
            break
    pytest.fail(f"could not start the {kind} CalDAV server with {script}:\n{last}")


def peer_root() -> Path:
    """A directory the cyrus/postgres users can reach (not a 0700 mktemp dir)."""
    root = Path(tempfile.mkdtemp(prefix="calsync-caldav-"))
    root.chmod(0o755)
    return root
