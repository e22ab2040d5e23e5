"""Helpers shared by the subcommands: loading the config, printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from calsync.cli import EXIT_USAGE
from calsync.config import Config, ConfigError, load_all


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
    """The validated configuration, or exit 2 naming every problem."""
    path = config_path(ctx)
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


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
