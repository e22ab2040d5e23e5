"""Fixtures of the SyncML client tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calsync.stores.syncml import SyncMLStore
from tests.syncml_client.harness import Loopback


@pytest.fixture
def make_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Loopback]:
    """calsync's server core in-process; every syncml store of the test talks to it."""

    def make(**kw: Any) -> Loopback:
        loop = Loopback(tmp_path, **kw)
        monkeypatch.setattr(SyncMLStore, "new_transport", lambda self: loop.transport())
        return loop

    return make


@pytest.fixture
def loopback(make_loopback: Callable[..., Loopback]) -> Loopback:
    return make_loopback()
