"""``calsync discover``: Thunderbird installations, profiles and calendars on this machine."""

from __future__ import annotations

import sys

import click

from calsync.cli import EXIT_FAILED, EXIT_OK
from calsync.cli._common import print_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def discover(as_json: bool) -> None:
    """Find Thunderbird profiles and calendars, and print a config block for them.

    Looks where Thunderbird keeps its profiles on this platform (Linux, incl.
    Flatpak and Snap; Windows; macOS).  With --json prints one object with
    "installations", "profiles" (each with its "calendars") and "config".
    Exits 1 when no profile was found.
    """
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
