"""``calsync import`` and ``calsync export``: one-shot exchange of .ics/.vcs files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calsync.cli import EXIT_FAILED, EXIT_OK
from calsync.cli._common import config_option, fail, load_config
from calsync.cli.convert import read_input, write_output
from calsync.items.exchange import (
    FORMATS,
    Format,
    Read,
    format_of_name,
    read_calendar,
    render,
)
from calsync.sync.exchange import ExchangeError, export_items, import_items


@click.command("import")
@click.argument("file_name", metavar="FILE")
@click.option("--into", "store_name", required=True, help="the configured store to import into")
@config_option
@click.pass_context
def import_file(ctx: click.Context, file_name: str, store_name: str) -> None:
    """Add or update FILE's items (.ics, .vcs or Outlook .pst/.ost, sniffed; - for stdin) in
    a store, by UID.

    Versions overwritten are kept in the history (`calsync history`, `calsync
    restore`).  Entries that cannot be read are named with their line; the
    others are imported, and the exit code is 1.
    """
    cfg = load_config(ctx)
    if store_name not in cfg.stores:
        fail(f"no store named {store_name!r} (configured: {', '.join(sorted(cfg.stores))})")
    source = file_name
    found = _read_outlook(file_name)
    if found is None:
        data, source = read_input(file_name)
        found = read_calendar(data, source)
    for e in found.errors:
        click.echo(f"calsync: {e}", err=True)
    try:
        result = import_items(cfg, store_name, found.items)
    except ExchangeError as e:
        fail(f"cannot import into {store_name}: {e}", EXIT_FAILED)
    for message in result.failed:
        click.echo(f"calsync: cannot import {message}", err=True)
    if result.without_uid:
        click.echo(
            f"calsync: note: {len(result.without_uid)} added item(s) had no UID in {source}; "
            "calsync identifies them by content, so one edited since an earlier import "
            "comes in as a new item",
            err=True,
        )
    click.echo(
        f"{source} -> {store_name}: {len(result.added)} added, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged, {len(found.errors) + len(result.failed)} failed"
    )
    sys.exit(EXIT_FAILED if found.errors or result.failed else EXIT_OK)


def _read_outlook(file_name: str) -> Read | None:
    """An Outlook .pst/.ost file's appointments and tasks (None: not such a file)."""
    if file_name == "-":
        return None
    try:
        with open(file_name, "rb") as f:
            head = f.read(4)
    except OSError:
        return None  # read_input names the problem
    from calsync.outlook.pst import is_pst

    if not is_pst(head):
        return None
    from calsync.outlook.store import read_items

    items, errors = read_items(Path(file_name), file_name)
    return Read("ics", items, errors)


@click.command("export")
@click.argument("store_name", metavar="STORE")
@click.argument("file_name", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="ics (iCalendar 2.0) or vcs (vCalendar 1.0); default: by FILE's extension",
)
@config_option
@click.pass_context
def export_store(ctx: click.Context, store_name: str, file_name: str, fmt: Format | None) -> None:
    """Write every item of STORE to FILE (- for stdout), as .ics or .vcs.

    Items the store cannot read, or the format cannot carry, are named on
    stderr; the others are written, and the exit code is 1.
    """
    cfg = load_config(ctx)
    if store_name not in cfg.stores:
        fail(f"no store named {store_name!r} (configured: {', '.join(sorted(cfg.stores))})")
    if fmt is None:
        fmt = "ics" if file_name == "-" else format_of_name(file_name)
        if fmt is None:
            fail(f"cannot tell the format of {file_name} from its name; use --format ics|vcs")
    try:
        items, problems = export_items(cfg, store_name)
    except ExchangeError as e:
        fail(f"cannot export {store_name}: {e}", EXIT_FAILED)
    data, unwritable = render(items, fmt)
    problems += [f"{store_name}: {e}" for e in unwritable]
    for message in problems:
        click.echo(f"calsync: {message}", err=True)
    write_output(file_name, data)
    written = len(items) - len(unwritable)
    click.echo(
        f"{store_name} -> {file_name}: {written} item(s) written, {len(problems)} not",
        err=file_name == "-",
    )
    sys.exit(EXIT_FAILED if problems else EXIT_OK)
