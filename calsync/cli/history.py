"""``calsync history``, ``calsync restore``, ``calsync conflicts``: nothing is lost."""

from __future__ import annotations

import sys
import time

import click

from calsync.cli import EXIT_FAILED
from calsync.cli._common import config_option, load_config, print_json
from calsync.items import ItemError
from calsync.stores import StoreError
from calsync.sync.history import History
from calsync.sync.runner import history_file


@click.command()
@click.argument("uid", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON, each entry with its content")
@click.option("--limit", type=int, default=50, show_default=True, help="newest entries only")
@config_option
@click.pass_context
def history(ctx: click.Context, uid: str | None, as_json: bool, limit: int) -> None:
    """List versions calsync overwrote or deleted (all, or those of UID).

    Each has a number: `calsync restore UID --version N` puts it back.
    """
    cfg = load_config(ctx)
    h = History(history_file(cfg))
    try:
        versions = h.versions(uid, limit=limit)
    finally:
        h.close()
    if as_json:
        print_json({"history": [v.to_json() for v in versions]})
        return
    if not versions:
        click.echo("no saved versions" + (f" of {uid}" if uid else ""))
        return
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.time))
        click.echo(f"#{v.n}  {when}  {v.reason:<15} {v.store:<12} {v.uid}")


@click.command()
@click.argument("uid")
@click.option("--version", "number", type=int, help="history entry number (default: newest)")
@click.option("--to", "to", help="store to restore into (default: the one it was taken from)")
@config_option
@click.pass_context
def restore(ctx: click.Context, uid: str, number: int | None, to: str | None) -> None:
    """Put a saved version of UID back into a store; the next sync spreads it."""
    from calsync.sync.restore import RestoreError
    from calsync.sync.restore import restore as do_restore

    cfg = load_config(ctx)
    try:
        version, store = do_restore(cfg, uid, number, to)
    except (RestoreError, StoreError, ItemError) as e:
        click.echo(f"calsync: cannot restore {uid}: {e}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"restored version #{version.n} of {uid} into {store}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--limit", type=int, default=50, show_default=True)
@config_option
@click.pass_context
def conflicts(ctx: click.Context, as_json: bool, limit: int) -> None:
    """List conflicts the last syncs resolved, and how."""
    cfg = load_config(ctx)
    h = History(history_file(cfg))
    try:
        rows = h.conflicts(limit)
    finally:
        h.close()
    if as_json:
        print_json({"conflicts": rows})
        return
    if not rows:
        click.echo("no conflicts recorded")
        return
    for r in rows:
        extra = f" overlapping: {', '.join(r['overlapping'])}" if r.get("overlapping") else ""
        winner = f" winner: {r['winner']}" if r.get("winner") else ""
        clock = f" decided by: {r['clock']}" if r.get("clock") else ""
        copy = f" copy: {r['copy_uid']}" if r.get("copy_uid") else ""
        click.echo(
            f"{r['time']}  {r['pair']}  {r['uid']}: {r['outcome']}{winner}{extra}{clock}{copy}"
        )
