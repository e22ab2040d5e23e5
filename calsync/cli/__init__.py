"""The ``calsync`` command.

Subcommands live one per module in this package and are imported only when
used, so ``calsync sync`` starts fast; a plain ``calsync sync`` (the command
scripts and timers run most) does not even load click (see ``quick``).  Exit
codes (stable, scripts rely on them): 0 everything synced; 1 some items or
pairs failed (each is named); 2 configuration or usage error; 3 a safety guard
stopped a pair (nothing was changed; see the message, then decide, e.g.
``--force``).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any

from calsync.sync import REPORTED_KEY

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
    "feeds": "calsync.cli.feeds:feeds",
    "pair": "calsync.cli.devices:pair",
    "devices": "calsync.cli.devices:devices",
    "serve": "calsync.cli.serve:serve",
    "service": "calsync.cli.service:service",
    "thunderbird": "calsync.cli.thunderbird:thunderbird",
    "migrate": "calsync.cli.migrate:migrate",
}

# what plain `calsync` runs: the gateway (on the embedded default without a config)
DEFAULT_COMMAND = "serve"


def collect_less_often() -> None:
    """Run CPython's cyclic garbage collector less often, in a one-shot sync.

    A sync keeps one object or more per item alive until it ends, and the
    default thresholds make the collector walk all of them again and again: 1 s
    of a first sync of 100k items, 0.3 s with a threshold of 10k new objects.
    With 100k, set before the sync's modules load, a sync of 1% of 10k items
    spends 1.4 ms collecting instead of 5-9 ms, and peak memory is unchanged
    (316 MB for a first sync of 100k items): a sync makes little cyclic
    garbage.  Only for calsync's own one-shot process (``run_sync``; ``quick``
    calls it before the sync's imports)."""
    gc.set_threshold(100_000, 10, 10)


def setup_logging(verbose: int) -> None:
    """Log warnings and errors; ``-v`` adds progress, ``-vv`` debugging; ``-q``
    (a negative ``verbose``: the ``-v`` minus the ``-q``) leaves errors only.

    Called again when a command's own ``-v``/``-q`` come after the global ones."""
    level = (
        logging.ERROR
        if verbose < 0
        else logging.WARNING
        if verbose == 0
        else logging.INFO
        if verbose == 1
        else logging.DEBUG
    )
    root = logging.getLogger()
    if _ours and _ours[0] in root.handlers:  # ours already (the global options')
        root.setLevel(level)
        return
    before = list(root.handlers)
    logging.basicConfig(  # a no-op where a program set up logging its own way
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    _ours[:] = [h for h in root.handlers if h not in before]


_ours: list[logging.Handler] = []  # the handler setup_logging made, if it made one


class _Unreported(logging.Filter):
    """Drops the log records whose news the command prints itself (``REPORTED``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, REPORTED_KEY, False)


def results_printed() -> None:
    """This command prints the sync results (every item error, why a pair
    stopped): the engine's log lines saying the same are not printed too."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Unreported) for f in handler.filters):
            handler.addFilter(_Unreported())


def main(argv: list[str] | None = None) -> Any:
    """Entry point: no traceback reaches the user unless they ask (-vv / CALSYNC_DEBUG)."""
    try:
        from calsync.cli import quick

        plain = quick.parse(sys.argv[1:] if argv is None else argv)
        if plain is not None:
            return quick.run(plain)
        from calsync.cli.group import cli

        # obj: this process is calsync's own (not a test or an embedding program)
        return cli.main(
            args=argv, prog_name="calsync", standalone_mode=True, obj={"own_process": True}
        )
    except KeyboardInterrupt:
        print("calsync: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # a bug or an unexpected environment problem
        if os.environ.get("CALSYNC_DEBUG") or logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        print(
            f"calsync: unexpected error: {type(e).__name__}: {e}\n"
            "  (run with -vv or CALSYNC_DEBUG=1 for details; nothing already synced is lost)",
            file=sys.stderr,
        )
        sys.exit(EXIT_FAILED)


def __getattr__(name: str) -> Any:
    """``cli`` and ``LazyGroup`` (for ``CliRunner`` and embedders) load click on use."""
    if name in ("cli", "LazyGroup", "HELP"):
        from calsync.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
