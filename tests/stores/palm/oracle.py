"""Running the Perl oracle (Debian's libpalm-perl) from tests.

The oracle must be installed (scripts/test.sh installs it); if it is not, the
tests that need it fail loudly, they are never skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).with_name("oracle.pl")


def _run(args: list[str], payload: dict[str, Any] | None = None) -> str:
    if shutil.which("perl") is None:
        pytest.fail("perl is not installed: the palm tests need it (scripts/test.sh)")
    proc = subprocess.run(
        ["perl", str(SCRIPT), *args],
        input=json.dumps(payload, ensure_ascii=True).encode() if payload is not None else None,
        capture_output=True,
        timeout=60,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        if "Can't locate Palm/" in err:
            pytest.fail("libpalm-perl is not installed: apt-get install libpalm-perl")
        raise AssertionError(f"oracle {args[0]} failed: {err}")
    return proc.stdout.decode("latin-1")


def write(path: Path, kind: str, records: list[dict[str, Any]], **extra: Any) -> None:
    """A database written by Palm::Datebook / Palm::ToDo (kind: datebook, calendar, todo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    categories = extra.pop("categories", ["Unfiled", "Business", "Personal"])
    spec = {"kind": kind, "categories": categories, "records": records, **extra}
    _run(["write", str(path)], spec)


def read(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_run(["read", str(path)]))
    return result


def records(path: Path) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in read(path)["records"]}


def edit(path: Path, **changes: Any) -> None:
    """Change records as a Palm would (marking them dirty): set, delete, archive, add."""
    spec = dict(changes)
    if "set" in spec:
        spec["set"] = {str(k): v for k, v in spec["set"].items()}
    _run(["edit", str(path)], spec)
