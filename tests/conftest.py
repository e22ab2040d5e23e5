"""Shared fixtures: where ../shared is, isolated state dirs, sample items."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CALSYNC_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (peers, corpus, notes); its absence is a failure."""
    assert SHARED.is_dir(), f"shared folder not found at {SHARED} (set CALSYNC_SHARED)"
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real user's config, state or data dirs."""
    monkeypatch.setenv("CALSYNC_STATE_DIR", str(tmp_path / "_state"))
    monkeypatch.setenv("CALSYNC_DATA_DIR", str(tmp_path / "_data"))
    monkeypatch.setenv("CALSYNC_CONFIG", str(tmp_path / "_config" / "config.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "_xdg_config"))


def event(
    uid: str,
    summary: str = "Meeting",
    *,
    start: str = "20250301T100000Z",
    extra: str = "",
    last_modified: str = "20250101T000000Z",
) -> bytes:
    """A small VEVENT calendar object (CRLF, as RFC 5545 wants)."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//calsync tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20250101T000000Z",
        f"LAST-MODIFIED:{last_modified}",
        f"DTSTART:{start}",
        "DURATION:PT1H",
        f"SUMMARY:{summary}",
    ]
    if extra:
        lines += extra.strip("\n").split("\n")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
