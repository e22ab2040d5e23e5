"""SyncEvolution's CalDAV backend against the endpoint (a local sync: files <-> CalDAV).

SyncEvolution 2.0 (Debian's package) discovers the calendars under /dav/,
then syncs a folder of .ics files with the hub two-way; the daemon carries
the changes on to the .ics store.  Its state lives in a throwaway HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SHARED, event
from tests.davserver.helpers import PASSWORD, USER, Gateway, wait_for


def syncevolution(home: Path, *args: str) -> str:
    exe = shutil.which("syncevolution")
    if exe is None:
        installed = subprocess.run(
            [str(SHARED / "peers" / "install.sh"), "syncevolution"], capture_output=True, text=True
        )
        assert installed.returncode == 0, f"cannot install SyncEvolution: {installed.stderr}"
        exe = shutil.which("syncevolution")
    assert exe, "SyncEvolution is not installed"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    env.pop("DISPLAY", None)
    proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"syncevolution {' '.join(args)} failed:\n{out}"
    return out


@pytest.mark.peer
def test_syncevolution_caldav_backend_two_way(gw: Gateway, tmp_path: Path) -> None:
    home = tmp_path / "se-home"
    items = tmp_path / "se-items" / "calendar"
    items.mkdir(parents=True)
    (items / "one.ics").write_bytes(event("se-1@syncevolution", "From SyncEvolution"))
    syncevolution(
        home,
        "--configure",
        "--template",
        "webdav",
        "keyring=no",
        f"syncURL={gw.dav}",
        f"username={USER}",
        f"password={PASSWORD}",
        "target-config@dav",
    )
    # its discovery finds the user's calendars through the endpoint
    syncevolution(home, "--configure", "backend=caldav", "target-config@dav", "calendar")
    found = syncevolution(home, "--print-databases", "target-config@dav", "calendar")
    assert f"hub ({gw.dav}{USER}/hub/)" in found and f"laptop ({gw.dav}{USER}/laptop/)" in found
    syncevolution(
        home,
        "--configure",
        "backend=caldav",
        f"database={gw.dav}{USER}/hub/",
        "target-config@dav",
        "calendar",
    )
    syncevolution(
        home,
        "--configure",
        "--template",
        "SyncEvolution_Client",
        "keyring=no",
        "syncURL=local://@dav",
        "username=",
        "password=",
        "phone",
    )
    syncevolution(
        home,
        "--configure",
        "backend=file",
        f"database=file://{items}",
        "databaseFormat=text/calendar",
        "phone",
        "calendar",
    )
    syncevolution(home, "--configure", "sync=none", "phone", "addressbook", "memo", "todo")

    out = syncevolution(home, "phone", "calendar")
    assert "synchronization completed successfully" in out
    assert (tmp_path / "hub" / "se-1@syncevolution.ics").exists()
    laptop = tmp_path / "laptop.ics"
    wait_for(lambda: laptop.exists() and "From SyncEvolution" in laptop.read_text(), 10, "pair")

    # both sides change; one incremental two-way sync carries both
    (tmp_path / "hub" / "srv-1@hub.ics").write_bytes(event("srv-1@hub", "Made on the server"))
    f = items / "one.ics"
    f.write_text(f.read_text().replace("From SyncEvolution", "Edited in SyncEvolution"))
    out = syncevolution(home, "phone", "calendar")
    assert "two-way" in out
    assert any("Made on the server" in p.read_text() for p in items.iterdir())
    assert "Edited in SyncEvolution" in (tmp_path / "hub" / "se-1@syncevolution.ics").read_text()
    wait_for(lambda: "Edited in SyncEvolution" in laptop.read_text(), 10, "the edit to travel")
    assert f"caldav/{USER}" in {v.pair for v in gw.history("se-1@syncevolution")}
