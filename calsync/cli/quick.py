"""A plain ``calsync sync`` without click: the call scripts and timers make most.

Why: click and what it imports (uuid, datetime, platform, gettext...) cost
~10 ms of every run, and a sync with nothing to do takes ~150 ms in all.

Rules:
- ``parse`` accepts exactly the forms below and nothing else.  Anything it
  does not know (``--help``, a typo, an unknown option or command, a value
  click would reject) gives None, and the call goes through click, which
  parses, reports and exits as always.  So this path never decides anything
  differently from click; it only skips loading it.

      calsync [--config PATH] [--insecure-config] [-v...] [-q...] sync [--json]
              [--force] [--dry-run] [--mode MODE] [--config PATH] [--insecure-config]
              [-v...] [-q...] [PAIR...]

  (``-v``, ``-vv``..., ``--verbose``, and the same of ``-q``/``--quiet``, each
  an argument of its own: click's ``-vq`` is left to click.)

- As with click: the options after ``sync`` may come in any order, between
  pair names too; ``--opt=value`` is ``--opt value``; the later of two
  ``--config`` or ``--mode`` wins, and ``sync``'s own ``--config`` wins over
  the one before it; ``-v`` and ``-q`` count wherever they are (the
  verbosity is the ``-v`` minus the ``-q``).
- ``run`` then does what the click command does (``run_sync``), with click's
  standalone handling of Ctrl-C and of a closed output pipe.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from calsync.cli import collect_less_often, setup_logging
from calsync.sync import MODES

_FLAGS = {
    "--json": "as_json",
    "--force": "force",
    "--dry-run": "dry_run",
    "--insecure-config": "insecure_config",
}
_VALUED = ("--config", "--mode")
_COUNTED = {"-v": 1, "--verbose": 1, "-q": -1, "--quiet": -1}  # to the verbosity


class PlainSync:
    """A parsed plain ``calsync sync`` call."""

    __slots__ = (
        "as_json",
        "config",
        "dry_run",
        "force",
        "insecure_config",
        "mode",
        "pairs",
        "verbose",
    )

    def __init__(self) -> None:
        self.config: Path | None = None
        self.verbose = 0  # the -v minus the -q
        self.pairs: list[str] = []
        self.as_json = False
        self.force = False
        self.dry_run = False
        self.insecure_config = False
        self.mode = "two-way"


def parse(args: Sequence[str]) -> PlainSync | None:
    """The call, if it is a plain ``calsync sync`` (see the module docstring); else None."""
    call = PlainSync()
    rest = iter(args)
    for arg in rest:  # calsync's own options, up to the command
        if arg == "sync":
            break
        if _counted(call, arg):
            continue
        if arg == "--insecure-config":
            call.insecure_config = True
            continue
        name, value = _valued(arg, rest)
        if name != "--config" or not _set(call, name, value):
            return None
    else:
        return None  # no command, or another one
    for arg in rest:  # sync's options and pair names
        if arg in _FLAGS:
            setattr(call, _FLAGS[arg], True)
        elif arg[:1] != "-":
            call.pairs.append(arg)
        elif not _counted(call, arg):
            name, value = _valued(arg, rest)
            if name is None or not _set(call, name, value):
                return None
    return call


def _counted(call: PlainSync, arg: str) -> bool:
    """Take ``-v``, ``-vv``..., ``--verbose`` (or the same of ``-q``) into the verbosity."""
    step = _COUNTED.get(arg) or _COUNTED.get(arg[:2])
    if step is None or (arg[:2] != "--" and arg[1:] != arg[1] * (len(arg) - 1)):
        return False
    call.verbose += step * (1 if arg[:2] == "--" else len(arg) - 1)
    return True


def _valued(arg: str, rest: Iterator[str]) -> tuple[str | None, str | None]:
    """(option, value) of ``--config``/``--mode`` given as one or two arguments."""
    name, eq, value = arg.partition("=")
    if name not in _VALUED:
        return None, None
    if eq:
        return name, value
    return name, next(rest, None)


def _set(call: PlainSync, name: str, value: str | None) -> bool:
    """Take a valued option; False where click would refuse the value (it then says why)."""
    if value is None or value[:1] in ("", "-"):
        return False
    if name == "--mode":
        if value not in MODES:
            return False
        call.mode = value
        return True
    if os.path.isdir(value):  # click: "is a directory"
        return False
    call.config = Path(value)
    return True


def run(call: PlainSync) -> NoReturn:
    """Do the call as the click command would, and exit with its code."""
    collect_less_often()  # before the sync's modules load (they make many objects)
    from calsync.cli.run_sync import run_sync

    setup_logging(call.verbose)
    obj = {
        "own_process": True,
        "config_path": call.config,
        "verbose": call.verbose,
        "insecure_config": call.insecure_config,
    }
    try:
        run_sync(
            obj,
            tuple(call.pairs),
            as_json=call.as_json,
            force=call.force,
            dry_run=call.dry_run,
            mode=call.mode,
        )
    except (EOFError, KeyboardInterrupt):  # what click does in standalone mode
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        _quiet_closed_output()  # the reader went away (calsync sync | head): exit quietly
        sys.exit(1)


def _quiet_closed_output() -> None:
    """Point stdout and stderr at /dev/null, so that flushing them at exit cannot fail."""
    null = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(null, stream.fileno())
        except (OSError, ValueError):
            pass
