"""Who reaches the control API, and whom the command line trusts with its token
(issue #19, finding 10; #20 item 11: a port in use).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import event
from tests.gateway.helpers import env_for, free_port

CONFIG = """
[general]
state_dir = "{tmp}/state"
[stores.dir]
type = "vdir"
path = "{tmp}/dir"
[stores.file]
type = "ics"
path = "{tmp}/file.ics"
[pairs.p]
a = "dir"
b = "file"
"""


def write_config(tmp: Path, extra: str = "") -> Path:
    (tmp / "dir").mkdir(exist_ok=True)
    (tmp / "dir" / "e1.ics").write_bytes(event("e1", "First"))
    config = tmp / "config.toml"
    config.write_text(CONFIG.format(tmp=tmp) + extra, encoding="utf-8")
    config.chmod(0o600)
    return config


def test_a_port_in_use_is_one_clear_error_before_anything_is_announced(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = subprocess.run(
            [sys.executable, "-m", "calsync", "serve", "--listen", f"127.0.0.1:{port}"],
            env=env_for(tmp_path, config),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines == [f"calsync: cannot listen on 127.0.0.1:{port}: address already in use"], lines
    assert not (tmp_path / "state" / "daemon.json").exists()
