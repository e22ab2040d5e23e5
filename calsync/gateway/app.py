"""The ASGI application factory: routes come from feature modules.

A feature is anything with ``routes`` (starlette routes) and optional
``startup()``/``shutdown()`` hooks.  ``create_app`` composes any number of
them, so the daemon (scheduler, watchers, control API) adds its own without
touching the SyncML endpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from calsync.config import Config


class Feature(Protocol):
    routes: list[BaseRoute]

    def startup(self) -> Awaitable[None] | None: ...

    def shutdown(self) -> Awaitable[None] | None: ...


def create_app(features: Sequence[Feature]) -> Starlette:
    """One app serving every feature's routes; hooks run at start and stop."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for f in features:
            started = f.startup()
            if inspect.isawaitable(started):  # hooks may be coroutines (the daemon's are)
                await started
        try:
            yield
        finally:
            for f in reversed(features):
                stopped = f.shutdown()
                if inspect.isawaitable(stopped):
                    await stopped

    routes = [route for f in features for route in f.routes]
    return Starlette(routes=routes, lifespan=lifespan)


def features_for(
    cfg: Config, *, on_store_changed: Callable[[str, str], None] | None = None
) -> list[Feature]:
    """The features a configuration asks for (ConfigError when it is wrong).

    ``on_store_changed(store, who)`` is told when a device session wrote to a
    store (the daemon then runs that store's pairs).  A section added here is
    checked in ``check_features`` too.
    """
    out: list[Feature] = []
    if cfg.section("syncml").get("accounts"):
        from calsync.gateway.syncml import SyncMLFeature

        out.append(SyncMLFeature.from_config(cfg, on_store_changed=on_store_changed))
    if cfg.section("caldav").get("users"):
        from calsync.gateway.caldav import CalDAVFeature

        out.append(CalDAVFeature.from_config(cfg, on_store_changed=on_store_changed))
    return out


def check_features(cfg: Config) -> None:
    """ConfigError for what ``features_for`` would refuse, building nothing (a
    reloaded configuration is checked with it while the old features serve on)."""
    if cfg.section("syncml").get("accounts"):
        from calsync.syncml.config import load as syncml_settings

        syncml_settings(cfg)
    if cfg.section("caldav").get("users"):
        from calsync.davserver.config import load as caldav_settings

        caldav_settings(cfg)


def build_app(cfg: Config) -> Starlette:
    return create_app(features_for(cfg))
