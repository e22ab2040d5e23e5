"""``calsync service install|uninstall [--print]``: start the gateway at login."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from calsync.cli import EXIT_FAILED, EXIT_OK
from calsync.cli._common import config_option, config_path

PLATFORMS = ("linux", "macos", "windows")


def _config() -> Path | None:
    """The configuration the service should run: the one named now, if it exists.

    None lets the service find it the usual way (or run the embedded default).
    """
    ctx = click.get_current_context()
    path = config_path(ctx) or (
        Path(os.environ["CALSYNC_CONFIG"]) if os.environ.get("CALSYNC_CONFIG") else None
    )
    if path is None:
        return None
    if not path.exists():
        click.echo(f"calsync: warning: {path} does not exist; not passing it", err=True)
        return None
    return path.resolve()


def _file(platform: str | None):  # type: ignore[no-untyped-def]
    from calsync.gateway.service_files import current_platform, service_file

    return service_file(platform or current_platform(), config=_config())


def _run(commands: list[list[str]], *, strict: bool) -> bool:
    ok = True
    for cmd in commands:
        if shutil.which(cmd[0]) is None:
            click.echo(f"calsync: {cmd[0]} not found; run yourself: {' '.join(cmd)}", err=True)
            ok = False
            if strict:
                return False
            continue
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            click.echo(
                f"calsync: `{' '.join(cmd)}` failed: {why[-1] if why else done.returncode}",
                err=True,
            )
            ok = False
            if strict:
                return False
    return ok


@click.group()
def service() -> None:
    """Start the gateway (`calsync serve`) at login, as a user service.

    \b
    Linux: a systemd user unit (~/.config/systemd/user/calsync.service);
    macOS: a launchd agent (~/Library/LaunchAgents/org.calsync.gateway.plist);
    Windows: a Task Scheduler task run at logon.
    --print shows the file and installs nothing.
    """


_platform = click.option(
    "--platform",
    type=click.Choice(PLATFORMS),
    help="whose service file (default: this machine's)",
)


@service.command()
@click.option("--print", "just_print", is_flag=True, help="show the file; install nothing")
@_platform
@config_option
def install(just_print: bool, platform: str | None) -> None:
    """Install the service file and start the gateway now and at every login."""
    sf = _file(platform)
    if just_print:
        click.echo(f"# {sf.path}")
        click.echo(sf.text, nl=False)
        return
    sf.path.parent.mkdir(parents=True, exist_ok=True)
    sf.path.write_bytes(sf.data)
    click.echo(f"wrote {sf.path}")
    if not _run(sf.enable, strict=True):
        click.echo(
            "calsync: the file is installed but the service manager was not told; "
            "run the command(s) above, or log out and in again",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    click.echo("the gateway runs now and at every login (`calsync status` shows it)")
    sys.exit(EXIT_OK)


@service.command()
@click.option("--print", "just_print", is_flag=True, help="show what would be removed")
@_platform
@config_option
def uninstall(just_print: bool, platform: str | None) -> None:
    """Stop the service and remove its file."""
    sf = _file(platform)
    if just_print:
        click.echo(f"would stop the service and remove {sf.path}")
        for cmd in sf.disable:
            click.echo("  " + " ".join(cmd))
        return
    ok = _run(sf.disable, strict=False) if sf.path.exists() else True
    try:
        sf.path.unlink()
        click.echo(f"removed {sf.path}")
    except FileNotFoundError:
        click.echo(f"{sf.path} was not installed")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)
