"""Fixtures of the SyncML client tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from calsync.stores.syncml import SyncMLStore
from tests.conftest import SHARED
from tests.syncml_client.harness import Loopback


@pytest.fixture
def make_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Loopback]:
    """calsync's server core in-process; every syncml store of the test talks to it."""

    def make(**kw: Any) -> Loopback:
        loop = Loopback(tmp_path, **kw)
        monkeypatch.setattr(SyncMLStore, "new_transport", lambda self: loop.transport())
        return loop

    return make


@pytest.fixture
def loopback(make_loopback: Callable[..., Loopback]) -> Loopback:
    return make_loopback()


# -- SyncEvolution's real SyncML server ---------------------------------------------------

SERVER_SH = SHARED / "peers" / "syncevolution" / "server.sh"
DATASTORES = 16  # per server: every test gets datastores of its own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SyncEvolution:
    """``server.sh`` on a free port; ``datastore()`` hands out unused datastores."""

    def __init__(self, dir: Path, *, stores: int = DATASTORES, port: int | None = None) -> None:
        assert SERVER_SH.exists(), f"{SERVER_SH} missing: the SyncEvolution peer is not available"
        self.dir = dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/sync"
        self.names = [f"ds{i}" for i in range(stores)]
        self._next = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> SyncEvolution:
        env = {
            **os.environ,
            "SE_LOGLEVEL": os.environ.get("CALSYNC_SE_LOGLEVEL", "1"),
            "SE_STORES": " ".join(self.names),
        }
        self.proc = subprocess.Popen(
            ["bash", str(SERVER_SH), str(self.port), str(self.dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 90
        for line in self.proc.stdout:
            lines.append(line)
            if "SERVER READY" in line:
                break
            if time.monotonic() > deadline:
                break
        if not any("SERVER READY" in line for line in lines):
            self.stop()
            log = (self.dir / "server.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"SyncEvolution's server did not start:\n{''.join(lines)}\n{log}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # server.sh stops its D-Bus and server
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def kill(self) -> None:
        """Die at once: SIGKILL to every process of the server (its group, and the
        D-Bus-activated SyncEvolution daemons, which run with its HOME)."""
        if self.proc is None:
            return
        home = f"HOME={self.dir / 'home'}".encode()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in _pids_with(home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def datastore(self) -> str:
        assert self._next < len(self.names), "more datastores needed: raise DATASTORES"
        name = self.names[self._next]
        self._next += 1
        return name

    def items_dir(self, datastore: str) -> Path:
        """The server's item directory (one file per item) of ``datastore``."""
        return self.dir / "data" / datastore


def _pids_with(env_entry: bytes) -> list[int]:
    """Processes whose environment holds ``env_entry`` (the server's own children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if env_entry in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def syncevolution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEvolution]:
    """One SyncEvolution server per test process, shared through separate datastores."""
    server = SyncEvolution(tmp_path_factory.mktemp("syncevolution")).start()
    try:
        yield server
    finally:
        server.stop()
