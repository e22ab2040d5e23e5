"""``calsync check``: validate the configuration (or the embedded default in use)."""

from __future__ import annotations

import sys

import click

from calsync.cli import EXIT_OK, EXIT_USAGE
from calsync.cli._common import config_option, config_path, embedded_in_use, root_obj
from calsync.config import Config, ConfigError, load_all


@click.command()
@config_option
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration: every problem with its file, line and key.

    With no configuration file, the embedded default that `calsync` set up
    (if it did) is checked: what `sync` and `status` would use."""
    found = embedded_in_use(root_obj(ctx))
    errors: list[ConfigError] = []
    cfg: Config
    if found is not None:
        cfg, shown = found
        where = f"no configuration file: the embedded default ({shown})"
    else:
        try:
            cfg, errors = load_all(config_path(ctx))
        except ConfigError as e:
            click.echo(f"calsync: {e}", err=True)
            sys.exit(EXIT_USAGE)
        where = str(cfg.path)
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)
    if cfg.exposed is not None:  # a problem: every other command refuses this file
        if root_obj(ctx).get("insecure_config"):
            click.echo(f"warning: {cfg.exposed}", err=True)
        else:
            what = cfg.exposed.removeprefix(f"{cfg.path} ")
            errors.append(ConfigError(f"{what} (or pass --insecure-config)", path=cfg.path))
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
    click.echo(f"{where}: OK ({len(cfg.stores)} stores, {len(cfg.pairs)} pairs)")
    sys.exit(EXIT_OK)
