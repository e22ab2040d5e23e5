"""The palm store passes the store conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.stores import StoreContext
from calsync.stores.palm.store import PalmStore
from tests.stores.conformance import Conformance


class TestPalm(Conformance):
    """A Palm cannot hold most of these items as they are (time zones, overrides,
    long text, UIDs); they read back hash-equal through the items the store keeps."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> PalmStore:
        return PalmStore("palm", StoreContext(tmp_path / "cache"), tmp_path / "palm")


class TestPalmWithZone(TestPalm):
    @pytest.fixture
    def store(self, tmp_path: Path) -> PalmStore:
        ctx = StoreContext(tmp_path / "cache")
        return PalmStore("palm", ctx, tmp_path / "palm", timezone="Europe/Berlin")
