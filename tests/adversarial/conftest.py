"""The daemon under attack, one per test module (its start is most of a small test's time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adversarial.clients import Legit
from tests.adversarial.endpoints import ENDPOINTS
from tests.adversarial.target import Target


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, Legit]]:
    """``calsync serve`` with every endpoint and its legitimate clients, settled after
    each endpoint served them once (one client per device: a second phone object with
    the same device ID would fail its first login, and count as a guess)."""
    t = Target(tmp_path_factory.mktemp("adversarial"))
    legit = Legit(t)
    try:
        for ep in ENDPOINTS:
            ep.probe(legit)
            if ep.state_touch is not None:
                ep.state_touch(legit)
        t.settle()
        yield t, legit
    finally:
        legit.close()
        t.stop()


@pytest.fixture(scope="module")
def target(attacked: tuple[Target, Legit]) -> Target:
    return attacked[0]


@pytest.fixture(scope="module")
def legit(attacked: tuple[Target, Legit]) -> Legit:
    """The legitimate clients of every endpoint (from 127.0.0.1)."""
    return attacked[1]
