"""``calsync convert``: vCalendar 1.0 <-> iCalendar 2.0, file to file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calsync.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from calsync.cli._common import fail
from calsync.items.exchange import Format, read_calendar, render
from calsync.stores._files import write_through

TARGETS: dict[str, Format] = {"ical": "ics", "vcal": "vcs"}


def read_input(name: str) -> tuple[bytes, str]:
    """The bytes of IN (``-``: standard input) and the name to use in messages."""
    if name == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(name).read_bytes(), name
    except OSError as e:
        fail(f"cannot read {name}: {e.strerror or e}", EXIT_USAGE)


def write_output(name: str | None, data: bytes) -> None:
    """Write to OUT (``-`` or none: standard output): a file atomically (through a
    symbolic link: its target), a FIFO or device by plain writing; a directory
    or socket is refused."""
    if name is None or name == "-":
        out = click.get_binary_stream("stdout")
        out.write(data)
        out.flush()
        return
    try:
        write_through(Path(name), data)
    except OSError as e:
        fail(f"cannot write {name}: {e.strerror or e}", EXIT_FAILED)


@click.command()
@click.option(
    "--to",
    "target",
    type=click.Choice(sorted(TARGETS)),
    required=True,
    help="ical: iCalendar 2.0 (.ics); vcal: vCalendar 1.0 (.vcs)",
)
@click.argument("input_name", metavar="IN")
@click.argument("output_name", metavar="[OUT]", required=False)
def convert(target: str, input_name: str, output_name: str | None) -> None:
    """Convert IN (.ics or .vcs, sniffed; - for stdin) to OUT (default stdout).

    An input already in the target format is rewritten normalized (a .vcs
    in Shift_JIS or quoted-printable comes out as UTF-8).  Entries that cannot
    be converted are named with their line on stderr; the others are written,
    and the exit code is 1.
    """
    data, source = read_input(input_name)
    found = read_calendar(data, source)
    converted, unwritable = render(found.items, TARGETS[target])
    for e in unwritable:
        e.source = e.source or source
    errors = found.errors + unwritable
    for e in errors:
        click.echo(f"calsync: {e}", err=True)
    for item in found.items:  # no history here: what was left out is said, at least
        notes = item.notes
        if notes is not None and notes.repairs:
            click.echo(
                f"calsync: {source}: item {item.uid}: repaired: {'; '.join(notes.repairs)}",
                err=True,
            )
        for _, why in notes.dropped if notes is not None else ():
            click.echo(f"calsync: {source}: item {item.uid}: a copy left out: {why}", err=True)
    if found.items or not errors:
        write_output(output_name, converted)
    if errors:
        done = len(found.items) - len(unwritable)
        click.echo(f"calsync: {done} item(s) converted, {len(errors)} not", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)
