"""The gateway with its CalDAV endpoint, for the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.davserver.helpers import Gateway, start


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = start(tmp_path)
    try:
        yield g
    finally:
        g.stop()
