"""Helpers shared by the subcommands: loading the config, printing.

Free of click at import (``config_option`` loads it when a command is
declared): ``calsync sync``'s quick path uses these without click.  The
invocation's shared state is a plain dict, click's root ``ctx.obj``
(``root_obj``): ``config_path`` (``--config``), ``insecure_config``
(``--insecure-config``), ``loaded_config`` (the file read), ``own_process``
(this process is calsync's own).

A configuration that holds passwords and that other users can read is refused
by every command that loads it (exit 2, one line naming the file and the fix),
unless ``--insecure-config`` is given: then it is a warning.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from calsync.cli import EXIT_USAGE, setup_logging
from calsync.config import Config, ConfigError, default_config_path, load_all

if TYPE_CHECKING:
    import click


def echo(message: str, *, err: bool = False) -> None:
    """``click.echo`` for text: one line to stdout (or stderr), flushed."""
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    echo(f"calsync: {message}", err=True)
    sys.exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def root_obj(ctx: click.Context) -> dict[str, Any]:
    """The invocation's shared state (see the module docstring)."""
    obj: dict[str, Any] = ctx.find_root().ensure_object(dict)
    return obj


def _remember_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        root_obj(ctx)["config_path"] = value


def _remember_insecure(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        root_obj(ctx)["insecure_config"] = True


INSECURE_HELP = "use a configuration file holding passwords even if other users can read it"


def config_option(f: F) -> F:
    """``--config`` and ``--insecure-config`` accepted after the subcommand too
    (``calsync sync --config X``)."""
    import click

    f = click.option(
        "--insecure-config",
        is_flag=True,
        expose_value=False,
        callback=_remember_insecure,
        help=INSECURE_HELP,
    )(f)
    return click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=_remember_config,
        help="configuration file (default: $CALSYNC_CONFIG or the platform config dir)",
    )(f)


def _count(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """A command's own ``-v``/``-q`` add to the global ones (``calsync sync -v``)."""
    if value and param.name:
        obj = root_obj(ctx)
        obj[param.name] = obj.get(param.name, 0) + value
        setup_logging(verbosity(obj))


def verbosity(obj: dict[str, Any]) -> int:
    """The ``-v`` minus the ``-q`` of the whole call (global and the command's)."""
    return int(obj.get("verbose", 0)) - int(obj.get("quiet", 0))


def verbosity_options(f: F) -> F:
    """``-v``/``-q`` accepted after the command too (every command has them)."""
    import click

    f = click.option(
        "-q",
        "--quiet",
        count=True,
        expose_value=False,
        callback=_count,
        help="fewer log lines (errors only)",
    )(f)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_count,
        help="more log lines (-vv for debug)",
    )(f)


def config_path(ctx: click.Context) -> Path | None:
    path: Path | None = (ctx.find_root().obj or {}).get("config_path")
    return path


def load_config(ctx: click.Context) -> Config:
    """``load_config_from`` the invocation's state."""
    return load_config_from(root_obj(ctx))


# why the embedded default may have no pair (`status` and `sync` say it)
NO_EMBEDDED_PAIRS = (
    "no Thunderbird calendar was found to pair with the hub (see `calsync discover`); "
    "phones sync with the hub through the gateway (`calsync`)"
)


def embedded_in_use(obj: dict[str, Any]) -> tuple[Config, Path] | None:
    """The embedded default's configuration and the file showing it, when this
    call names no configuration, there is no configuration file, and a first
    ``calsync`` (the gateway) set the embedded default up; else None."""
    if obj.get("config_path") is not None or default_config_path().exists():
        return None
    from calsync.gateway.embedded import embedded, is_set_up, shown_file

    if not is_set_up():
        return None
    return embedded().config, shown_file()


def load_config_from(obj: dict[str, Any]) -> Config:
    """The validated configuration, or exit 2 naming every problem.

    With no configuration file anywhere, the embedded default that ``calsync``
    (the gateway) set up is used, if it did, and the command says so (once,
    on stderr).
    """
    path: Path | None = obj.get("config_path")
    obj["loaded_config"] = path or default_config_path()
    found = embedded_in_use(obj)
    if found is not None:
        obj["loaded_config"] = None
        echo(
            f"calsync: no configuration file ({default_config_path()}): using the "
            f"embedded default ({found[1]})",
            err=True,
        )
        return found[0]
    try:
        cfg, errors = load_all(path)
    except ConfigError as e:
        fail(str(e))
    problems = [str(e) for e in errors]
    if cfg.exposed is not None:
        if not obj.get("insecure_config"):
            problems.append(f"{cfg.exposed} (or pass --insecure-config)")
        else:
            echo(f"calsync: warning: {cfg.exposed}", err=True)
    for warning in cfg.warnings:
        echo(f"calsync: warning: {warning}", err=True)
    if problems:
        for problem in problems:
            echo(f"calsync: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    return cfg


def daemon_client(obj: dict[str, Any], cfg: Config) -> Any:
    """A client of the daemon running this configuration, or None (work standalone).

    ``obj``: the invocation's state, after ``load_config_from`` read ``cfg``."""
    from calsync.gateway import runtime

    if runtime.running_daemon(cfg.state_dir) is None:
        return None  # the usual case: the client and what it imports are not needed
    from calsync.gateway.client import connect

    return connect(cfg, obj.get("loaded_config"))


def print_json(data: Any) -> None:
    echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
