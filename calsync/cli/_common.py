"""Helpers shared by the subcommands: loading the config, printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from calsync.cli import EXIT_USAGE
from calsync.config import Config, ConfigError, default_config_path, load_all


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"calsync: {message}", err=True)
    sys.exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def _remember_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.find_root().ensure_object(dict)["config_path"] = value


def config_option(f: F) -> F:
    """``--config`` accepted after the subcommand too (``calsync sync --config X``)."""
    return click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=_remember_config,
        help="configuration file (default: $CALSYNC_CONFIG or the platform config dir)",
    )(f)


def config_path(ctx: click.Context) -> Path | None:
    path: Path | None = (ctx.find_root().obj or {}).get("config_path")
    return path


def load_config(ctx: click.Context) -> Config:
    """The validated configuration, or exit 2 naming every problem.

    With no configuration file anywhere, the embedded default that ``calsync``
    (the gateway) set up is used, if it did.
    """
    path = config_path(ctx)
    ctx.find_root().ensure_object(dict)["loaded_config"] = path or default_config_path()
    if path is None and not default_config_path().exists():
        from calsync.gateway.embedded import embedded, is_set_up

        if is_set_up():
            ctx.find_root().obj["loaded_config"] = None
            return embedded().config
    try:
        cfg, errors = load_all(path)
    except ConfigError as e:
        fail(str(e))
    for warning in cfg.warnings:
        click.echo(f"calsync: warning: {warning}", err=True)
    if errors:
        for problem in errors:
            click.echo(f"calsync: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    return cfg


def loaded_config_path(ctx: click.Context) -> Path | None:
    """The file ``load_config`` read (None: the embedded default)."""
    path: Path | None = (ctx.find_root().obj or {}).get("loaded_config")
    return path


def daemon_client(ctx: click.Context, cfg: Config) -> Any:
    """A client of the daemon running this configuration, or None (work standalone)."""
    from calsync.gateway import runtime

    if runtime.running_daemon(cfg.state_dir) is None:
        return None  # the usual case: the client and what it imports are not needed
    from calsync.gateway.client import connect

    return connect(cfg, loaded_config_path(ctx))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
