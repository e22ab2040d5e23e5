"""vdirsyncer 0.21, an independent CalDAV client, syncing a vdir with the endpoint two-way.

vdirsyncer is installed from PyPI into its own virtualenv in a cache dir on
first use (its dependencies must not mix with ours).  Changes on its side
reach the hub and, through the daemon's pair, the .ics file; changes made in
the .ics file reach vdirsyncer's side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import event
from tests.davserver.helpers import PASSWORD, USER, Gateway, wait_for

VERSION = "0.21.0"


def vdirsyncer_bin() -> Path:
    cache = Path(os.environ.get("CALSYNC_TEST_CACHE", Path.home() / ".cache" / "calsync-tests"))
    venv = cache / f"vdirsyncer-{VERSION}"
    exe = venv / "bin" / "vdirsyncer"
    if not exe.exists():
        cache.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
        )
        assert made.returncode == 0, f"cannot make a venv for vdirsyncer: {made.stderr}"
        got = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"vdirsyncer=={VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert got.returncode == 0, f"cannot install vdirsyncer {VERSION}: {got.stderr}"
    return exe


CONFIG = """
[general]
status_path = "{tmp}/vds/status/"

[pair cal]
a = "phone"
b = "gateway"
collections = null
conflict_resolution = "a wins"

[storage phone]
type = "filesystem"
path = "{tmp}/vds/phone/"
fileext = ".ics"

[storage gateway]
type = "caldav"
url = "{url}"
username = "{user}"
password = "{password}"
"""


def run(exe: Path, config: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(exe), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        input="y\n",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"vdirsyncer {' '.join(args)} failed:\n{out}"
    return out


def settle(gw: Gateway) -> None:
    time.sleep(0.2)  # let a triggered run get queued
    wait_for(gw.idle, 15, "the daemon's pair runs")


@pytest.mark.peer
def test_vdirsyncer_two_way_with_the_endpoint(gw: Gateway, tmp_path: Path) -> None:
    exe = vdirsyncer_bin()
    phone = tmp_path / "vds" / "phone"
    phone.mkdir(parents=True)
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        CONFIG.format(tmp=tmp_path, url=f"{gw.dav}{USER}/hub/", user=USER, password=PASSWORD)
    )
    laptop = tmp_path / "laptop.ics"
    laptop.write_bytes(event("laptop-1@x", "On the laptop", start="20250302T100000Z"))
    gw.daemon.scheduler.store_changed_threadsafe("laptop", "test")
    wait_for(lambda: list((tmp_path / "hub").iterdir()), 10, "the laptop's event in the hub")
    (phone / "phone-1.ics").write_bytes(event("phone-1@x", "On the phone"))

    run(exe, config, "discover")
    out = run(exe, config, "sync")
    assert "phone-1@x" in out or "Copying" in out
    # vdirsyncer's side got the laptop's event; the hub and the .ics file got the phone's
    assert any("On the laptop" in f.read_text() for f in phone.iterdir())
    settle(gw)
    assert "On the phone" in laptop.read_text()

    # edits on both sides
    f = next(p for p in phone.iterdir() if "phone-1@x" in p.read_text())
    f.write_text(f.read_text().replace("On the phone", "Edited on the phone"))
    laptop.write_text(laptop.read_text().replace("On the laptop", "Edited on the laptop"))
    gw.daemon.scheduler.store_changed_threadsafe("laptop", "test")
    settle(gw)
    run(exe, config, "sync")
    settle(gw)
    assert "Edited on the phone" in laptop.read_text()
    assert any("Edited on the laptop" in p.read_text() for p in phone.iterdir())

    # a deletion on vdirsyncer's side travels to the .ics file
    f.unlink()
    run(exe, config, "sync")
    settle(gw)
    assert "phone-1@x" not in laptop.read_text()
    assert "laptop-1@x" in laptop.read_text()
    saved = [(v.pair, v.reason) for v in gw.history("phone-1@x")]
    assert (f"caldav/{USER}", "remote-delete") in saved

    # nothing changed: a sync changes nothing on either side
    before = {p.name: p.read_bytes() for p in (tmp_path / "hub").iterdir()}
    out = run(exe, config, "sync")
    assert "Copying" not in out and "Deleting" not in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "hub").iterdir()} == before
