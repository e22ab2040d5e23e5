"""Basic credentials and the failed-login throttle (``calsync.gateway.logins``)."""

from __future__ import annotations

import base64

import pytest

from calsync.gateway.logins import (
    FailureThrottle,
    MalformedCredentials,
    parse_basic,
    source_key,
)
from tests.gateway.test_scheduler import Clock  # a clock the test moves


def b64(raw: bytes) -> bytes:
    return b"Basic " + base64.b64encode(raw)


def test_basic_credentials_decode() -> None:
    assert parse_basic(b64(b"alice:pa:ss")) == ("alice", "pa:ss")  # the first ':' splits
    assert parse_basic(b64(b"alice:")) == ("alice", "")
    assert parse_basic(b"basic " + base64.b64encode(b"a:b")) == ("a", "b")  # any case
    assert parse_basic(b64("jörg:pässword".encode())) == ("jörg", "pässword")
    # not UTF-8: Latin-1, as Radicale and older clients do
    assert parse_basic(b64("jörg:pässword".encode("latin-1"))) == ("jörg", "pässword")
    assert parse_basic(b64(b"alice:x").decode()) == ("alice", "x")


@pytest.mark.parametrize(
    "value",
    [
        b"Basic !!!!",
        b"Basic",
        b"Basic    ",
        b"Bearer abc",
        b64(b"no colon"),
        base64.b64encode(b"alice:x"),  # no scheme
        b"Basic " + base64.b64encode(b"alice:pw")[:-1],  # bad padding
        b"Basic " + b"QUxJQ0U6eA==" * 1000,  # longer than any credentials
    ],
)
def test_malformed_basic_credentials(value: bytes) -> None:
    with pytest.raises(MalformedCredentials):
        parse_basic(value)


def test_source_keys() -> None:
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    # one /64 is one source: a host picks any address in it
    net = "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9") == net
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("") == ""


def test_a_source_fails_its_burst_then_waits_for_refills() -> None:
    clock = Clock()
    t = FailureThrottle(burst=3, refill=10, clock=clock)
    for _ in range(3):
        assert t.refusal("a") is None
        t.failed("a")
    assert t.locked("a")
    wait = t.refusal("a")
    assert wait == pytest.approx(10)
    assert t.refusal("b") is None  # another source is not affected
    clock.now += 9.9
    assert t.refusal("a") is not None
    clock.now += 0.2
    assert t.refusal("a") is None  # one refill: one more try
    t.failed("a")
    assert t.refusal("a") == pytest.approx(9.9, abs=0.01)


def test_many_sources_together_are_bounded_but_a_clean_source_is_checked() -> None:
    clock = Clock()
    t = FailureThrottle(burst=5, refill=10, global_burst=20, global_refill=1, clock=clock)
    for n in range(20):
        t.failed(f"attacker-{n}")
    # the overall budget is spent: every source that failed is refused ...
    assert all(t.refusal(f"attacker-{n}") is not None for n in range(20))
    # ... though each had failed only once; a source that never failed is still checked
    assert t.refusal("laptop") is None
    # refills come at the overall rate
    clock.now += 1.01
    assert t.refusal("attacker-3") is None


def test_a_source_whose_failures_tested_no_password_stays_clean() -> None:
    """A SyncML device's first contact fails (it learns its nonce) without a password
    being tested: while an attack spends the overall budget, that device is checked
    like a source that never failed; its own bucket still counts the contact.
    (Found by tests/adversarial: a device paired within 15 minutes was refused.)"""
    clock = Clock()
    t = FailureThrottle(burst=3, refill=10, global_burst=20, global_refill=1, clock=clock)
    t.failed("phone", guess=False)
    for n in range(20):
        t.failed(f"attacker-{n}")
    assert t.refusal("attacker-0") is not None
    assert t.refusal("phone") is None
    t.failed("phone", guess=False)
    t.failed("phone", guess=False)
    assert t.locked("phone") and t.refusal("phone") is not None  # its own budget holds
    clock.now += 10
    t.failed("phone")  # a wrong password: suspect from now on
    assert t.refusal("phone") is not None


def test_sources_are_forgotten_after_a_while() -> None:
    clock = Clock()
    t = FailureThrottle(burst=2, refill=10, global_burst=2, remember=600, clock=clock)
    t.failed("a")
    t.failed("a")
    clock.now += 100  # own bucket full again; the overall one too
    assert t.refusal("a") is None
    clock.now += 600
    t.refusal("x")
    assert t.sources() == 0


def test_an_overflowing_table_makes_unknown_sources_suspect() -> None:
    """An attacker with more addresses than the table holds cannot get fresh sources."""
    clock = Clock()
    t = FailureThrottle(burst=5, global_burst=10, global_refill=100, max_sources=4, clock=clock)
    for n in range(10):
        t.failed(f"s{n}")
    assert t.sources() == 4
    assert t.refusal("s0") is not None  # forgotten, but the table overflowed
    assert t.refusal("never-seen") is not None
    clock.now += 100  # the overall bucket refills one token
    assert t.refusal("never-seen") is None
