"""A real daemon (``python -m calsync serve``) in a subprocess, and its API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT

PASSWORD = "pa55-W0rd-for-DAV"

# a pair of two local stores; the state under tmp/state (where env_for puts it too)
PAIR_CONFIG = """
[general]
state_dir = "{tmp}/state"
[stores.dir]
type = "vdir"
path = "{tmp}/dir"
create = true
[stores.file]
type = "ics"
path = "{tmp}/file.ics"
[pairs.p]
a = "dir"
b = "file"
conflict = "newest"
"""

# a CalDAV user and a SyncML account on the pair's vdir
DEVICES = f"""
[caldav.users.alice]
password = "{PASSWORD}"
calendars = ["dir"]
[syncml.accounts.phone]
password = "{PASSWORD}"
calendar = "dir"
"""


def write_config(tmp: Path, extra: str = "", *, mode: int = 0o600) -> Path:
    """``config.toml`` in ``tmp``: ``PAIR_CONFIG`` + ``extra``, with ``mode``, and the
    vdir holding one event (e1)."""
    from tests.conftest import event

    (tmp / "dir").mkdir(parents=True, exist_ok=True)
    (tmp / "dir" / "e1.ics").write_bytes(event("e1", "First"))
    config = tmp / "config.toml"
    config.write_text(PAIR_CONFIG.format(tmp=tmp) + extra, encoding="utf-8")
    config.chmod(mode)
    return config


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def env_for(tmp: Path, config: Path | None, **extra: str) -> dict[str, str]:
    """An environment isolating a subprocess's config, state, data and home dirs."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "XDG_DATA_HOME": str(tmp / "xdg-data"),
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "CALSYNC_STATE_DIR": str(tmp / "state"),
        "CALSYNC_DATA_DIR": str(tmp / "data"),
        "CALSYNC_CONFIG": str(config if config is not None else tmp / "no-config.toml"),
        **extra,
    }
    env.pop("CALSYNC_NO_DAEMON", None)
    (tmp / "home").mkdir(exist_ok=True)
    return env


class DaemonProcess:
    """``calsync serve`` as the user would run it; ``api()`` talks to its control API."""

    def __init__(
        self,
        tmp: Path,
        config: Path | None,
        *args: str,
        port: int | None = None,
        host: str = "127.0.0.1",
        preexec_fn: Callable[[], None] | None = None,
        **env: str,
    ) -> None:
        """``preexec_fn``: run in the child before calsync starts (resource limits);
        ``host``: the address it listens on (``api`` needs loopback)."""
        self.tmp = tmp
        self.host = host
        self.port = port or free_port(host)
        self.env = env_for(tmp, config, **env)
        self.log = Path(tempfile.mkstemp(prefix="daemon-", suffix=".log", dir=tmp)[1])
        self.out = Path(tempfile.mkstemp(prefix="daemon-", suffix=".out", dir=tmp)[1])
        self._log = self.log.open("w")
        self._out = self.out.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "calsync", "serve", "--listen", f"{host}:{self.port}", *args],
            env=self.env,
            stdout=self._out,
            stderr=self._log,
            cwd=tmp,
            preexec_fn=preexec_fn,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self._up, 30, "the daemon to start")
        self.token = (tmp / "xdg-config" / "calsync" / "api-token").read_text().strip()

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({self.proc.returncode}):\n{self.logs()}")
        return "daemon.start" in self.logs()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=120, **kw)

    def status(self) -> dict[str, Any]:
        r = self.api("GET", "/api/status")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def runs(self, pair: str) -> int:
        return int(self.status()["pairs"][pair]["daemon"]["runs"])

    def idle(self, pair: str) -> bool:
        d = self.status()["pairs"][pair]["daemon"]
        return not d["running"] and not d["queued"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A ``calsync`` command in the daemon's environment."""
        return subprocess.run(
            [sys.executable, "-m", "calsync", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.tmp,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"the daemon ignored signal {sig}:\n{self.logs()}") from None
        self._log.close()
        self._out.close()
        return int(self.proc.returncode)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def events(log: str, name: str) -> list[str]:
    return [line for line in log.splitlines() if f" {name} " in line or line.endswith(f" {name}")]


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]
