"""How command-line runs find a running daemon: ``daemon.json`` in the state dir.

It holds the daemon's API URL, pid, token file and configuration path (never
the token).  Written (0600) when the daemon starts, removed when it stops; a
file left by a daemon that died is recognised by its pid and ignored, and so
is one whose pid now belongs to a process that is not calsync (its command
line says so, where the system shows it: ``looks_like_calsync``).  Before a
client sends the API token to the recorded URL, the daemon proves it holds
the token (``client.identify``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RUNTIME_FILE = "daemon.json"


def runtime_path(state_dir: Path) -> Path:
    return state_dir / RUNTIME_FILE


def write(state_dir: Path, *, url: str, token_file: Path, config: Path | None) -> Path:
    path = runtime_path(state_dir)
    info = {
        "url": url,
        "pid": os.getpid(),
        "token_file": str(token_file),
        "config": str(config.resolve()) if config else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from calsync.gateway.auth import write_secret  # the daemon's side only

    write_secret(path, json.dumps(info, indent=2) + "\n")
    return path


def remove(state_dir: Path) -> None:
    """Remove our runtime file (only ours: another daemon may have replaced it)."""
    path = runtime_path(state_dir)
    info = read(state_dir)
    if info is not None and info.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(runtime_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined,unused-ignore]
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined,unused-ignore]
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def looks_like_calsync(pid: int) -> bool | None:
    """Is process ``pid`` calsync, by its command line (``calsync ...``, ``python -m
    calsync ...``)?  None: this system does not tell (no ``/proc``)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False if os.path.isdir("/proc/self") else None  # gone, or no /proc
    except OSError:
        return None
    return any(os.path.basename(arg) in (b"calsync", b"calsync.exe") for arg in raw.split(b"\0"))


def running_daemon(state_dir: Path) -> dict[str, Any] | None:
    """The runtime info of a live daemon using ``state_dir``, or None (none recorded,
    the recorded one died, or its pid is now another program's)."""
    info = read(state_dir)
    if info is None or not isinstance(info.get("pid"), int) or not alive(info["pid"]):
        return None
    if info["pid"] == os.getpid():
        return None  # we are the daemon
    if looks_like_calsync(info["pid"]) is False:
        return None
    return info
