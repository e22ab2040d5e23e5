"""The conformance suite on the local stores (memory, vdir, ics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.memory import MemoryStore
from calsync.stores.vdir import VdirStore
from tests.stores.conformance import Conformance


def ctx(tmp_path: Path) -> StoreContext:
    return StoreContext(cache_dir=tmp_path / "cache")


class TestMemory(Conformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> MemoryStore:
        return MemoryStore("mem", ctx(tmp_path))


class TestVdir(Conformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> VdirStore:
        return VdirStore("dir", ctx(tmp_path), tmp_path / "vdir")


class TestIcs(Conformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> IcsStore:
        return IcsStore("file", ctx(tmp_path), tmp_path / "cal.ics")
