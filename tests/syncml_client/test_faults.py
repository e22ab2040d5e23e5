"""Cutting the connection at every message of a sync: the next syncs converge.

The server is calsync's own core in-process (``Loopback``), so the cut can be
placed exactly: *before* the server sees message N, or *after* it handled
message N but before its answer reaches us (the nasty case: the server
applied our changes and we do not know).  Whatever the point, the following
syncs must converge with nothing lost and nothing doubled.

One change may be undone, never lost: when the server's answer carrying its
Delete of ``s2`` is cut, the server (its Adds unconfirmed) forces a slow sync,
in which it no longer sends ``s2``; a slow sync deletes nothing, so ``s2``
goes back to it (see ``calsync.syncml.client_mirror`` on slow syncs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.sync.runner import run_pair
from tests.syncml_client.harness import (
    LOOP_URL,
    Loopback,
    client_section,
    edit,
    file_of,
    items_in,
    pair_config,
    put,
)

WANT = {
    "s1": "S1 edited on the server",
    "s3": "S3 added on the server",
    "l1": "L1 edited here",
    "l3": "L3 added here",
    "k": "K",
}


def _scenario(tmp: Path, loop: Loopback) -> object:
    cfg = pair_config(tmp, client_section(LOOP_URL))
    local = tmp / "local"
    for uid in ("s1", "s2"):
        put(loop.store, f"{uid}.ics", uid, uid.upper())
    for uid in ("l1", "l2", "k"):
        put(local, f"{uid}.ics", uid, uid.upper())
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors, r
    edit(loop.store, "s1", WANT["s1"])
    file_of(loop.store, "s2").unlink()
    put(loop.store, "s3.ics", "s3", WANT["s3"])
    edit(tmp / "local", "l1", WANT["l1"])
    file_of(local, "l2").unlink()
    put(local, "l3.ics", "l3", WANT["l3"])
    return cfg


def test_a_clean_run_of_the_scenario(tmp_path: Path, loopback: Loopback) -> None:
    cfg = _scenario(tmp_path, loopback)
    start = loopback.requests
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert not r.stopped and not r.errors
    assert loopback.requests - start == 6  # two sessions of three round trips
    assert items_in(tmp_path / "local") == items_in(loopback.store) == WANT


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("n", range(1, 7))
def test_a_connection_cut_at_any_message_converges(
    tmp_path: Path,
    make_loopback,
    when: str,
    n: int,  # type: ignore[no-untyped-def]
) -> None:
    loop: Loopback = make_loopback()
    cfg = _scenario(tmp_path, loop)
    loop.faults[loop.requests + n] = when
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert r.stopped or r.errors, "the cut must show"
    text = r.stopped or "; ".join(str(e) for e in r.errors)
    assert "connection broke" in text
    for _ in range(2):  # what the cut held back goes with the next sync (or the one after)
        r = run_pair(cfg, "p")  # type: ignore[arg-type]
        assert not r.stopped and not r.errors, r
    local, server = tmp_path / "local", loop.store
    got = items_in(local)
    assert got == items_in(server)
    undone = {"s2": "S2"} if (n, when) == (2, "after") else {}
    assert got in (WANT, WANT | undone)
    assert len(list(local.iterdir())) == len(list(server.iterdir())) == len(got)
    r = run_pair(cfg, "p")  # type: ignore[arg-type]
    assert r.changes == 0 and not r.errors, r
