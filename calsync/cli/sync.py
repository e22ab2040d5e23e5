"""``calsync sync``: sync pairs once (the command's options and help).

The work is ``run_sync``; a plain ``calsync sync`` never loads this module
(see ``calsync.cli.quick``), so an option added here is also taught to
``quick``, or such calls simply take this slower way.
"""

from __future__ import annotations

import click

from calsync.cli._common import config_option, root_obj, verbosity_options
from calsync.cli.run_sync import run_sync
from calsync.sync import MODES


@click.command()
@click.argument("pairs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object with the counts")
@click.option(
    "--force",
    is_flag=True,
    help="override the safety guards (mass delete, "
    "emptied store, store moved) after you checked their message",
)
@click.option("--dry-run", is_flag=True, help="show what would be done, change nothing")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="two-way",
    show_default=True,
    help="two-way; slow (compare everything, match by UID and content, delete nothing); "
    "one-way-a-to-b / one-way-b-to-a (the other side's changes wait); "
    "refresh-from-a / refresh-from-b (make the other side an exact copy)",
)
@config_option
@verbosity_options
@click.pass_context
def sync(
    ctx: click.Context,
    pairs: tuple[str, ...],
    as_json: bool,
    force: bool,
    dry_run: bool,
    mode: str,
) -> None:
    """Sync PAIRS (all pairs when none is named) once.

    Prints one line per pair, or with --json one object:
    {"pairs": {"NAME": {"added_a": 0, "added_b": 0, "updated_a": 0,
    "updated_b": 0, "deleted_a": 0, "deleted_b": 0, "conflicts": 0,
    "errors": [...]}}}.  Each error names the store, the item id and UID, and
    the reason; the other items still sync.
    """
    run_sync(root_obj(ctx), pairs, as_json=as_json, force=force, dry_run=dry_run, mode=mode)
