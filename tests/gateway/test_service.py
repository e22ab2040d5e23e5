"""Service files: valid for systemd (systemd-analyze), launchd (plistlib), Task Scheduler (XML)."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

from defusedxml import ElementTree

from calsync.gateway.service_files import LABEL, service_file, systemd_unit
from tests.gateway.helpers import env_for

TASK_NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: apt-get install systemd (scripts/test.sh does)"
    return subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # a config path with a space and a % (systemd specifiers) must survive quoting
    config = tmp_path / "my cal" / "100%.toml"
    sf = service_file("linux", config=config, home=tmp_path)
    assert sf.path.name == "calsync.service" and "systemd/user" in str(sf.path)
    unit = tmp_path / "calsync.service"
    unit.write_text(sf.text)
    done = verify(unit)
    assert done.returncode == 0, done.stderr
    assert "ExecStart=" in sf.text and '"' + str(config).replace("%", "%%") + '"' in sf.text
    assert f"{sys.executable} -m calsync serve --config" in sf.text
    assert "WantedBy=default.target" in sf.text and "Restart=on-failure" in sf.text
    # the check is real: a broken unit fails it
    bad = tmp_path / "broken.service"
    bad.write_text(systemd_unit(["relative/python3", "-m", "calsync"]))
    assert verify(bad).returncode != 0


def test_launchd_plist_parses(tmp_path: Path) -> None:
    sf = service_file("macos", config=None, python="/usr/local/bin/python3", home=tmp_path)
    assert sf.path == tmp_path / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    plist = plistlib.loads(sf.data)
    assert plist["Label"] == LABEL
    assert plist["ProgramArguments"] == ["/usr/local/bin/python3", "-m", "calsync", "serve"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"].endswith("calsync.log")
    assert sf.enable[0][:2] == ["launchctl", "bootstrap"]


def test_task_scheduler_xml_is_well_formed(tmp_path: Path) -> None:
    sf = service_file(
        "windows",
        config=Path("C:/Users/Zoë/cal & co/config.toml"),
        python="C:/Python312/python.exe",
        home=tmp_path,
        user="PC\\zoe",
    )
    assert sf.data.startswith(b"\xff\xfe"), "UTF-16 with a BOM, as schtasks /XML wants"
    root = ElementTree.fromstring(sf.data)
    assert root.tag == f"{TASK_NS}Task"
    trigger = root.find(f"{TASK_NS}Triggers/{TASK_NS}LogonTrigger/{TASK_NS}UserId")
    assert trigger is not None and trigger.text == "PC\\zoe"
    exec_ = root.find(f"{TASK_NS}Actions/{TASK_NS}Exec")
    assert exec_ is not None
    assert exec_.findtext(f"{TASK_NS}Command") == "C:/Python312/python.exe"
    assert (
        exec_.findtext(f"{TASK_NS}Arguments")
        == '-m calsync serve --config "C:/Users/Zoë/cal & co/config.toml"'
    )
    assert root.findtext(f"{TASK_NS}Settings/{TASK_NS}ExecutionTimeLimit") == "PT0S"
    assert sf.enable[0][:2] == ["schtasks", "/Create"]


def test_service_command_prints_installs_and_uninstalls(tmp_path: Path) -> None:
    env = env_for(tmp_path, None)

    def calsync(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "calsync", "service", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    unit = tmp_path / "xdg-config" / "systemd" / "user" / "calsync.service"
    shown = calsync("install", "--print", "--platform", "linux")
    assert shown.returncode == 0 and f"# {unit}" in shown.stdout
    assert "ExecStart=" in shown.stdout and not unit.exists()
    mac = calsync("install", "--print", "--platform", "macos")
    assert plistlib.loads(mac.stdout.split("\n", 1)[1].encode())["Label"] == LABEL
    # install without a service manager: the file is written, the user is told what to run
    empty = tmp_path / "empty-path"
    empty.mkdir()
    out = calsync("install", "--platform", "linux", PATH=str(empty))
    assert out.returncode == 1 and "systemctl not found" in out.stderr
    assert unit.is_file() and "ExecStart=" in unit.read_text()
    assert verify(unit).returncode == 0
    gone = calsync("uninstall", "--platform", "linux", PATH=str(empty))
    assert not unit.exists() and f"removed {unit}" in gone.stdout
