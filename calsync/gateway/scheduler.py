"""When each pair syncs: every ``interval``, on changes, on request; one run per pair at once.

Rules (each has a test):

* every pair runs once soon after start (spread over a few seconds), then
  every ``interval`` seconds (per pair, default 300) with ±10 % jitter, so
  pairs polling the same server do not fire together;
* a failure (a store down, a guard, a crash) retries sooner, then backs off
  exponentially: 15 s, 30 s, 60 s ... capped at ``[server] backoff_max``
  (default one hour); a success resets it.  Items that failed one by one are
  not a pair failure (the pair did sync; those items are reported);
* ``trigger`` (a watched file changed, a device session wrote to a store,
  Thunderbird quit) runs the pair right away; a trigger while the pair runs
  makes it run once more afterwards, which is also how calsync's own writes
  settle: the follow-up run finds nothing to do and writes nothing;
* never two runs of one pair at once (inside the daemon by this scheduler,
  across processes by the same ``pair_lock`` the command line takes), and
  never two runs that share a store at once (their writes would race each
  other's version checks);
* a run that changed a store triggers the *other* pairs of that store, so a
  change travels hub -> Thunderbird -> ... without waiting for intervals.

Syncs are blocking I/O: they run in a small thread pool; the event loop only
decides.  Shutting down sets ``cancelled``: a running engine stops at its next
safe point (between two actions, see ``calsync.sync.engine``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from calsync.config import Config
from calsync.gateway.logs import event
from calsync.sync.engine import INTERRUPTED, SyncResult
from calsync.sync.runner import BUSY, run_pair

log = logging.getLogger("calsync.gateway.scheduler")

RETRY_MIN = 15.0  # first retry after a failure (or the interval, when shorter)
BUSY_RETRY = 10.0  # another calsync held the pair: try again this soon
STARTUP_SPREAD = 3.0  # first runs after start are spread over this many seconds
JITTER = 0.1
LOCK_WAIT = 2.0  # how long a run waits for the pair lock held by another process
WORKERS = 2

Runner = Callable[..., SyncResult]


def jittered(delay: float, rng: random.Random, fraction: float = JITTER) -> float:
    return max(0.0, delay * (1.0 + rng.uniform(-fraction, fraction)))


def backoff(interval: float, failures: int, *, backoff_max: float = 3600.0) -> float:
    """Seconds before the next run, without jitter: the interval, or the backoff."""
    if failures <= 0:
        return interval
    first = min(RETRY_MIN, interval)
    return float(min(backoff_max, first * 2 ** min(failures - 1, 30)))


@dataclass
class Options:
    """How a requested run syncs (the command line's --force, --dry-run, --mode)."""

    force: bool = False
    dry_run: bool = False
    mode: str = "two-way"


@dataclass
class Job:
    reasons: list[str]
    options: Options = field(default_factory=Options)
    waiters: list[asyncio.Future[SyncResult]] = field(default_factory=list)


@dataclass
class PairState:
    name: str
    stores: tuple[str, str]
    interval: float
    next_due: float  # on the scheduler's clock
    failures: int = 0
    running: bool = False
    again: str | None = None  # why to run once more after the current run
    jobs: list[Job] = field(default_factory=list)
    runs: int = 0
    last_trigger: str | None = None
    last_started: float | None = None  # wall clock
    last_finished: float | None = None
    last_seconds: float | None = None
    last_error: str | None = None
    last_result: dict[str, Any] | None = None


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Scheduler:
    """Decides and starts pair runs (see module docstring)."""

    def __init__(
        self,
        cfg: Config,
        *,
        runner: Runner = run_pair,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backoff_max: float | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.cfg = cfg
        self.runner = runner
        self.clock = clock
        self.wall = wall
        self.rng = rng or random.Random()
        self.backoff_max = float(
            backoff_max
            if backoff_max is not None
            else cfg.section("server").get("backoff_max", 3600)
        )
        self.workers = workers
        self.cancelled = threading.Event()
        self.stopping = False
        now = clock()
        self.pairs: dict[str, PairState] = {
            name: PairState(
                name,
                (p.a, p.b),
                float(p.interval),
                now + self.rng.uniform(0, min(STARTUP_SPREAD, float(p.interval))),
            )
            for name, p in cfg.pairs.items()
        }
        self.busy_stores: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None

    # -- decisions (synchronous, clock-driven: unit-tested with a fake clock) -------------------

    def pairs_of_store(self, store: str) -> list[str]:
        return [s.name for s in self.pairs.values() if store in s.stores]

    def trigger(self, pair: str, reason: str) -> None:
        """Run ``pair`` as soon as it is free (once more after the current run if it runs)."""
        state = self.pairs[pair]
        if state.running:
            state.again = state.again or reason
        elif state.jobs:
            state.jobs[0].reasons.append(reason)
        else:
            state.jobs.append(Job([reason]))
        self._poke()

    def store_changed(self, store: str, reason: str, *, except_pair: str | None = None) -> None:
        pairs = [p for p in self.pairs_of_store(store) if p != except_pair]
        if pairs:
            event(log, "store.changed", store=store, reason=reason, pairs=pairs)
        for pair in pairs:
            self.trigger(pair, f"{reason} ({store})")

    def store_changed_threadsafe(self, store: str, reason: str) -> None:
        """``store_changed`` from another thread (a SyncML session, a watcher)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.store_changed, store, reason)

    def enqueue_due(self, now: float) -> list[str]:
        """Queue a scheduled run for every pair whose time has come; their names."""
        due: list[str] = []
        if self.stopping:
            return due
        for state in self.pairs.values():
            if not state.running and not state.jobs and state.next_due <= now:
                state.jobs.append(Job(["schedule"]))
                due.append(state.name)
        return due

    def ready(self) -> list[PairState]:
        """Pairs with a job that may start now (free, stores not in use), in order."""
        out: list[PairState] = []
        if self.stopping:
            return out
        busy = set(self.busy_stores)
        running = sum(1 for s in self.pairs.values() if s.running)
        for state in sorted(self.pairs.values(), key=lambda s: s.next_due):
            if running + len(out) >= self.workers:
                break
            if state.running or not state.jobs or busy.intersection(state.stores):
                continue
            out.append(state)
            busy.update(state.stores)
        return out

    def next_wakeup(self, now: float) -> float:
        """Seconds until the next scheduled run (when nothing else wakes us)."""
        waiting = [s.next_due - now for s in self.pairs.values() if not s.running and not s.jobs]
        return max(0.0, min(waiting, default=60.0))

    def begin(self, state: PairState) -> Job:
        job = state.jobs.pop(0)
        state.running = True
        state.runs += 1
        state.last_trigger = ", ".join(dict.fromkeys(job.reasons))
        state.last_started = self.wall()
        self.busy_stores.update(state.stores)
        return job

    def finish(
        self,
        state: PairState,
        result: SyncResult | None,
        error: str | None,
        *,
        dry_run: bool = False,
    ) -> str:
        """Book a run's outcome and schedule the next; returns its kind (ok, failed, busy...)."""
        state.running = False
        self.busy_stores.difference_update(state.stores)
        if dry_run:  # changed nothing: the schedule and the pair's record stay as they were
            if state.again and not self.stopping:
                state.jobs.append(Job([f"changed while syncing: {state.again}"]))
            state.again = None
            return "dry-run"
        state.last_finished = self.wall()
        now = self.clock()
        if result is not None:
            state.last_result = result.to_json()
            state.last_seconds = round(result.seconds, 3)
        if error is None and result is not None and result.stopped:
            error = result.stopped
        if error is not None and error.startswith(INTERRUPTED):
            kind = "interrupted"
            state.last_error = error
        elif error == BUSY:
            kind = "busy"
            state.last_error = error
        elif error is not None:
            kind = "failed"
            state.failures += 1
            state.last_error = error
        else:
            kind = "ok"
            state.failures = 0
            state.last_error = None
        if kind == "busy":
            delay = BUSY_RETRY
        else:
            delay = backoff(state.interval, state.failures, backoff_max=self.backoff_max)
        state.next_due = now + jittered(delay, self.rng)
        if state.again and not self.stopping:
            state.jobs.append(Job([f"changed while syncing: {state.again}"]))
        state.again = None
        return kind

    # -- running --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="calsync-sync")
        self._main = asyncio.create_task(self._run_loop(), name="calsync-scheduler")
        event(
            log,
            "scheduler.start",
            pairs={s.name: s.interval for s in self.pairs.values()},
        )

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run_loop(self) -> None:
        assert self._wake is not None
        while not self.stopping:
            now = self.clock()
            self.enqueue_due(now)
            for state in self.ready():
                job = self.begin(state)
                task = asyncio.create_task(self._run(state, job), name=f"sync-{state.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            timeout = min(self.next_wakeup(self.clock()), 60.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _run(self, state: PairState, job: Job) -> None:
        loop = asyncio.get_running_loop()
        opts = job.options
        event(
            log,
            "sync.start",
            pair=state.name,
            a=state.stores[0],
            b=state.stores[1],
            trigger=state.last_trigger,
            **({"mode": opts.mode} if opts.mode != "two-way" else {}),
            **({"dry_run": True} if opts.dry_run else {}),
            **({"force": True} if opts.force else {}),
        )
        call = functools.partial(
            self.runner,
            self.cfg,
            state.name,
            force=opts.force,
            dry_run=opts.dry_run,
            mode=opts.mode,
            wait=LOCK_WAIT,
            cancel=self.cancelled.is_set,
        )
        result: SyncResult | None = None
        error: str | None = None
        try:
            result = await loop.run_in_executor(self._executor, call)
        except Exception as e:  # a bug or an unexpected environment problem: logged, retried
            log.exception("pair %s: sync crashed", state.name)
            error = f"{type(e).__name__}: {e}"
            result = SyncResult(state.name, stopped=error)
        kind = self.finish(state, result, error, dry_run=opts.dry_run)
        self._log_result(state, result, kind)
        for waiter in job.waiters:
            if not waiter.done():
                waiter.set_result(result)
        if not opts.dry_run and kind in ("ok", "interrupted"):
            for side, store in zip(("a", "b"), state.stores, strict=True):
                counts = (getattr(result, f"{w}_{side}") for w in ("added", "updated", "deleted"))
                if any(counts):
                    self.store_changed(store, f"pair {state.name} wrote", except_pair=state.name)
        self._poke()

    def _log_result(self, state: PairState, result: SyncResult, kind: str) -> None:
        fields: dict[str, Any] = {
            "pair": state.name,
            "outcome": kind,
            "seconds": round(result.seconds, 3),
            **{k: v for k, v in result.to_json().items() if k not in ("errors", "stopped") and v},
            "next_in": round(max(0.0, state.next_due - self.clock()), 1),
        }
        if result.errors:
            fields["errors"] = len(result.errors)
        if result.stopped:
            fields["stopped"] = result.stopped
        if kind == "failed":
            fields["failures"] = state.failures
        level = logging.WARNING if kind == "failed" else logging.INFO
        event(log, "sync.done", level, **fields)
        for err in result.errors:
            event(
                log,
                "sync.item_error",
                logging.WARNING,
                pair=state.name,
                store=err.store,
                uid=err.uid,
                id=err.id,
                message=err.message,
            )

    def request(
        self, pairs: list[str], options: Options, reason: str
    ) -> list[asyncio.Future[SyncResult]]:
        """Queue a run of each pair with ``options``; futures resolve with the results."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[SyncResult]] = []
        for name in pairs:
            state = self.pairs[name]
            fut: asyncio.Future[SyncResult] = loop.create_future()
            queued = next((j for j in state.jobs if j.options == options), None)
            if queued is None:
                queued = Job([reason], options)
                state.jobs.append(queued)
            else:
                queued.reasons.append(reason)
            queued.waiters.append(fut)
            futures.append(fut)
        self._poke()
        return futures

    async def stop(self) -> None:
        """Stop scheduling; let running syncs reach a safe point; fail queued requests."""
        self.stopping = True
        self.cancelled.set()
        self._poke()
        running = [s.name for s in self.pairs.values() if s.running]
        event(log, "scheduler.stop", running=running)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._main is not None:
            self._main.cancel()
            try:
                await self._main
            except asyncio.CancelledError:
                pass
        self._drop_queued()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def begin_shutdown(self) -> None:
        """From a signal handler: running engines stop at their next safe point.

        Requests not started yet are answered at once (from the loop, not from
        the handler), so the server's graceful shutdown does not wait for them.
        """
        self.cancelled.set()
        self.stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._drop_queued)

    def _drop_queued(self) -> None:
        for state in self.pairs.values():
            for job in state.jobs:
                for waiter in job.waiters:
                    if not waiter.done():
                        waiter.set_result(
                            SyncResult(state.name, stopped=f"{INTERRUPTED}: not started")
                        )
            state.jobs.clear()
            state.again = None
        self._poke()

    @asynccontextmanager
    async def holding(self, stores: set[str]) -> AsyncIterator[None]:
        """Keep runs off ``stores`` while the caller writes to them (a restore)."""
        while self.busy_stores.intersection(stores):
            await asyncio.sleep(0.05)
        self.busy_stores.update(stores)
        try:
            yield
        finally:
            self.busy_stores.difference_update(stores)
            self._poke()

    # -- reporting --------------------------------------------------------------------------------

    def pair_json(self, name: str) -> dict[str, Any]:
        state = self.pairs[name]
        now = self.clock()
        queued = bool(state.jobs) or state.again is not None
        return {
            "running": state.running,
            "queued": queued,
            "next_run": None
            if self.stopping
            else _iso(self.wall() + max(0.0, state.next_due - now))
            if not queued
            else _iso(self.wall()),
            "next_run_in": None if self.stopping else round(max(0.0, state.next_due - now), 1),
            "interval": state.interval,
            "failures": state.failures,
            "last_error": state.last_error,
            "last_trigger": state.last_trigger,
            "last_started": _iso(state.last_started),
            "last_finished": _iso(state.last_finished),
            "last_seconds": state.last_seconds,
            "runs": state.runs,
        }
