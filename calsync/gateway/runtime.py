"""How command-line runs find a running daemon: ``daemon.json`` in the state dir.

It holds the daemon's API URL, pid, token file and configuration path (never
the token).  Written (0600) when the daemon starts, removed when it stops; a
file left by a daemon that died is recognised by its pid and ignored.
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


def running_daemon(state_dir: Path) -> dict[str, Any] | None:
    """The runtime info of a live daemon using ``state_dir``, or None."""
    info = read(state_dir)
    if info is None or not isinstance(info.get("pid"), int) or not alive(info["pid"]):
        return None
    if info["pid"] == os.getpid():
        return None  # we are the daemon
    return info
