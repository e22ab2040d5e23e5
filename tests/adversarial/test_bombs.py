"""Every bomb of issue #19, on every endpoint of a running daemon.

Each one must be refused with its expected status within its time, the
daemon must live on with its peak memory within ``MAX_GROWTH`` of its memory
at rest, the endpoint must serve a legitimate request right afterwards, and
the log may grow by a few lines per request at most.
"""

from __future__ import annotations

import pytest

from tests.adversarial.clients import Legit
from tests.adversarial.endpoints import Attack, Endpoint, all_attacks
from tests.adversarial.target import Target

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]

LOG_PER_REQUEST = 1024  # bytes of log one refused request may add, at most


@pytest.mark.parametrize(
    ("endpoint", "attack"),
    all_attacks(),
    ids=[f"{e.name}:{a.name}".replace(" ", "-") for e, a in all_attacks()],
)
def test_a_bomb_is_refused_and_leaves_the_daemon_bounded(
    target: Target, legit: Legit, endpoint: Endpoint, attack: Attack
) -> None:
    log_before = target.log_size()
    answers = attack.run(target)
    for a in answers:
        assert a.status in attack.expect, f"{attack.name}: {a}"
        assert a.seconds < attack.within, f"{attack.name}: {a}"
        assert b"Traceback" not in a.body, f"{attack.name}: {a}"
    if attack.check is not None:
        attack.check(answers)
    target.check_bounded(f"{endpoint.name} {attack.name}")
    endpoint.probe(legit)
    target.check_log(log_before, per_request=LOG_PER_REQUEST, requests=len(answers) + 1)
