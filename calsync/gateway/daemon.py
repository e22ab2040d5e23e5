"""The daemon feature of the gateway: scheduler + watchers + control API, one lifecycle.

``Daemon`` is a gateway feature (``app.Feature``): its routes are the control
API mounted at ``/api`` behind the bearer token, its startup starts the
scheduler and the watchers and writes the runtime file command-line runs find
it by, its shutdown stops them in the safe order (no new runs, running ones
stop at a safe point, then the runtime file goes).  ``store_changed`` is the
hook device endpoints call (SyncML now, CalDAV later): thread-safe.

Signals: uvicorn turns SIGTERM/SIGINT into a graceful shutdown, but it waits
for open requests first (a ``wait: true`` sync request could hold it for a
whole sync); so the daemon also hooks those signals to tell running engines
to stop at their next safe point straight away.

SIGHUP reloads the configuration (``systemctl reload``): the new file is
checked first -- a broken one is refused with its error logged, and the daemon
runs on as it was.  A good one stops the daemon exactly as SIGTERM would
(running syncs stop at a safe point) and ``calsync serve`` then executes itself
again in the same process (same PID, same arguments), so everything --
pairs, stores, device accounts, where it listens -- comes from the new file,
with no half-updated state to reason about.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from calsync.config import Config
from calsync.gateway import runtime
from calsync.gateway.api import ControlAPI
from calsync.gateway.auth import BearerAuth, ensure_token, token_path
from calsync.gateway.authz import OWNER, Scope, account_stores
from calsync.gateway.logins import FailureThrottle
from calsync.gateway.logs import event
from calsync.gateway.pairing import PairingService
from calsync.gateway.scheduler import Runner, Scheduler
from calsync.gateway.watch import Watcher
from calsync.sync.runner import history_file, run_pair

log = logging.getLogger("calsync.gateway.daemon")


async def _to_api(request: Request) -> Response:
    """``/api`` -> ``/api/``, relative: a Location never names a host a client made up."""
    root = request.scope.get("root_path", "")
    return Response(status_code=307, headers={"location": f"{root}/api/"})


class Daemon:
    """Hands-off syncing for one configuration (see module docstring)."""

    def __init__(
        self,
        cfg: Config,
        *,
        url: str,
        config_path: Path | None,
        watch: bool | None = None,
        runner: Runner = run_pair,
        insecure_config: bool = False,
    ) -> None:
        """``insecure_config``: a configuration file holding passwords may be
        readable by others (``--insecure-config``; a reload keeps the rule)."""
        self.cfg = cfg
        self.insecure_config = insecure_config
        self.url = url
        self.config_path = config_path
        self.scheduler = Scheduler(cfg, runner=runner)
        if watch is None:
            watch = bool(cfg.section("server").get("watch", True))
        self.watcher = Watcher(cfg, self.scheduler.store_changed) if watch and cfg.pairs else None
        self.token_file = token_path(cfg)
        self.token = ensure_token(self.token_file)
        self.api = ControlAPI(self)
        gate = BearerAuth(
            self.api,
            self.token,
            remote=bool(cfg.section("server").get("api_remote", False)),
            limiter=FailureThrottle(),
            open_paths=frozenset({"/identify"}),
        )
        self.routes: list[BaseRoute] = [
            Route("/api", _to_api),  # starlette's own redirect would copy the Host header
            Mount("/api", app=gate),
        ]
        # other features' devices (the CalDAV clients seen...): callables, read in a thread
        self.device_sources: list[Callable[[], list[dict[str, Any]]]] = []
        # pairing phones (set by whoever serves us: it knows where phones reach the
        # gateway); the control API's /pair and /devices and the web page use it
        self.pairing: PairingService | None = None
        self.started: float | None = None
        self.reload_requested = False  # serve executes itself again after the shutdown
        self.stop_serving: Callable[[], None] | None = None  # set by whoever serves us
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def startup(self) -> None:
        self.started = time.time()
        self._loop = asyncio.get_running_loop()
        self._hook_signals()
        await self.scheduler.start()
        if self.watcher is not None:
            await self.watcher.start()
        runtime.write(
            self.cfg.state_dir, url=self.url, token_file=self.token_file, config=self.config_path
        )
        event(
            log,
            "daemon.start",
            pid=os.getpid(),
            api=self.url + "/api/",
            pairs=list(self.cfg.pairs),
            config=str(self.config_path) if self.config_path else "embedded default",
        )

    async def shutdown(self) -> None:
        event(log, "daemon.stopping")
        runtime.remove(self.cfg.state_dir)
        if self.watcher is not None:
            await self.watcher.stop()
        await self.scheduler.stop()
        event(log, "daemon.stopped")

    def _hook_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # in-process test servers: no signals
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.scheduler.begin_shutdown()
                previous(signum, frame)

            signal.signal(sig, handler)
        if hasattr(signal, "SIGHUP"):  # not on Windows
            signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, signum: int, frame: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.reload)

    def reload(self) -> None:
        """Check the configuration file again; if it is good, stop for a fresh start."""
        if self.reload_requested:
            return
        problem = self._check_config()
        if problem is not None:
            event(log, "daemon.reload_refused", logging.ERROR, error=problem)
            return
        if self.stop_serving is None:
            event(log, "daemon.reload_refused", logging.ERROR, error="not served by calsync serve")
            return
        event(log, "daemon.reloading", config=str(self.config_path or "embedded default"))
        self.reload_requested = True
        self.scheduler.begin_shutdown()
        self.stop_serving()

    def _check_config(self) -> str | None:
        """What is wrong with the configuration file now (None: good to use)."""
        if self.config_path is None:
            return None  # the embedded default is built afresh at each start
        from calsync import config
        from calsync.gateway.app import check_features
        from calsync.gateway.server import listen_options

        try:
            cfg = config.load(self.config_path)
            if cfg.exposed is not None and not self.insecure_config:
                return cfg.exposed  # calsync serve would refuse it after the restart
            listen_options(cfg)
            check_features(cfg)  # device accounts and their passwords resolve
        except config.ConfigError as e:
            return str(e)
        return None

    # -- hooks ------------------------------------------------------------------------------

    def attach(self, features: list[Any]) -> None:
        """Learn about the other features served with the daemon: those with a
        ``devices()`` (CalDAV: its clients) add to the status's ``clients``."""
        for feature in features:
            source = getattr(feature, "devices", None)
            if feature is not self and callable(source):
                self.device_sources.append(source)

    def store_changed(self, store: str, reason: str) -> None:
        """A device session (or anything else) changed ``store``: run its pairs (any thread)."""
        self.scheduler.store_changed_threadsafe(store, reason)

    # -- what the API reads ---------------------------------------------------------------------

    def info(self, requests: int) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("calsync")
        except PackageNotFoundError:
            ver = "0"
        return {
            "pid": os.getpid(),
            "version": ver,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started or 0)),
            "url": self.url,
            "config": str(self.config_path) if self.config_path else None,
            "requests": requests,
            "watching": sorted(str(d) for d in self.watcher._watched) if self.watcher else [],
            "stopping": self.scheduler.stopping,
        }

    async def snapshot(self, requests: int) -> dict[str, Any]:
        """Everything ``GET /api/status`` answers (the web page shows the same)."""
        pairs = await self.pairs_status()
        devices, clients, paired = await anyio.to_thread.run_sync(self._devices)
        return {
            "pairs": pairs,
            "devices": devices,
            "clients": clients,
            "paired": paired,
            "daemon": self.info(requests),
        }

    def _devices(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """SyncML devices (each datastore, with its store and pairs), the other
        features' clients (``device_sources``), with their pairs, and the paired
        devices (their app passwords), with their account's stores and pairs."""
        from calsync.gateway.api import devices

        accounts = self.cfg.section("syncml").get("accounts", {})
        synced = []
        for dev in devices(self.cfg.state_dir):
            store = (accounts.get(dev["account"]) or {}).get(dev["datastore"])
            stores = [store] if isinstance(store, str) else []
            synced.append({**dev, "protocol": "syncml", **self._pairs_of(stores)})
        clients = [
            {**client, **self._pairs_of(client.get("stores", []))}
            for source in self.device_sources
            for client in source()
        ]
        paired = [
            {**device.to_json(), **self._pairs_of(account_stores(self.cfg, device.account))}
            for device in (self.pairing.devices() if self.pairing is not None else [])
        ]
        return synced, clients, paired

    def _pairs_of(self, stores: list[str]) -> dict[str, Any]:
        pairs = [p for store in stores for p in self.cfg.pairs_of_store(store)]
        return {"stores": list(stores), "pairs": list(dict.fromkeys(pairs))}

    async def pairs_status(self) -> dict[str, Any]:
        from calsync.cli.status import pair_status

        schedule = {name: self.scheduler.pair_json(name) for name in self.cfg.pairs}

        def read() -> dict[str, Any]:
            return {
                name: {**pair_status(self.cfg, name), "daemon": schedule[name]}
                for name in self.cfg.pairs
            }

        return await anyio.to_thread.run_sync(read)

    # Each of these answers only what ``scope`` sees (``authz``; the control API is
    # the owner's): anything else is answered as missing.

    def conflicts(self, limit: int, scope: Scope = OWNER) -> list[dict[str, Any]]:
        from calsync.sync.history import History

        h = History(history_file(self.cfg))
        try:
            return h.conflicts(limit, where=None if scope.owner else scope.sees_conflict)
        finally:
            h.close()

    def conflict(self, n: int, scope: Scope = OWNER) -> dict[str, Any] | None:
        """Conflict ``n`` with both versions and the properties they hold differently."""
        from calsync.items import Item, ItemError
        from calsync.items.diff import property_diff
        from calsync.sync.history import SIDE_A, SIDE_B, History

        h = History(history_file(self.cfg))
        try:
            found = h.conflict(n)
        finally:
            h.close()
        if found is None or not scope.sees_conflict(found["pair"]):
            return None
        sides = found["sides"]
        found["differences"] = None  # unknown: versions not logged, or unreadable
        if SIDE_A in sides and SIDE_B in sides:
            try:
                a, b = (
                    Item.from_bytes(sides[s]["content"].encode("utf-8")) for s in (SIDE_A, SIDE_B)
                )
                found["differences"] = [d.to_json() for d in property_diff(a, b)]
            except ItemError as e:
                found["differences_error"] = str(e)
        return found

    def history(self, uid: str | None, limit: int, scope: Scope = OWNER) -> list[dict[str, Any]]:
        from calsync.sync.history import History

        h = History(history_file(self.cfg))
        try:
            where = None if scope.owner else scope.sees_version
            return [v.to_json() for v in h.versions(uid, limit=limit, where=where)]
        finally:
            h.close()

    async def restore(
        self, uid: str, number: int | None, to: str | None, scope: Scope = OWNER
    ) -> tuple[int, str]:
        """Restore a saved version, with the target store kept free of runs meanwhile.

        LookupError: no such version (in ``scope``), or ``to`` is not a store of
        ``scope``; RuntimeError: the store changed meanwhile.
        """
        from calsync.items import ItemError
        from calsync.stores import StoreError
        from calsync.sync.history import History
        from calsync.sync.restore import NothingSaved, RestoreError
        from calsync.sync.restore import restore as do_restore

        def target() -> tuple[int, str] | None:
            h = History(history_file(self.cfg))
            try:
                where = None if scope.owner else scope.sees_version
                found = [v for v in h.versions(uid, where=where) if number is None or v.n == number]
            finally:
                h.close()
            return (found[0].n, to or found[0].store) if found else None

        found = await anyio.to_thread.run_sync(target)
        if found is None:
            raise LookupError(
                f"no saved version {number} of {uid}" if number else f"no saved version of {uid}"
            )
        chosen, store = found  # the newest one scope sees, when no number was given
        if not scope.sees_store(store):
            raise LookupError(f"no store named {store!r}")
        async with self.scheduler.holding({store}):
            try:
                version, where = await anyio.to_thread.run_sync(
                    do_restore, self.cfg, uid, chosen, to
                )
            except NothingSaved as e:
                raise LookupError(str(e)) from None
            except RestoreError as e:
                raise RuntimeError(str(e)) from None
            except (StoreError, ItemError) as e:
                raise RuntimeError(str(e)) from None
        event(log, "restore", uid=uid, version=version.n, store=where)
        self.scheduler.store_changed(where, "restore")
        return version.n, where

    async def resolve(self, n: int, keep: str, scope: Scope = OWNER) -> list[str]:
        """Decide conflict ``n`` again (``sync.resolve``), its stores kept free of runs
        meanwhile; then their pairs run.  Returns the stores written.

        LookupError: no such conflict (or no versions of it); RuntimeError: a store
        changed meanwhile or failed; ValueError: ``keep`` is not a, b or both.
        """
        from calsync.items import ItemError
        from calsync.stores import StoreError
        from calsync.sync.history import History
        from calsync.sync.resolve import KEEPS
        from calsync.sync.resolve import resolve as do_resolve
        from calsync.sync.restore import NothingSaved, RestoreError

        if keep not in KEEPS:
            raise ValueError(f"keep must be one of {', '.join(KEEPS)}")

        def stores() -> set[str] | None:
            h = History(history_file(self.cfg))
            try:
                logged = h.conflict(n)
                if logged is None or not scope.sees_conflict(logged["pair"]):
                    return None
                sides = h.conflict_sides(n)
            finally:
                h.close()
            return {store for store, _ in sides.values() if store in self.cfg.stores}

        involved = await anyio.to_thread.run_sync(stores)
        if involved is None:
            raise LookupError(f"no conflict number {n}")  # as sync.resolve says it
        try:
            async with self.scheduler.holding(involved):
                done = await anyio.to_thread.run_sync(do_resolve, self.cfg, n, keep)
        except NothingSaved as e:
            raise LookupError(str(e)) from None
        except (RestoreError, StoreError, ItemError) as e:
            for store in involved:  # a part may be written: let the syncs look
                self.scheduler.store_changed(store, "conflict decided (in part)")
            raise RuntimeError(str(e)) from None
        event(log, "conflict.resolved", conflict=n, uid=done.uid, keep=keep, stores=done.changed)
        for store in done.changed:
            self.scheduler.store_changed(store, "conflict decided")
        return done.changed
