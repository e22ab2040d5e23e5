"""Start the daemon at login: a systemd user unit, a launchd agent, a Task Scheduler task.

Pure text generation (tested on every platform's file from any platform) and
where each file goes; ``calsync service`` installs them and tells the service
manager.  Each runs ``<python> -m calsync serve [--config FILE]``, restarts it
when it fails, and stops it with SIGTERM (a graceful shutdown).
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

NAME = "calsync"
LABEL = "org.calsync.gateway"
DESCRIPTION = "calsync calendar gateway (hands-off sync, SyncML for phones)"


@dataclass
class ServiceFile:
    platform: str  # linux | macos | windows
    path: Path  # where it is installed
    text: str  # the file's content (for --print)
    data: bytes  # the exact bytes written (UTF-16 for Task Scheduler)
    enable: list[list[str]]  # commands that register and start it
    disable: list[list[str]]  # commands that stop and unregister it


def current_platform() -> str:
    if sys.platform == "darwin":
        return "macos"
    if sys.platform == "win32":
        return "windows"
    return "linux"


def command(python: str, config: Path | None) -> list[str]:
    args = [python, "-m", "calsync", "serve"]
    if config is not None:
        args += ["--config", str(config)]
    return args


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: quoted when needed; ``%`` doubled (systemd specifiers)."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"'\\;$"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def systemd_unit(args: list[str]) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in args)
    return f"""\
# calsync's gateway daemon, started at login (calsync service install).
[Unit]
Description={DESCRIPTION}
After=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=10
# SIGTERM: the running sync stops at a safe point, nothing is lost
KillSignal=SIGTERM
TimeoutStopSec=120

[Install]
WantedBy=default.target
"""


def launchd_plist(args: list[str], log_file: Path) -> bytes:
    return plistlib.dumps(
        {
            "Label": LABEL,
            "ProgramArguments": args,
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "ThrottleInterval": 10,
            "ProcessType": "Background",
            "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
            "StandardOutPath": str(log_file),
            "StandardErrorPath": str(log_file),
        }
    )


def task_xml(args: list[str], user: str) -> str:
    program, rest = args[0], subprocess.list2cmdline(args[1:])
    return f"""\
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>{escape(DESCRIPTION)}</Description>
    <URI>\\{NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{escape(user)}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{escape(user)}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>10</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(program)}</Command>
      <Arguments>{escape(rest)}</Arguments>
    </Exec>
  </Actions>
</Task>
"""


def _windowless(python: str) -> str:
    """pythonw.exe next to python.exe: no console window at login."""
    p = Path(python)
    candidate = p.with_name("pythonw.exe")
    return str(candidate) if p.name.lower() == "python.exe" and candidate.exists() else python


def service_file(
    platform: str,
    *,
    config: Path | None,
    python: str | None = None,
    home: Path | None = None,
    user: str | None = None,
) -> ServiceFile:
    """The service file for ``platform`` and the commands that (un)register it."""
    python = python or sys.executable
    home = home or Path.home()
    if platform == "linux":
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg else home / ".config"
        path = base / "systemd" / "user" / f"{NAME}.service"
        text = systemd_unit(command(python, config))
        unit = f"{NAME}.service"
        return ServiceFile(
            platform,
            path,
            text,
            text.encode("utf-8"),
            [
                ["systemctl", "--user", "daemon-reload"],
                ["systemctl", "--user", "enable", "--now", unit],
            ],
            [
                ["systemctl", "--user", "disable", "--now", unit],
                ["systemctl", "--user", "daemon-reload"],
            ],
        )
    if platform == "macos":
        path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        log_file = home / "Library" / "Logs" / "calsync.log"
        data = launchd_plist(command(python, config), log_file)
        uid = str(os.getuid()) if hasattr(os, "getuid") else "501"
        return ServiceFile(
            platform,
            path,
            data.decode("utf-8"),
            data,
            [["launchctl", "bootstrap", f"gui/{uid}", str(path)]],
            [["launchctl", "bootout", f"gui/{uid}/{LABEL}"]],
        )
    if platform == "windows":
        user = user or os.environ.get("USERDOMAIN", "") + "\\" + os.environ.get(
            "USERNAME", os.environ.get("USER", "user")
        )
        user = user.lstrip("\\")
        appdata = Path(os.environ.get("APPDATA", str(home / "AppData" / "Roaming")))
        path = appdata / NAME / f"{NAME}-task.xml"
        text = task_xml(command(_windowless(python), config), user)
        return ServiceFile(
            platform,
            path,
            text,
            text.encode("utf-16"),  # with BOM: what schtasks /XML expects
            [
                ["schtasks", "/Create", "/TN", NAME, "/XML", str(path), "/F"],
                ["schtasks", "/Run", "/TN", NAME],
            ],
            [["schtasks", "/End", "/TN", NAME], ["schtasks", "/Delete", "/TN", NAME, "/F"]],
        )
    raise ValueError(f"unknown platform {platform!r} (linux, macos, windows)")
