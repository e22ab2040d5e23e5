"""The scheduler's rules with a fake clock, and its concurrency with a real event loop."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from calsync.config import Config, parse
from calsync.gateway.scheduler import (
    BUSY_RETRY,
    RETRY_MIN,
    STARTUP_SPREAD,
    Options,
    Scheduler,
    backoff,
    jittered,
)
from calsync.sync.engine import INTERRUPTED, SyncResult
from calsync.sync.runner import BUSY


def config(tmp: Path, pairs: str, extra: str = "") -> Config:
    text = f"""
[general]
state_dir = "{tmp / "state"}"
[stores.hub]
type = "vdir"
path = "{tmp / "hub"}"
create = true
[stores.tb]
type = "vdir"
path = "{tmp / "tb"}"
create = true
[stores.file]
type = "ics"
path = "{tmp / "file.ics"}"
{pairs}
{extra}
"""
    cfg, errors = parse(text)
    assert not errors, errors
    return cfg


TWO_PAIRS = """
[pairs.one]
a = "hub"
b = "tb"
interval = 300
[pairs.two]
a = "hub"
b = "file"
interval = 60
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_is_exponential_and_capped() -> None:
    assert backoff(300, 0) == 300
    assert [backoff(300, n) for n in range(1, 6)] == [
        RETRY_MIN,
        RETRY_MIN * 2,
        RETRY_MIN * 4,
        RETRY_MIN * 8,
        RETRY_MIN * 16,
    ]
    assert backoff(300, 20, backoff_max=3600) == 3600
    assert backoff(300, 10_000, backoff_max=900) == 900  # no overflow on long outages
    assert backoff(5, 1) == 5  # a pair polled every 5 s does not retry slower than that


def test_jitter_spreads_within_ten_percent() -> None:
    rng = random.Random(7)
    values = [jittered(300, rng) for _ in range(2000)]
    assert min(values) >= 270 and max(values) <= 330
    assert max(values) - min(values) > 50, "jitter should actually spread runs"
    assert len({round(v, 3) for v in values}) > 1900


def test_schedule_with_a_fake_clock(tmp_path: Path) -> None:
    clock = Clock()
    s = Scheduler(config(tmp_path, TWO_PAIRS), clock=clock, rng=random.Random(1))
    # first runs are spread over the first seconds after start
    for state in s.pairs.values():
        assert 1000 <= state.next_due <= 1000 + STARTUP_SPREAD
    assert s.enqueue_due(1000 - 1) == []
    clock.now = 1000 + STARTUP_SPREAD
    assert sorted(s.enqueue_due(clock.now)) == ["one", "two"]
    # both pairs share the hub: only one may run at a time
    ready = s.ready()
    assert len(ready) == 1
    first = ready[0]
    s.begin(first)
    assert s.ready() == []
    s.finish(first, SyncResult(first.name), None)
    assert first.failures == 0
    assert 0.9 * first.interval <= first.next_due - clock.now <= 1.1 * first.interval
    second = s.ready()
    assert [st.name for st in second] != [first.name] and len(second) == 1

    # failures back off exponentially (with jitter), success resets
    one = s.pairs["one"]
    one.jobs.clear()
    one.running = False
    s.busy_stores.clear()
    delays = []
    for _ in range(6):
        one.running = True
        kind = s.finish(one, SyncResult("one", stopped="store tb: unreachable"), None)
        assert kind == "failed"
        delays.append(one.next_due - clock.now)
    expected = [RETRY_MIN * 2**n for n in range(6)]
    for got, want in zip(delays, expected, strict=True):
        assert 0.9 * want <= got <= 1.1 * want, (delays, expected)
    assert one.failures == 6 and one.last_error == "store tb: unreachable"
    one.running = True
    assert s.finish(one, SyncResult("one"), None) == "ok"
    assert one.failures == 0 and one.last_error is None
    assert 270 <= one.next_due - clock.now <= 330

    # the cap comes from [server] backoff_max
    capped = Scheduler(
        config(tmp_path, TWO_PAIRS, "[server]\nbackoff_max = 100\n"),
        clock=clock,
        rng=random.Random(2),
    )
    state = capped.pairs["one"]
    for _ in range(12):
        state.running = True
        capped.finish(state, None, "boom")
    assert state.next_due - clock.now <= 110

    # another process holding the pair: retried soon, not counted as a failure
    one.running = True
    assert s.finish(one, SyncResult("one", stopped=BUSY), None) == "busy"
    assert one.failures == 0 and one.next_due - clock.now <= BUSY_RETRY * 1.1
    # item errors are reported, not a pair failure (the pair synced)
    one.running = True
    partial = SyncResult("one")
    from calsync.sync.engine import ItemFailure

    partial.errors.append(ItemFailure("tb", "b", "x.ics", "x", "unparsable"))
    assert s.finish(one, partial, None) == "ok" and one.failures == 0


def test_triggers_coalesce_and_run_again_after_a_run(tmp_path: Path) -> None:
    clock = Clock()
    s = Scheduler(config(tmp_path, TWO_PAIRS), clock=clock, rng=random.Random(3))
    s.trigger("one", "file changed (tb)")
    s.trigger("one", "file changed (hub)")
    assert len(s.pairs["one"].jobs) == 1  # one run for a burst of triggers
    state = s.pairs["one"]
    s.begin(state)
    assert state.last_trigger == "file changed (tb), file changed (hub)"
    s.trigger("one", "file changed (hub)")  # while it runs (maybe its own write)
    assert state.jobs == [] and state.again
    s.finish(state, SyncResult("one"), None)
    assert len(state.jobs) == 1 and "changed while syncing" in state.jobs[0].reasons[0]
    s.begin(state)
    s.finish(state, SyncResult("one"), None)
    assert state.jobs == [], "a quiet follow-up run settles: nothing queued after it"
    # a store's change runs every pair of that store
    s.store_changed("hub", "SyncML device x")
    assert s.pairs["one"].jobs and s.pairs["two"].jobs
    s.pairs["one"].jobs.clear()
    s.pairs["two"].jobs.clear()
    s.store_changed("file", "file changed")
    assert not s.pairs["one"].jobs and s.pairs["two"].jobs


