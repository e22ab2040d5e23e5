"""Calendar data is the user's alone: state files 0600 in 0700 directories, and a
configuration holding passwords that others can read is refused (issue #19, finding 9).

Every process here runs with umask 022, as a login shell has: what the files
end up as is what calsync made them, not what the test's umask allowed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import event
from tests.gateway.helpers import DEVICES, PASSWORD, DaemonProcess, env_for, wait_for, write_config


def calsync(tmp: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        env=env_for(tmp, config),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
        umask=0o022,
    )


def loose(root: Path) -> list[str]:
    """Everything under ``root`` (and itself) that another user could read or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


def edit_and_delete(tmp: Path, config: Path) -> None:
    """Syncs that add, overwrite and delete: status, history and locks all get written."""
    (tmp / "dir" / "e1.ics").write_bytes(event("e1", "First"))
    (tmp / "dir" / "e2.ics").write_bytes(event("e2", "Second"))
    assert calsync(tmp, config, "sync").returncode == 0
    (tmp / "dir" / "e1.ics").write_bytes(event("e1", "First, edited"))
    (tmp / "dir" / "e2.ics").unlink()
    out = calsync(tmp, config, "sync")
    assert out.returncode == 0, out.stderr


def test_a_one_shot_sync_creates_its_state_private(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    edit_and_delete(tmp_path, config)
    state = tmp_path / "state"
    assert (state / "history.sqlite").exists() and list((state / "pairs").glob("*.sqlite"))
    assert loose(state) == []


def test_sqlite_side_files_follow_the_database(tmp_path: Path) -> None:
    """-wal and -shm exist while a database is open: they are private too."""
    from calsync.sync.history import History
    from calsync.sync.status import StatusDB

    old = os.umask(0o022)
    try:
        status = StatusDB(tmp_path / "state" / "pairs" / "p.sqlite")
        history = History(tmp_path / "state" / "history.sqlite")
        history.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        history.db.execute("INSERT INTO probe VALUES (1)")
        status.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        status.db.execute("INSERT INTO probe VALUES (1)")
        side = [p.name for p in (tmp_path / "state").rglob("*-wal")]
        assert len(side) == 2, side
        assert loose(tmp_path / "state") == []
        history.close()
        status.close()
    finally:
        os.umask(old)


def test_the_daemon_keeps_every_state_file_private(tmp_path: Path) -> None:
    """history, pairs, syncml.sqlite, davserver.sqlite, daemon.json and their -wal/-shm."""
    config = write_config(tmp_path, DEVICES)
    old = os.umask(0o022)  # the daemon inherits it
    try:
        d = DaemonProcess(tmp_path, config, "--no-watch")
    finally:
        os.umask(old)
    with d:
        wait_for(lambda: (tmp_path / "file.ics").exists() and d.idle("p"), 30, "the first sync")
        r = httpx.request(
            "PROPFIND",
            d.url + "/dav/alice/dir/",
            auth=("alice", PASSWORD),
            headers={"Depth": "1"},
            timeout=60,
        )
        assert r.status_code == 207, r.text
        state = tmp_path / "state"
        for name in ("davserver.sqlite", "daemon.json"):
            assert (state / name).exists(), name
        assert list(state.glob("*-wal")), "the daemon holds its databases open"
        assert loose(state) == []


def test_existing_loose_state_is_closed_at_start(tmp_path: Path) -> None:
    """State left 0644/0755 by an older calsync: serve fixes all of it, a one-shot
    sync at least closes the state directory itself (one chmod)."""
    config = write_config(tmp_path)
    edit_and_delete(tmp_path, config)
    state = tmp_path / "state"
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert calsync(tmp_path, config, "sync").returncode == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    with DaemonProcess(tmp_path, config, "--no-watch") as d:
        wait_for(lambda: d.idle("p"), 30, "the daemon to be idle")
        assert loose(state) == []
        assert "state.private" in d.logs()  # it says what it fixed


# -- a configuration holding passwords -------------------------------------------------


def refusal(out: subprocess.CompletedProcess[str], config: Path, *, then: str = "") -> str:
    """The one line naming the file and the fix (``then``: a line that follows it)."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines[1:] == ([then] if then else []), out.stderr
    assert str(config) in lines[0] and f"chmod 600 {config}" in lines[0], lines[0]
    assert PASSWORD not in out.stderr + out.stdout
    return lines[0]


def test_a_readable_config_with_passwords_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, DEVICES, mode=0o644)
    # the quick path of a plain `calsync sync`, and click's
    for args in (["sync"], ["sync", "--json", "p"], ["--verbose", "sync"], ["serve"]):
        line = refusal(calsync(tmp_path, config, *args), config)
        assert "--insecure-config" in line
    assert not (tmp_path / "file.ics").exists()
    assert not (tmp_path / "state").exists()
    # the same for a group-readable file, and for every command that reads it
    config.chmod(0o640)
    for args in (["status"], ["history"], ["conflicts"]):
        refusal(calsync(tmp_path, config, *args), config)
    refusal(calsync(tmp_path, config, "check"), config, then="1 problem(s) found")
    # the fix it names works; a readable file without passwords is fine too
    config.chmod(0o600)
    assert calsync(tmp_path, config, "check").returncode == 0
    assert calsync(tmp_path, config, "sync").returncode == 0
    plain = write_config(tmp_path, mode=0o644)
    out = calsync(tmp_path, plain, "check")
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr


def test_insecure_config_lets_it_run_with_a_warning(tmp_path: Path) -> None:
    config = write_config(tmp_path, DEVICES, mode=0o644)
    for args in (["--insecure-config", "sync"], ["sync", "--insecure-config", "p"]):
        out = calsync(tmp_path, config, *args)
        assert out.returncode == 0, out.stderr
        assert "warning" in out.stderr and f"chmod 600 {config}" in out.stderr
    out = calsync(tmp_path, config, "check", "--insecure-config")
    assert out.returncode == 0 and "warning" in out.stderr
    d = DaemonProcess(tmp_path, config, "--no-watch", "--insecure-config")
    with d:
        assert d.status()["pairs"]["p"]


def test_a_reload_keeps_the_rule(tmp_path: Path) -> None:
    """SIGHUP with a configuration that became readable: refused, the daemon runs on."""
    import signal

    config = write_config(tmp_path, DEVICES)
    with DaemonProcess(tmp_path, config, "--no-watch") as d:
        config.chmod(0o644)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "daemon.reload_refused" in d.logs(), 30, "the reload to be refused")
        assert "chmod 600" in d.logs()
        assert d.proc.poll() is None and d.status()["pairs"]["p"]
