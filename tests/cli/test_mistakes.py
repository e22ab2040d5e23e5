"""Real-world mistakes on the command line (issue 20, item 11).

A one-shot sync says each thing once; a failing ``password_command`` says why;
``-v``/``-q`` work after the command too; a pair named twice runs once;
``status`` exits 3 after a guard, like ``sync``; and every command that
reads the configuration understands the embedded default.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import calsync
from tests.conftest import event
from tests.gateway.helpers import env_for

PAIR = (
    '[stores.a]\ntype = "vdir"\npath = "a"\n'
    '[stores.b]\ntype = "vdir"\npath = "b"\n'
    '[pairs.main]\na = "a"\nb = "b"\n'
)


def two_vdirs(tmp: Path, items: int = 4) -> None:
    (tmp / "config.toml").write_text(PAIR)
    for side in ("a", "b"):
        (tmp / side).mkdir()
    for i in range(items):
        (tmp / "a" / f"e{i}.ics").write_bytes(event(f"e{i}"))


def test_each_error_and_guard_message_is_printed_once(tmp_path: Path) -> None:
    two_vdirs(tmp_path)
    (tmp_path / "a" / "bad.ics").write_bytes(  # one file, two items: an item error
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bad\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:worse\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    out = calsync(tmp_path, "sync")
    assert out.returncode == 1
    both = out.stdout + out.stderr
    assert both.count("items with different UIDs") == 1, both
    for f in (tmp_path / "a").glob("e*.ics"):
        f.unlink()
    out = calsync(tmp_path, "sync")
    assert out.returncode == 3
    both = out.stdout + out.stderr
    assert both.count("more than max_delete") == 1, both
    assert "--force" in out.stdout
    # --json says it in the object; stderr does not repeat it
    out = calsync(tmp_path, "sync", "--json")
    assert out.returncode == 3
    assert "max_delete" in json.loads(out.stdout)["pairs"]["main"]["stopped"]
    assert "max_delete" not in out.stderr
    # nor with -vv (the engine logs more then, but not this again)
    out = calsync(tmp_path, "sync", "-vv")
    assert out.returncode == 3
    assert (out.stdout + out.stderr).count("more than max_delete") == 1


def caldav_with_password_command(tmp: Path, command: str) -> None:
    (tmp / "a").mkdir()
    (tmp / "config.toml").write_text(
        '[stores.a]\ntype = "vdir"\npath = "a"\n'
        '[stores.dav]\ntype = "caldav"\nurl = "http://127.0.0.1:9/dav/"\nusername = "me"\n'
        f"password_command = {json.dumps(command)}\n"
        '[pairs.main]\na = "a"\nb = "dav"\n'
    )


def test_a_failing_password_command_says_its_exit_status_and_stderr(tmp_path: Path) -> None:
    caldav_with_password_command(
        tmp_path, "echo hunter2; echo 'gpg: decryption failed: No secret key' >&2; exit 2"
    )
    out = calsync(tmp_path, "sync")
    assert out.returncode == 1, out
    both = out.stdout + out.stderr
    assert "password_command failed" in both
    assert "exit status 2" in both and "gpg: decryption failed: No secret key" in both
    assert "CalledProcessError" not in both
    assert "hunter2" not in both


def test_a_password_command_that_echoes_the_password_to_stderr_is_not_shown(
    tmp_path: Path,
) -> None:
    caldav_with_password_command(tmp_path, "echo hunter2; echo 'bad: hunter2' >&2; exit 1")
    out = calsync(tmp_path, "sync")
    both = out.stdout + out.stderr
    assert "exit status 1" in both and "bad: " in both
    assert "hunter2" not in both


def test_a_password_command_that_cannot_run_says_so(tmp_path: Path) -> None:
    caldav_with_password_command(tmp_path, "")
    text = (tmp_path / "config.toml").read_text()
    (tmp_path / "config.toml").write_text(
        text.replace('password_command = ""', 'password_command = ["/nonexistent/pass"]')
    )
    out = calsync(tmp_path, "sync")
    both = out.stdout + out.stderr
    assert "password_command failed" in both and "/nonexistent/pass" in both
    assert "FileNotFoundError" not in both


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "-v"],
        ["sync", "--verbose"],
        ["sync", "-q"],
        ["-q", "sync"],
        ["status", "-v"],
        ["check", "-q"],
        ["conflicts", "-v"],
    ],
    ids=" ".join,
)
def test_verbosity_is_accepted_after_the_command(tmp_path: Path, args: list[str]) -> None:
    two_vdirs(tmp_path)
    out = calsync(tmp_path, *args)
    assert out.returncode == 0, out
    if args == ["sync", "-v"]:
        assert "INFO calsync" in out.stderr


def test_sync_v_and_v_sync_log_the_same(tmp_path: Path) -> None:
    two_vdirs(tmp_path, items=1)
    before = calsync(tmp_path, "-v", "sync")
    (tmp_path / "a" / "e1.ics").write_bytes(event("e1"))
    after = calsync(tmp_path, "sync", "-v")
    assert before.returncode == after.returncode == 0
    assert "INFO calsync.sync: pair main: added e0 to b" in before.stderr
    assert "INFO calsync.sync: pair main: added e1 to b" in after.stderr
    (tmp_path / "a" / "e2.ics").write_bytes(event("e2"))
    quiet = calsync(tmp_path, "-v", "sync", "-q")  # -v minus -q: the default
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr
    assert "b: 1 added" in quiet.stdout


def test_a_pair_named_twice_runs_once(tmp_path: Path) -> None:
    two_vdirs(tmp_path)
    out = calsync(tmp_path, "sync", "main", "main")
    assert out.returncode == 0, out
    assert out.stdout.count("main:") == 1, out.stdout
    assert "b: 4 added" in out.stdout


def test_status_exits_3_after_a_guard_stopped_a_pair(tmp_path: Path) -> None:
    two_vdirs(tmp_path)
    assert calsync(tmp_path, "sync").returncode == 0
    assert calsync(tmp_path, "status").returncode == 0
    for f in (tmp_path / "a").iterdir():
        f.unlink()
    assert calsync(tmp_path, "sync").returncode == 3
    out = calsync(tmp_path, "status")
    assert out.returncode == 3, out
    assert "stopped:" in out.stdout
    out = calsync(tmp_path, "status", "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["pairs"]["main"]["last_result"]["guard"] is True
    assert calsync(tmp_path, "sync", "--force").returncode == 0
    assert calsync(tmp_path, "status").returncode == 0


def test_every_command_understands_the_embedded_default(tmp_path: Path) -> None:
    env = {**env_for(tmp_path, None), "CALSYNC_NO_DAEMON": "1"}
    # nothing set up: all of them say the same thing
    for command in ("check", "status", "sync"):
        out = calsync(tmp_path, command, env=env)
        assert out.returncode == 2, (command, out)
        assert "no configuration file" in out.stderr and "calsync" in out.stderr
    # what a first `calsync` (the gateway) sets up, with no Thunderbird on this machine
    setup = "from calsync.gateway.embedded import embedded; embedded()"
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, timeout=60)
    shown = tmp_path / "data" / "embedded-config.toml"
    assert shown.is_file()
    outputs = {}
    for command in ("check", "status", "sync", "history", "conflicts"):
        out = calsync(tmp_path, command, env=env)
        outputs[command] = out
        assert out.returncode == 0, (command, out)
        both = out.stdout + out.stderr
        assert both.count("embedded default") == 1, (command, both)
        assert str(shown) in both, (command, both)
    assert "OK (1 stores, 0 pairs)" in outputs["check"].stdout
    assert "no pairs" in outputs["status"].stdout
    assert "no pairs" in outputs["sync"].stdout
    out = calsync(tmp_path, "sync", "--json", env=env)
    assert out.returncode == 0 and json.loads(out.stdout) == {"pairs": {}}
    # the embedded default's hub is its own to create: a removed hub is no config error
    (tmp_path / "data" / "hub").rmdir()
    assert calsync(tmp_path, "check", env=env).returncode == 0