def test_interrupted_runs_are_not_failures(tmp_path: Path) -> None:
    s = Scheduler(config(tmp_path, TWO_PAIRS), clock=Clock())
    state = s.pairs["one"]
    state.running = True
    kind = s.finish(state, SyncResult("one", stopped=f"{INTERRUPTED}: 3 of 9 left"), None)
    assert kind == "interrupted" and state.failures == 0


class FakeRunner:
    """Stands in for run_pair: records overlap per pair and per store."""

    def __init__(self, cfg: Config, seconds: float = 0.15) -> None:
        self.cfg = cfg
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.stores_active: dict[str, int] = {}
        self.max_pair = 0
        self.max_store = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.writes: dict[str, str] = {}  # pair -> side it "writes" on its first run

    def __call__(self, cfg: Config, name: str, **kw: Any) -> SyncResult:
        pair = cfg.pairs[name]
        with self.lock:
            self.calls.append((name, kw))
            self.active[name] = self.active.get(name, 0) + 1
            self.max_pair = max(self.max_pair, self.active[name])
            for store in (pair.a, pair.b):
                self.stores_active[store] = self.stores_active.get(store, 0) + 1
                self.max_store = max(self.max_store, self.stores_active[store])
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                if kw["cancel"]():
                    return SyncResult(name, stopped=f"{INTERRUPTED}: stopped")
                time.sleep(0.01)
            result = SyncResult(name)
            side = self.writes.pop(name, None)
            if side:
                result.bump("added", side)
            return result
        finally:
            with self.lock:
                self.active[name] -= 1
                for store in (pair.a, pair.b):
                    self.stores_active[store] -= 1


def test_runs_in_threads_one_per_pair_and_store_and_changes_propagate(tmp_path: Path) -> None:
    cfg = config(tmp_path, TWO_PAIRS)
    runner = FakeRunner(cfg)

    async def scenario() -> None:
        s = Scheduler(cfg, runner=runner, rng=random.Random(4))
        for state in s.pairs.values():
            state.next_due = float("inf")  # only what we trigger
        await s.start()
        try:
            # a storm of triggers: never two runs of a pair, nor of pairs sharing the hub
            for _ in range(20):
                s.trigger("one", "storm")
                s.trigger("two", "storm")
                await asyncio.sleep(0.01)
            # the loop stays responsive while syncs run in threads
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            assert time.monotonic() - t0 < 0.1
            while any(st.running or st.jobs for st in s.pairs.values()):
                await asyncio.sleep(0.02)
            assert runner.max_pair == 1 and runner.max_store == 1
            assert s.pairs["one"].runs <= 4, "triggers during a run coalesce"
            # pair one writes to the hub: pair two (also on the hub) follows by itself
            before = s.pairs["two"].runs
            runner.writes["one"] = "a"
            futures = s.request(["one"], Options(), "test")
            (result,) = await asyncio.gather(*futures)
            assert result.added_a == 1
            while s.pairs["two"].runs == before or s.pairs["two"].running:
                await asyncio.sleep(0.02)
            assert s.pairs["two"].last_trigger == "pair one wrote (hub)"
            # options of a request reach the runner
            futures = s.request(["two"], Options(dry_run=True, mode="slow"), "test")
            await asyncio.gather(*futures)
            name, kw = runner.calls[-1]
            assert name == "two" and kw["dry_run"] and kw["mode"] == "slow"
            # shutting down: a running sync is told to stop; queued requests get an answer
            runner.seconds = 5
            running = s.request(["one"], Options(), "test")
            await asyncio.sleep(0.1)
            queued = s.request(["one"], Options(force=True), "test")
        finally:
            t0 = time.monotonic()
            await s.stop()
        assert time.monotonic() - t0 < 2, "the running sync did not stop at a safe point"
        assert (await running[0]).stopped.startswith(INTERRUPTED)  # type: ignore[union-attr]
        assert (await queued[0]).stopped == f"{INTERRUPTED}: not started"

    asyncio.run(scenario())


@pytest.mark.parametrize("crash", [True, False])
def test_a_crashing_run_is_a_failure_and_is_retried(tmp_path: Path, crash: bool) -> None:
    cfg = config(tmp_path, TWO_PAIRS)

    def runner(cfg: Config, name: str, **kw: Any) -> SyncResult:
        if crash:
            raise RuntimeError("disk on fire")
        return SyncResult(name, stopped="store tb: gone")

    async def scenario() -> None:
        s = Scheduler(cfg, runner=runner, rng=random.Random(5))
        s.pairs["two"].next_due = float("inf")
        s.pairs["one"].next_due = 0
        await s.start()
        try:
            while s.pairs["one"].failures == 0:
                await asyncio.sleep(0.02)
        finally:
            await s.stop()
        state = s.pairs["one"]
        assert state.failures == 1
        assert ("disk on fire" if crash else "gone") in (state.last_error or "")
        assert s.pair_json("one")["failures"] == 1

    asyncio.run(scenario())
