"""Running a configured pair: lock, status, history, engine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from calsync.config import Config
from calsync.stores import StoreError
from calsync.sync.lock import Busy, pair_lock

if TYPE_CHECKING:
    from calsync.sync.engine import Progress, SyncResult
    from calsync.sync.status import StatusDB

BUSY = "another calsync is syncing this pair right now"


def run_pair(
    cfg: Config,
    name: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    wait: float = 0.0,
    mode: str = "two-way",
    cancel: Callable[[], bool] | None = None,
    hints: tuple[object, object] | None = None,
) -> SyncResult:
    """Sync one configured pair once.

    ``hints``: what a collection's root listing learnt about side a's and b's
    collection (``Store.take_hint``).  The stores may start listing (in helpers,
    see ``Store.expect_list``) before the engine is even loaded: a one-shot sync
    spends that time importing it.
    """
    pair = cfg.pairs.get(name)
    if pair is None or pair.collections is not None:  # PAIR or PAIR/NAME: collections
        from calsync.sync.collections import run_collections

        return run_collections(
            cfg,
            name,
            run=run_pair,
            force=force,
            dry_run=dry_run,
            progress=progress,
            wait=wait,
            mode=mode,
            cancel=cancel,
        )
    try:
        with pair_lock(lock_file(cfg, name), wait=wait), ExitStack() as stack:
            try:
                a = cfg.store(pair.a)
                b = cfg.store(pair.b)
            except StoreError as e:
                return _stopped(name, str(e))
            if hints is not None:
                a.take_hint(hints[0])
                b.take_hint(hints[1])
            for store in (a, b):  # closed however this ends: a listing helper is reaped
                stack.callback(store.close)
                store.expect_list()
            from calsync.sync.engine import Engine, PairOptions
            from calsync.sync.history import History
            from calsync.sync.status import StatusDB

            status = StatusDB(status_file(cfg, name))
            stack.callback(status.close)
            history = History(history_file(cfg))
            stack.callback(history.close)
            engine = Engine(
                PairOptions.of(name, pair),
                a,
                b,
                status,
                history,
                force=force,
                dry_run=dry_run,
                progress=progress,
                mode=mode,
                cancel=cancel,
            )
            result = engine.run()
            if pair.metadata and not result.stopped:
                from calsync.sync.metadata import sync_metadata

                sync_metadata(pair, a, b, status, result, dry_run=dry_run)
            if not dry_run:
                last = float(status.get_meta("history_pruned") or 0)
                if time.time() - last > 86400:  # once a day is plenty
                    history.prune(cfg.retention_days)
                    status.set_meta("history_pruned", str(time.time()))
                status.set_meta("last_run", str(time.time()))
                status.set_meta("last_result", json.dumps(result.to_json()))
                log_run(status, result)
            return result
    except Busy:
        return _stopped(name, BUSY)


def log_run(status: StatusDB, result: SyncResult) -> None:
    """Add a finished run to the pair's runs log (``StatusDB.record_run``)."""
    from calsync.sync.status import RUN_ERRORS, RUN_OK, RUN_STOPPED

    outcome = RUN_STOPPED if result.stopped else RUN_ERRORS if result.errors else RUN_OK
    status.record_run(
        time.time(), result.seconds, result.changes, result.conflicts, len(result.errors), outcome
    )


def _stopped(name: str, why: str) -> SyncResult:
    """A result for a pair that did not sync (the engine is loaded only for it)."""
    from calsync.sync.engine import SyncResult

    return SyncResult(name, stopped=why)


def _file_name(pair: str) -> str:
    """A pair's name as a relative file path: a collection's sub-pair ``PAIR/NAME``
    is ``PAIR/<NAME, made safe>`` (a plain pair's name is used as it is)."""
    if "/" not in pair:
        return pair
    from calsync.sync.collections import file_key

    head, _, name = pair.rpartition("/")
    return f"{head}/{file_key(name)}"


def status_file(cfg: Config, pair: str) -> Path:
    return cfg.state_dir / "pairs" / f"{_file_name(pair)}.sqlite"


def lock_file(cfg: Config, pair: str) -> Path:
    return cfg.state_dir / "locks" / f"{_file_name(pair)}.lock"


def history_file(cfg: Config) -> Path:
    return cfg.state_dir / "history.sqlite"
