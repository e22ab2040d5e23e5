"""``calsync check``: validate the configuration."""

from __future__ import annotations

import sys

import click

from calsync.cli import EXIT_OK, EXIT_USAGE
from calsync.cli._common import config_option, config_path
from calsync.config import ConfigError, load_all


@click.command()
@config_option
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration: every problem with its file, line and key."""
    try:
        cfg, errors = load_all(config_path(ctx))
    except ConfigError as e:
        click.echo(f"calsync: {e}", err=True)
        sys.exit(EXIT_USAGE)
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)
    for name in cfg.stores if not errors else []:
        try:
            cfg.store(name)
        except Exception as e:  # a store that cannot even be built from its config
            errors.append(ConfigError(str(e), path=cfg.path, key=f"stores.{name}"))
    if errors:
        for problem in errors:
            click.echo(str(problem), err=True)
        click.echo(f"{len(errors)} problem(s) found", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{cfg.path}: OK ({len(cfg.stores)} stores, {len(cfg.pairs)} pairs)")
    sys.exit(EXIT_OK)
