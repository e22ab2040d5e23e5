"""The ASGI application factory: routes come from feature modules.

A feature is anything with ``routes`` (starlette routes) and optional
``startup()``/``shutdown()`` hooks.  ``create_app`` composes any number of
them, so the daemon (scheduler, watchers, control API) adds its own without
touching the SyncML endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from calsync.config import Config


class Feature(Protocol):
    routes: list[BaseRoute]

    def startup(self) -> None: ...

    def shutdown(self) -> None: ...


def create_app(features: Sequence[Feature]) -> Starlette:
    """One app serving every feature's routes; hooks run at start and stop."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for f in features:
            f.startup()
        try:
            yield
        finally:
            for f in reversed(features):
                f.shutdown()

    routes = [route for f in features for route in f.routes]
    return Starlette(routes=routes, lifespan=lifespan)


def features_for(cfg: Config) -> list[Feature]:
    """The features a configuration asks for (ConfigError when it is wrong)."""
    out: list[Feature] = []
    if cfg.section("syncml").get("accounts"):
        from calsync.gateway.syncml import SyncMLFeature

        out.append(SyncMLFeature.from_config(cfg))
    return out


def build_app(cfg: Config) -> Starlette:
    return create_app(features_for(cfg))
