"""caldav-server-tester (PyPI) against the endpoint: its whole feature matrix.

The matrix is printed (``pytest -s``) and written next to the test's files;
what a phone or Thunderbird relies on must be ``full``.  What is not
supported is so by design (calendars are configured, not created by
clients; no scheduling; no principal search) or Radicale's (DAV:limit).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.davserver.helpers import PASSWORD, USER, Gateway

MUST_BE_FULL = [
    "get-current-user-principal",
    "propfind",
    "propfind.principal-depth-1",
    "non-existing-raises-not-found.collection",
    "non-existing-raises-not-found.object",
    "save-load.event",
    "save-load.event.recurrences.exception",
    "save-load.event.timezone",
    "save-load.todo",
    "save-load.journal",
    "save-load.mutable",
    "save-load.stable-url",
    "save.etag",
    "save.if-none-match",
    "save.no-uid-conflict",
    "search.time-range.event",
    "search.time-range.todo",
    "search.recurrences.expanded.event",
    "search.recurrences.includes-implicit.event",
    "search.text.substring",
    "freebusy-query",
    "sync-token",
    "sync-token.delete",
    "sync-token.invalid-token",
    "synchronous-write",
    "calendar-color",
    "auth.www-authenticate",
]
BY_DESIGN = {
    "create-calendar": "unsupported",
    "scheduling": "unsupported",
    "principal-search": "unsupported",
}


@pytest.mark.peer
def test_caldav_server_tester_matrix(gw: Gateway, tmp_path: Path) -> None:
    exe = shutil.which("caldav-server-tester")
    assert exe, "caldav-server-tester is not installed (pip install caldav-server-tester)"
    proc = subprocess.run(
        [
            exe,
            "--caldav-url",
            gw.dav,
            "--caldav-user",
            USER,
            "--caldav-pass",
            PASSWORD,
            "--caldav-calendar",
            "hub",
            "--format",
            "hints",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout.strip().startswith("{"), proc.stdout + proc.stderr
    matrix: dict[str, dict[str, Any]] = ast.literal_eval(proc.stdout.strip())
    lines = [f"{name:50} {v.get('support', v.get('value'))}" for name, v in sorted(matrix.items())]
    (tmp_path / "caldav-server-tester.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert PASSWORD not in proc.stdout + proc.stderr
    not_full = {n: matrix.get(n, {}).get("support") for n in MUST_BE_FULL}
    assert {n: s for n, s in not_full.items() if s != "full"} == {}
    for name, support in BY_DESIGN.items():
        assert matrix[name]["support"] == support
    # the tester cleaned up after itself: nothing of its left in the hub
    leftovers = [p.name for p in (tmp_path / "hub").iterdir() if "csc_" in p.name]
    assert leftovers == []
