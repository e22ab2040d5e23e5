"""Watching local stores: a changed file runs the pairs of its store within ~1 s.

What is watched (watchdog; inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW
on Windows), per store type:

* ``vdir``: its directory (item files with its extension; not dot-files, so
  calsync's temporary ``.calsync-*.tmp`` files are invisible);
* ``ics`` and any other store with a local ``path`` (a future ``vcs`` file):
  the file, through its directory;
* ``thunderbird``: the calendar database and its ``-wal`` (Thunderbird wrote),
  and the profile's lock files; Thunderbird quitting (the lock going away,
  also polled each second: an fcntl lock vanishes without a file event) runs
  the pairs so changes queued while it ran are written;
* remote stores (CalDAV): nothing; the schedule polls them, and a quiet
  CalDAV sync is one ctag request.

Bursts are debounced: the pairs run ``QUIET`` s after the last event, at most
``MAX_DELAY`` s after the first.  calsync's own writes come back as events
too; the scheduler turns those into one follow-up run that finds nothing to
do and writes nothing, so it settles (see ``scheduler``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calsync.config import Config
from calsync.gateway.logs import event

log = logging.getLogger("calsync.gateway.watch")

QUIET = 0.3
MAX_DELAY = 1.0
POLL = 1.0  # Thunderbird running checks, and retries of directories that did not exist
LOCK_NAMES = frozenset({"lock", ".parentlock", "parent.lock"})


@dataclass(frozen=True)
class Target:
    """Files of ``store`` in ``directory``: those in ``names``, or all with ``suffix``."""

    store: str
    directory: Path
    names: frozenset[str] | None = None
    suffix: str | None = None
    kind: str = "data"  # data | lock

    def matches(self, name: str) -> bool:
        if self.names is not None:
            return name in self.names
        if name.startswith("."):
            return False
        return self.suffix is None or name.endswith(self.suffix)


def targets_for(cfg: Config, store: str) -> tuple[list[Target], Path | None]:
    """What to watch for ``store``, and the Thunderbird profile it lives in (if any)."""
    from calsync.stores._files import expand_path

    section = cfg.stores[store]
    kind = section.get("type")
    if kind == "thunderbird":
        return _thunderbird_targets(cfg, store)
    path_value = section.get("path")
    if not isinstance(path_value, str):
        return [], None  # a remote store: polled by the schedule
    path = Path(os.path.realpath(expand_path(path_value, cfg.base_dir)))
    if kind == "vdir" or (kind != "ics" and path.is_dir()):
        return [Target(store, path, suffix=section.get("fileext", ".ics"))], None
    return [Target(store, path.parent, names=frozenset({path.name}))], None


def _thunderbird_targets(cfg: Config, store: str) -> tuple[list[Target], Path | None]:
    from calsync.stores.thunderbird import profiles
    from calsync.stores.thunderbird.prefs import CalendarNotFound, find_calendar
    from calsync.stores.thunderbird.store import database_path

    section = cfg.stores[store]
    try:
        profile = profiles.resolve(str(section.get("profile", "default")), base=cfg.base_dir)
        calendar = find_calendar(profile, str(section["calendar"]))
    except (profiles.ProfileNotFound, CalendarNotFound, OSError) as e:
        event(log, "watch.skip", logging.WARNING, store=store, reason=str(e))
        return [], None
    db = Path(os.path.realpath(database_path(profile, calendar)))
    profile = Path(os.path.realpath(profile))
    return [
        Target(store, db.parent, names=frozenset({db.name, db.name + "-wal"})),
        Target(store, profile, names=LOCK_NAMES, kind="lock"),
    ], profile


class Watcher:
    """Watches every local store of the configuration; calls ``on_change(store, reason)``."""

    def __init__(
        self,
        cfg: Config,
        on_change: Callable[[str, str], None],
        *,
        stores: list[str] | None = None,
        quiet: float = QUIET,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.on_change = on_change
        self.quiet = quiet
        self.max_delay = max_delay
        self.targets: list[Target] = []
        self.profiles: dict[str, Path] = {}  # thunderbird store -> profile
        names = (
            stores
            if stores is not None
            else sorted({s for p in cfg.pairs.values() for s in (p.a, p.b)})
        )
        for store in names:
            targets, profile = targets_for(cfg, store)
            self.targets += targets
            if profile is not None:
                self.profiles[store] = profile
        self.tb_running: dict[str, bool] = {}
        self._pending: dict[str, tuple[float, float]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._watched: set[Path] = set()
        self._observer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        from watchdog.observers import Observer

        self._loop = asyncio.get_running_loop()
        self._observer = Observer()
        self._observer.daemon = True
        self._schedule_dirs()
        self._observer.start()
        for store, profile in self.profiles.items():
            self.tb_running[store] = self._running(profile)
        self._poller = asyncio.create_task(self._poll(), name="calsync-watch-poll")
        event(
            log,
            "watch.start",
            dirs=sorted(str(d) for d in self._watched),
            thunderbird={s: self.tb_running[s] for s in self.profiles},
        )

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        if self._observer is not None:
            self._observer.stop()
            await asyncio.to_thread(self._observer.join, 5)

    def _schedule_dirs(self) -> None:
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, ev: Any) -> None:
                watcher._event(ev)

        for directory in sorted({t.directory for t in self.targets} - self._watched):
            if not directory.is_dir():
                continue
            try:
                self._observer.schedule(Handler(), str(directory), recursive=False)
            except OSError as e:
                event(log, "watch.skip", logging.WARNING, dir=str(directory), reason=str(e))
                continue
            self._watched.add(directory)

    # -- events (watchdog's thread) ---------------------------------------------------------------

    def _event(self, ev: Any) -> None:
        if ev.event_type not in ("created", "modified", "deleted", "moved", "closed"):
            return  # opened, closed_no_write: someone read a file
        if ev.is_directory:
            return
        paths = [ev.src_path, getattr(ev, "dest_path", "")]
        hits: set[tuple[str, str]] = set()
        for raw in paths:
            if not raw:
                continue
            text = os.fsdecode(raw)
            directory, name = Path(os.path.dirname(text)), os.path.basename(text)
            for t in self.targets:
                if t.directory == directory and t.matches(name):
                    hits.add((t.store, t.kind))
        loop = self._loop
        if not hits or loop is None or loop.is_closed():
            return
        for store, kind in hits:
            loop.call_soon_threadsafe(self._touch, store, kind)

    # -- debouncing (the event loop) ---------------------------------------------------------------

    def _touch(self, store: str, kind: str) -> None:
        if kind == "lock":
            self._check_thunderbird(store)
            return
        assert self._loop is not None
        now = self._loop.time()
        first, _ = self._pending.get(store, (now, now))
        self._pending[store] = (first, now)
        old = self._timers.pop(store, None)
        if old is not None:
            old.cancel()
        fire_at = min(now + self.quiet, first + self.max_delay)
        self._timers[store] = self._loop.call_at(fire_at, self._fire, store)

    def _fire(self, store: str) -> None:
        self._timers.pop(store, None)
        self._pending.pop(store, None)
        self.on_change(store, "file changed")

    # -- Thunderbird ---------------------------------------------------------------------------

    @staticmethod
    def _running(profile: Path) -> bool:
        from calsync.stores.thunderbird.running import running

        try:
            return running(profile) is not None
        except OSError:
            return False

    def _check_thunderbird(self, store: str) -> None:
        profile = self.profiles.get(store)
        if profile is None:
            return
        now = self._running(profile)
        before = self.tb_running.get(store, False)
        self.tb_running[store] = now
        if before and not now:
            event(log, "thunderbird.quit", store=store, profile=str(profile))
            self.on_change(store, "Thunderbird quit")
        elif now and not before:
            event(log, "thunderbird.started", store=store, profile=str(profile))

    async def _poll(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(POLL)
            n += 1
            for store in self.profiles:
                self._check_thunderbird(store)
            if n % 5 == 0 and {t.directory for t in self.targets} - self._watched:
                self._schedule_dirs()
