"""The ``calsync`` command.

Subcommands live one per module in this package and are imported only when
used, so ``calsync sync`` starts fast.  Exit codes (stable, scripts rely on
them): 0 everything synced; 1 some items or pairs failed (each is named);
2 configuration or usage error; 3 a safety guard stopped a pair (nothing was
changed; see the message, then decide, e.g. ``--force``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GUARD = 3

# command name -> "module:function"; each feature adds its line here.
COMMANDS: dict[str, str] = {
    "sync": "calsync.cli.sync:sync",
    "status": "calsync.cli.status:status",
    "check": "calsync.cli.check:check",
    "history": "calsync.cli.history:history",
    "restore": "calsync.cli.history:restore",
    "conflicts": "calsync.cli.history:conflicts",
    "demo": "calsync.cli.demo:demo",
    "discover": "calsync.cli.discover:discover",
    "convert": "calsync.cli.convert:convert",
    "import": "calsync.cli.exchange:import_file",
    "export": "calsync.cli.exchange:export_store",
    "serve": "calsync.cli.serve:serve",
    "service": "calsync.cli.service:service",
    "thunderbird": "calsync.cli.thunderbird:thunderbird",
}

# what plain `calsync` runs: the gateway (on the embedded default without a config)
DEFAULT_COMMAND = "serve"


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd


HELP = """\
calsync keeps calendars in agreement: .ics files, vdir folders, CalDAV
servers, Thunderbird, and phones over SyncML.

\b
Quick start:
  calsync                 run the gateway: keeps your pairs in sync by itself,
                          serves phones (SyncML); with no configuration, a hub
                          calendar paired with Thunderbird (Ctrl-C stops)
  calsync demo            a demo pair it creates for you, synced once
  calsync check           validate your configuration
  calsync sync            sync every pair of your configuration
  calsync sync --json     the same, one JSON object for scripts

\b
Configuration (TOML), found at --config, else $CALSYNC_CONFIG, else
config.toml in your platform's config directory:

\b
  [stores.laptop]
  type = "ics"
  path = "~/cal/laptop.ics"
  [stores.phone]
  type = "vdir"
  path = "~/cal/phone"
  [pairs.main]
  a = "laptop"
  b = "phone"
  conflict = "merge"     # merge | newest | a-wins | b-wins | keep-both

\b
Exit codes: 0 synced; 1 some items or pairs failed (each named);
2 configuration or usage error; 3 a safety guard stopped a pair.
"""


@click.group(cls=LazyGroup, invoke_without_command=True, help=HELP)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="configuration file (default: $CALSYNC_CONFIG or the platform config dir)",
)
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.version_option(package_name="calsync")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if ctx.invoked_subcommand is None:
        cmd = LazyGroup.get_command(cli, ctx, DEFAULT_COMMAND)
        assert cmd is not None
        ctx.invoke(cmd)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: no traceback reaches the user unless they ask (-vv / CALSYNC_DEBUG)."""
    try:
        # obj: this process is calsync's own (not a test or an embedding program)
        return cli.main(
            args=argv, prog_name="calsync", standalone_mode=True, obj={"own_process": True}
        )
    except KeyboardInterrupt:
        click.echo("calsync: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug or an unexpected environment problem
        if os.environ.get("CALSYNC_DEBUG") or logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        click.echo(
            f"calsync: unexpected error: {type(e).__name__}: {e}\n"
            "  (run with -vv or CALSYNC_DEBUG=1 for details; nothing already synced is lost)",
            err=True,
        )
        sys.exit(EXIT_FAILED)
