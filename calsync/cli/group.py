"""The ``calsync`` click group: global options, help, subcommands loaded lazily.

Subcommands live one per module in this package and are imported only when
used (``COMMANDS``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from calsync.cli import COMMANDS, DEFAULT_COMMAND, setup_logging
from calsync.cli._common import INSECURE_HELP, verbosity, verbosity_options


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return _with_verbosity(cmd)


def _with_verbosity(cmd: click.Command) -> click.Command:
    """``cmd`` (and a group's subcommands) taking ``-v``/``-q`` after its name too."""
    if not any(p.name == "verbose" for p in cmd.params):
        verbosity_options(cmd)
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _with_verbosity(sub)
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
@click.option("--insecure-config", is_flag=True, help=INSECURE_HELP)
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.option("-q", "--quiet", count=True, help="less log output (errors only)")
@click.version_option(package_name="calsync")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, insecure_config: bool, verbose: int, quiet: int
) -> None:
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    if insecure_config:
        ctx.obj["insecure_config"] = True
    ctx.obj["verbose"] = verbose
    ctx.obj["quiet"] = quiet
    setup_logging(verbosity(ctx.obj))
    if ctx.invoked_subcommand is None:
        cmd = LazyGroup.get_command(cli, ctx, DEFAULT_COMMAND)
        assert cmd is not None
        ctx.invoke(cmd)
