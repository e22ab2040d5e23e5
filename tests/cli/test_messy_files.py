"""End to end (`calsync` as a process): files that are not calendars, links,
devices and FIFOs, and the duplicates a file holds (#20 items 2, 7 and 10).

The device nodes are made with mknod in the test's directory (a null device:
major 1, minor 3), never the real /dev/null.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.cli.test_cli import CONFIG as CLI_CONFIG
from tests.conftest import event

# test_cli's pair, with the laptop's store type and path to fill in
CONFIG = CLI_CONFIG.replace('type = "ics"\npath = "laptop.ics"', 'type = "{kind}"\npath = "{path}"')
assert "{kind}" in CONFIG


def calsync(
    tmp: Path, *args: str, kind: str = "ics", path: str = "laptop.ics"
) -> subprocess.CompletedProcess[str]:
    (tmp / "config.toml").write_text(CONFIG.format(kind=kind, path=path))
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        cwd=tmp,
        env={**os.environ, "CALSYNC_CONFIG": str(tmp / "config.toml")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def phone_item(tmp: Path) -> None:
    (tmp / "phone").mkdir(exist_ok=True)
    (tmp / "phone" / "p.ics").write_bytes(event("p", "From the phone"))


def null_device(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root (the FIFO cases run everywhere)")
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.mark.parametrize(("kind", "name"), [("ics", "laptop.ics"), ("vcs", "laptop.vcs")])
def test_sync_refuses_a_file_that_is_not_a_calendar(tmp_path: Path, kind: str, name: str) -> None:
    (tmp_path / name).write_bytes(b"hello world\n")
    phone_item(tmp_path)
    out = calsync(tmp_path, "sync", "--json", kind=kind, path=name)
    assert out.returncode == 1, out.stderr
    stopped = json.loads(out.stdout)["pairs"]["main"]["stopped"]
    assert f"{tmp_path / name} is not a calendar file: it begins with 'hello world" in stopped
    assert (tmp_path / name).read_bytes() == b"hello world\n"
    plain = calsync(tmp_path, "sync", kind=kind, path=name)
    assert plain.returncode == 1 and "is not a calendar file" in plain.stdout + plain.stderr
    assert (tmp_path / name).read_bytes() == b"hello world\n"
    assert os.listdir(tmp_path / "phone") == ["p.ics"]


def test_sync_through_a_link_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "cloud").mkdir()
    target = tmp_path / "cloud" / "calendar.ics"
    target.write_bytes(b"")
    (tmp_path / "laptop.ics").symlink_to(target)
    phone_item(tmp_path)
    out = calsync(tmp_path, "sync")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "laptop.ics").is_symlink()
    assert b"From the phone" in target.read_bytes()


@pytest.mark.parametrize("kind", ["fifo", "char-device"])
def test_sync_refuses_a_device_or_fifo_and_leaves_it(tmp_path: Path, kind: str) -> None:
    node = tmp_path / "laptop.ics"
    if kind == "fifo":
        os.mkfifo(node)
    else:
        null_device(node)
    ino = os.lstat(node).st_ino
    phone_item(tmp_path)
    out = calsync(tmp_path, "sync", "--json")
    assert out.returncode == 1, out.stderr
    words = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert f"is {words}, not a regular file" in json.loads(out.stdout)["pairs"]["main"]["stopped"]
    st = os.lstat(node)
    assert st.st_ino == ino and not stat.S_ISREG(st.st_mode)


def test_export_writes_into_a_fifo_and_a_device(tmp_path: Path) -> None:
    phone_item(tmp_path)
    pipe = tmp_path / "pipe.ics"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    out = calsync(tmp_path, "export", "phone", str(pipe))
    reader.join(30)
    assert out.returncode == 0, out.stderr
    assert b"From the phone" in got[0] and stat.S_ISFIFO(os.lstat(pipe).st_mode)
    null = tmp_path / "null.ics"
    null_device(null)
    out = calsync(tmp_path, "export", "phone", str(null))
    assert out.returncode == 0, out.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_convert_through_a_link_and_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "in.ics").write_bytes(event("c", "Converted"))
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "real.vcs"
    target.write_bytes(b"old")
    (tmp_path / "link.vcs").symlink_to(target)
    out = calsync(tmp_path, "convert", "--to", "vcal", "in.ics", "link.vcs")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "link.vcs").is_symlink() and b"SUMMARY:Converted" in target.read_bytes()
    (tmp_path / "adir").mkdir()
    out = calsync(tmp_path, "convert", "--to", "vcal", "in.ics", "adir")
    assert out.returncode == 1
    assert "is a directory, not a regular file" in out.stderr
    assert os.listdir(tmp_path / "adir") == []


def held_twice(*copies: str) -> bytes:
    """A calendar holding UID dup once per copy (each: its lines after the UID)."""
    events = "".join(f"BEGIN:VEVENT\r\nUID:dup\r\n{c}END:VEVENT\r\n" for c in copies)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{events}END:VCALENDAR\r\n".encode()


def test_history_shows_the_duplicate_that_lost(tmp_path: Path) -> None:
    (tmp_path / "laptop.ics").write_bytes(
        held_twice(
            "SEQUENCE:3\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Rescheduled\r\n",
            "SEQUENCE:1\r\nDTSTART:20250101T090000Z\r\nSUMMARY:First plan\r\n",
        )
    )
    (tmp_path / "phone").mkdir()
    out = calsync(tmp_path, "sync")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the file holds it 2 times" in out.stderr
    (synced,) = (tmp_path / "phone").iterdir()
    assert b"SUMMARY:Rescheduled" in synced.read_bytes()
    listed = calsync(tmp_path, "history", "dup")
    assert listed.returncode == 0 and "duplicate" in listed.stdout and "laptop" in listed.stdout
    saved = json.loads(calsync(tmp_path, "history", "dup", "--json").stdout)["history"]
    assert [v["reason"] for v in saved] == ["duplicate"]
    assert "SUMMARY:First plan" in saved[0]["content"]


def test_import_keeps_the_duplicate_that_lost(tmp_path: Path) -> None:
    (tmp_path / "laptop.ics").write_bytes(b"")
    (tmp_path / "phone").mkdir()
    (tmp_path / "export.ics").write_bytes(
        held_twice("SEQUENCE:1\r\nSUMMARY:Old\r\n", "SEQUENCE:2\r\nSUMMARY:New\r\n")
    )
    out = calsync(tmp_path, "import", "export.ics", "--into", "phone")
    assert out.returncode == 0, out.stderr
    assert "lower SEQUENCE (1 < 2)" in out.stderr
    (imported,) = (tmp_path / "phone").iterdir()
    assert b"SUMMARY:New" in imported.read_bytes() and b"SUMMARY:Old" not in imported.read_bytes()
    saved = json.loads(calsync(tmp_path, "history", "dup", "--json").stdout)["history"]
    assert [(v["reason"], v["store"], v["pair"]) for v in saved] == [
        ("duplicate", "phone", "import")
    ]
    assert "SUMMARY:Old" in saved[0]["content"]


def test_convert_says_what_it_repaired_and_left_out(tmp_path: Path) -> None:
    (tmp_path / "in.ics").write_bytes(
        held_twice(
            "SEQUENCE:1\r\nSUMMARY:Old\r\nDTSTART:20250101T1000000Z\r\n",
            "SEQUENCE:2\r\nSUMMARY:New\r\nDTSTART:20250101T1100000Z\r\n",
        )
    )
    out = calsync(tmp_path, "convert", "--to", "vcal", "in.ics", "out.vcs")
    assert out.returncode == 0, out.stderr
    assert "in.ics: item dup: a copy left out: the master at line 3: lower SEQUENCE" in out.stderr
    assert "in.ics: item dup: repaired: line 13: DTSTART had a seventh time digit" in out.stderr
    converted = (tmp_path / "out.vcs").read_bytes()
    assert b"SUMMARY:New" in converted and b"DTSTART:20250101T110000Z" in converted
