"""What ``calsync sync`` does, once its arguments are parsed: sync pairs once.

Free of click, like everything it imports: the quick path (``calsync.cli.quick``)
runs a plain ``calsync sync`` without loading click at all, and the click
command (``calsync.cli.sync``) calls the same ``run_sync``.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from calsync.cli import EXIT_FAILED, EXIT_GUARD, EXIT_OK, collect_less_often, results_printed
from calsync.cli._common import (
    NO_EMBEDDED_PAIRS,
    daemon_client,
    echo,
    fail,
    load_config_from,
    print_json,
    stderr_is_terminal,
)
from calsync.stores import _forked

if TYPE_CHECKING:  # the engine is loaded once the stores may be listing
    from calsync.sync.engine import Progress, SyncResult


@contextmanager
def _progress_bar(enabled: bool, label: str) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def summary_line(result: SyncResult, a: str, b: str) -> str:
    if result.stopped:
        return f"{result.pair}: not synced: {result.stopped}"
    parts = []
    for side, store in (("a", a), ("b", b)):
        bits = [
            f"{n} {what}"
            for what, n in (
                ("added", getattr(result, f"added_{side}")),
                ("updated", getattr(result, f"updated_{side}")),
                ("deleted", getattr(result, f"deleted_{side}")),
            )
            if n
        ]
        if bits:
            parts.append(f"{store}: {', '.join(bits)}")
    text = "; ".join(parts) if parts else "in sync, nothing to do"
    if result.conflicts:
        text += f"; {result.conflicts} conflict(s) resolved"
    if result.errors:
        text += f"; {len(result.errors)} item(s) failed"
    return f"{result.pair}: {text} ({result.seconds:.2f} s)"


def run_sync(
    obj: dict[str, Any],
    pairs: tuple[str, ...],
    *,
    as_json: bool,
    force: bool,
    dry_run: bool,
    mode: str,
) -> NoReturn:
    """Sync ``pairs`` (all when empty) and exit with the command's exit code.

    ``obj``: the invocation's shared state (click's root ``ctx.obj``): the
    ``--config`` path, and ``own_process`` when this process is calsync's own.
    """
    cfg = load_config_from(obj)
    names = list(dict.fromkeys(pairs)) or list(cfg.pairs)  # a pair named twice runs once
    unknown = [n for n in names if n not in cfg.pairs and not _is_collection(cfg, n)]
    if unknown:
        fail(f"no pair named {', '.join(unknown)} (pairs: {', '.join(cfg.pairs) or 'none'})")
    if not names:
        if cfg.path is not None:
            fail("the configuration has no [pairs.NAME] section: nothing to sync")
        # the embedded default pairs the hub with Thunderbird only when it found one
        if as_json:
            print_json({"pairs": {}})
        else:
            echo(f"no pairs: {NO_EMBEDDED_PAIRS}; nothing to sync")
        sys.exit(EXIT_OK)
    results = _through_daemon(obj, cfg, names, force=force, dry_run=dry_run, mode=mode)
    if results is not None:
        if not as_json:
            for name, result in results.items():
                _print_result(cfg, name, result, dry_run)
    else:
        if obj.get("own_process"):
            _collect_less()
            _forked.allow()  # bulk reads and writes may fork a helper (see _forked)
        results_printed()  # each error and guard once: in the results printed below
        _close_state_dir(cfg.state_dir)
        from calsync.sync.runner import run_pair

        results = {}
        show_bar = not as_json and stderr_is_terminal()
        for name in names:
            with _progress_bar(show_bar, name) as progress:
                results[name] = run_pair(
                    cfg, name, force=force, dry_run=dry_run, progress=progress, mode=mode
                )
            if not as_json:
                _print_result(cfg, name, results[name], dry_run)
    if as_json:
        print_json({"pairs": {n: r.to_json() for n, r in results.items()}})
    if any(r.guard for r in results.values()):
        sys.exit(EXIT_GUARD)
    if any(r.stopped or r.errors for r in results.values()):
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)


def _collect_less() -> None:
    """Spare a one-shot sync most of CPython's cyclic garbage collections.

    What exists now (modules, configuration) lives as long as this process and
    is frozen out of every collection; then the collector runs less often (see
    ``collect_less_often``).  Only when this process is calsync's own and ends
    with the sync: not in the daemon, nor in a program that calls the CLI
    in-process.
    """
    gc.freeze()
    collect_less_often()


def _close_state_dir(state_dir: Any) -> None:
    """A state directory an older calsync left readable by others is closed (one
    stat; ``calsync.perms`` is loaded only when there is something to fix)."""
    try:
        loose = os.stat(state_dir).st_mode & 0o077
    except OSError:
        return  # not there yet: it is created owner-only
    if loose:
        from calsync.perms import close_dir

        close_dir(state_dir)


def _is_collection(cfg: Any, name: str) -> bool:
    """``PAIR/NAME`` of a pair with collections (its module loaded only then)."""
    if "/" not in name:
        return False
    from calsync.sync.collections import is_sub

    return is_sub(cfg, name)


def _print_result(cfg: Any, name: str, result: SyncResult, dry_run: bool) -> None:
    pair = cfg.pairs[name.partition("/")[0] if name not in cfg.pairs else name]
    prefix = "(dry run) " if dry_run else ""
    if result.collections is None:
        echo(prefix + summary_line(result, pair.a, pair.b))
        for err in result.errors:
            echo(f"  error: {err}", err=True)
        return
    if result.stopped and not result.collections:  # the collections could not be listed
        echo(prefix + summary_line(result, pair.a, pair.b))
    for sub, sub_result in result.collections.items():
        echo(prefix + summary_line(sub_result, f"{pair.a}/{sub}", f"{pair.b}/{sub}"))
        for err in sub_result.errors:
            echo(f"  error: {err}", err=True)


def _through_daemon(
    obj: dict[str, Any], cfg: Any, names: list[str], *, force: bool, dry_run: bool, mode: str
) -> dict[str, SyncResult] | None:
    """Ask the running daemon to sync (it serializes with its own runs); None: no daemon.

    A collection's own sub-pair (``PAIR/NAME``: a confirmed deletion, say) runs in
    this process, under the same lock the daemon's runs of it take."""
    if any(n not in cfg.pairs for n in names):
        return None
    client = daemon_client(obj, cfg)
    if client is None:
        return None
    from calsync.gateway.client import DaemonError, result_from_json

    try:
        answer = client.sync(names, force=force, dry_run=dry_run, mode=mode)
    except DaemonError as e:
        echo(f"calsync: warning: {e}; syncing without it", err=True)
        return None
    finally:
        client.close()
    details = answer.get("details", {})
    return {
        name: result_from_json(name, answer["pairs"][name], details.get(name, {})) for name in names
    }
