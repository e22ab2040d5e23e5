"""``calsync discover``: the calendars of a CalDAV account, a configured store or a
folder of vdirs, or (without an argument) Thunderbird's on this machine.

The password of an account given by URL comes from ``--password-command``,
else ``$CALSYNC_PASSWORD``, else a prompt (never an option's value: it would
show in the process list and the shell's history); it is never printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from calsync.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from calsync.cli._common import config_option, fail, load_config, print_json
from calsync.stores import Collection, Store, StoreContext, StoreError


@click.command()
@click.argument("target", required=False)
@click.option("--username", help="user name on the CalDAV server (TARGET a URL)")
@click.option(
    "--password-command",
    help="a command whose first line of output is the password (else $CALSYNC_PASSWORD, "
    "else a prompt)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@config_option
@click.pass_context
def discover(
    ctx: click.Context,
    target: str | None,
    username: str | None,
    password_command: str | None,
    as_json: bool,
) -> None:
    """List calendars: of a CalDAV account (TARGET an http(s) URL: the server,
    principal or calendar home), of a configured store (TARGET its name: an
    account or a folder of vdirs), of a folder of vdirs (TARGET a directory),
    or, without TARGET, Thunderbird's on this machine.

    For an account or folder: each calendar's name (what a pair's
    `collections` matches), display name, colour, component types, href and
    whether it is read-only; --json prints {"target", "collections": [...]}.

    Without TARGET: looks where Thunderbird keeps its profiles on this platform
    (Linux, incl. Flatpak and Snap; Windows; macOS) and prints a config block.
    With --json prints one object with "installations", "profiles" (each with
    its "calendars") and "config".  Exits 1 when nothing was found.
    """
    if target is not None:
        store = _store_for(ctx, target, username, password_command)
        try:
            found = store.collections()
        except StoreError as e:
            fail(str(e), EXIT_FAILED)
        finally:
            store.close()
            import shutil

            shutil.rmtree(store.ctx.cache_dir, ignore_errors=True)
        _print_collections(target, found, as_json)
        sys.exit(EXIT_OK if found else EXIT_FAILED)
    from calsync.stores.thunderbird.discovery import discover as find

    data = find()
    found = [p for p in data["profiles"] if p["kind"] != "sunbird"]
    if as_json:
        print_json(data)
        sys.exit(EXIT_OK if found else EXIT_FAILED)
    if not data["installations"]:
        click.echo("No Thunderbird installation found (no profiles.ini in the usual places).")
        sys.exit(EXIT_FAILED)
    for inst in data["installations"]:
        click.echo(f"{inst['kind']} installation: {inst['path']}")
    for p in data["profiles"]:
        flags = [
            f
            for f, on in (
                ("default", p["default"]),
                ("running", p["running"]),
                ("missing", not p["exists"]),
                ("legacy storage.sdb", p["legacy_storage_sdb"]),
            )
            if on
        ]
        click.echo(
            f"\nprofile {p['name']!r}: {p['path']}" + (f" [{', '.join(flags)}]" if flags else "")
        )
        for cal in p["calendars"]:
            items = f", {cal['items']} items" if cal.get("items") is not None else ""
            state = " (disabled)" if cal["disabled"] else ""
            click.echo(f"  {cal['name']!r}: {cal['type']}{state}{items}, id {cal['id']}")
    click.echo("\n# --- paste into your calsync config (`calsync --help` says where) ---")
    click.echo(data["config"], nl=False)
    sys.exit(EXIT_OK if found else EXIT_FAILED)


def _store_for(
    ctx: click.Context, target: str, username: str | None, password_command: str | None
) -> Store:
    """The root store TARGET names (a URL, a configured store, a directory)."""
    import tempfile

    scratch = StoreContext(cache_dir=Path(tempfile.mkdtemp(prefix="calsync-discover-")))
    if target.startswith(("http://", "https://")):
        from calsync.stores.caldav.store import CalDAVStore

        section: dict[str, Any] = {"url": target}
        if username:
            section["username"] = username
            if password_command:
                section["password_command"] = password_command
            elif os.environ.get("CALSYNC_PASSWORD") is not None:
                section["password"] = os.environ["CALSYNC_PASSWORD"]
            else:
                section["password"] = click.prompt(
                    f"password of {username}", hide_input=True, err=True
                )
        try:
            return CalDAVStore.from_config("discover", section, scratch)
        except StoreError as e:
            fail(str(e))
    cfg = load_config(ctx) if _has_config(ctx) else None
    if cfg is not None and target in cfg.stores:
        section = {k: v for k, v in cfg.stores[target].items() if k != "calendar"}
        from calsync.stores import store_class

        try:
            return store_class(section["type"]).from_config(
                target, {k: v for k, v in section.items() if k != "type"}, scratch
            )
        except StoreError as e:
            fail(str(e))
    if Path(target).is_dir():
        from calsync.stores.vdir import VdirStore

        return VdirStore("discover", scratch, Path(target), create=False)
    known = ", ".join(sorted(cfg.stores)) if cfg is not None else "no configuration"
    fail(
        f"{target!r} is not an http(s) URL, a configured store ({known}) or a directory",
        EXIT_USAGE,
    )


def _has_config(ctx: click.Context) -> bool:
    from calsync.cli._common import config_path
    from calsync.config import default_config_path

    given = config_path(ctx)
    return given is not None or default_config_path().is_file()


def _print_collections(target: str, found: list[Collection], as_json: bool) -> None:
    if as_json:
        print_json({"target": target, "collections": [c.to_json() for c in found]})
        return
    if not found:
        click.echo(f"no calendars at {target}")
        return
    click.echo(f"{len(found)} calendar(s) at {target}:")
    for c in found:
        bits = [f"{c.displayname!r}" if c.displayname else "no display name"]
        if c.color:
            bits.append(f"colour {c.color}")
        if c.components:
            bits.append("/".join(c.components))
        if c.read_only:
            bits.append("read-only")
        click.echo(f"  {c.name}: {', '.join(bits)}")
        click.echo(f"    {c.where}")
