"""Running a configured pair: lock, status, history, engine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from calsync.config import Config
from calsync.stores import StoreError
from calsync.sync.lock import Busy, pair_lock

if TYPE_CHECKING:
    from calsync.sync.engine import Progress, SyncResult

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
) -> SyncResult:
    """Sync one configured pair once.

    The stores may start listing (in helpers, see ``Store.expect_list``) before
    the engine is even loaded: a one-shot sync spends that time importing it.
    """
    pair = cfg.pairs[name]
    state = cfg.state_dir
    try:
        with pair_lock(state / "locks" / f"{name}.lock", wait=wait):
            try:
                a = cfg.store(pair.a)
                b = cfg.store(pair.b)
            except StoreError as e:
                from calsync.sync.engine import SyncResult

                return SyncResult(name, stopped=str(e))
            a.expect_list()
            b.expect_list()
            from calsync.sync.engine import Engine, PairOptions, SyncResult
            from calsync.sync.history import History
            from calsync.sync.status import StatusDB

            status = StatusDB(status_file(cfg, name))
            history = History(history_file(cfg))
            try:
                options = PairOptions(
                    name=name,
                    conflict=pair.conflict,
                    merge_fallback=pair.merge_fallback,
                    on_empty=pair.on_empty,
                    max_delete=pair.max_delete,
                )
                engine = Engine(
                    options,
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
                if not dry_run:
                    last = float(status.get_meta("history_pruned") or 0)
                    if time.time() - last > 86400:  # once a day is plenty
                        history.prune(cfg.retention_days)
                        status.set_meta("history_pruned", str(time.time()))
                    status.set_meta("last_run", str(time.time()))
                    status.set_meta("last_result", json.dumps(result.to_json()))
                return result
            finally:
                a.close()
                b.close()
                status.close()
                history.close()
    except Busy:
        from calsync.sync.engine import SyncResult

        return SyncResult(name, stopped=BUSY)


def status_file(cfg: Config, pair: str) -> Path:
    return cfg.state_dir / "pairs" / f"{pair}.sqlite"


def history_file(cfg: Config) -> Path:
    return cfg.state_dir / "history.sqlite"
