"""``calsync demo``: a pair that works out of the box (plain ``calsync`` is the gateway).

Creates, once, an ``.ics`` file and a vdir folder with a few events each under
the platform data dir, and a config for them, then syncs them and prints what
happened.  Edit either side and run it again to watch the change travel.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click

from calsync.cli import EXIT_FAILED, EXIT_GUARD, EXIT_OK, results_printed
from calsync.cli.run_sync import summary_line
from calsync.config import data_dir, parse
from calsync.stores._files import write_atomic
from calsync.sync.runner import run_pair

CONFIG = """\
# The demo pair calsync made for you; copy it into your own config to start.
[general]
state_dir = "state"

[stores.laptop]
type = "ics"
path = "laptop.ics"

[stores.phone]
type = "vdir"
path = "phone"

[pairs.demo]
a = "laptop"
b = "phone"
conflict = "merge"
"""


def _event(uid: str, summary: str, start: datetime, location: str = "") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{stamp}",
        f"DTSTART:{start.strftime('%Y%m%dT%H%M%SZ')}",
        f"DTEND:{(start + timedelta(hours=1)).strftime('%Y%m%dT%H%M%SZ')}",
        f"SUMMARY:{summary}",
    ]
    if location:
        lines.append(f"LOCATION:{location}")
    lines.append("END:VEVENT")
    return "\r\n".join(lines) + "\r\n"


def _calendar(body: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//demo//EN\r\n"
        "X-WR-CALNAME:Laptop\r\n" + body + "END:VCALENDAR\r\n"
    ).encode()


@click.command()
def demo() -> None:
    """Sync a demo .ics file with a demo vdir (created on first run)."""
    root = data_dir() / "demo"
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "config.toml"
    first = not config_path.exists()
    if first:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        laptop = "".join(
            _event(f"demo-laptop-{i}@calsync", title, now + timedelta(days=i + 1), place)
            for i, (title, place) in enumerate(
                [
                    ("Team meeting", "Room 4"),
                    ("Dentist", "Main St 12"),
                    ("Café with Zoë", "Le Marais"),
                ]
            )
        )
        write_atomic(root / "laptop.ics", _calendar(laptop), fsync=False)
        phone = root / "phone"
        phone.mkdir(exist_ok=True)
        for i, title in enumerate(["Flight to Berlin", "Birthday party"]):
            uid = f"demo-phone-{i}@calsync"
            body = _event(uid, title, now + timedelta(days=10 + i))
            write_atomic(
                phone / f"{uid}.ics",
                _calendar(body).replace(b"X-WR-CALNAME:Laptop\r\n", b""),
                fsync=False,
            )
        config_path.write_text(CONFIG, encoding="utf-8")
    cfg, errors = parse(config_path.read_text(encoding="utf-8"), config_path)
    assert not errors, errors
    results_printed()
    result = run_pair(cfg, "demo")
    click.echo(summary_line(result, "laptop", "phone"))
    for err in result.errors:
        click.echo(f"  error: {err}", err=True)
    click.echo(
        f"\nThe demo pair lives in {root}:\n"
        f"  {root / 'laptop.ics'}   (an .ics file, like a Thunderbird export)\n"
        f"  {root / 'phone'}/          (a vdir: one .ics file per event)\n"
        "Edit, add or delete an event on either side and run `calsync` again.\n"
        f"To sync your own calendars, write a config like {config_path}\n"
        "and run `calsync sync` (see `calsync --help`)."
    )
    if result.guard:
        sys.exit(EXIT_GUARD)
    sys.exit(EXIT_FAILED if result.stopped or result.errors else EXIT_OK)
