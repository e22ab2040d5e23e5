"""Shared helpers: profiles built from the real sample databases, ids, stores."""

from __future__ import annotations

import shutil
from pathlib import Path

from calsync.stores import StoreContext
from calsync.stores.thunderbird.prefs import find_calendar
from calsync.stores.thunderbird.store import ThunderbirdStore
from tests.conftest import SHARED

SAMPLES = SHARED / "peers" / "thunderbird" / "samples"
HOME_ID = "c29d0db0-dc81-4787-963d-26e13df667ee"
WORK_ID = "5817f63c-0ca6-4625-b54b-ce66d5e0a4ca"
TEST_ID = "0badc0de-0000-4000-8000-000000000001"


def registry(
    cal_id: str, name: str, type: str = "storage", uri: str = "moz-storage-calendar://"
) -> str:
    return "".join(
        f'user_pref("calendar.registry.{cal_id}.{key}", {value});\n'
        for key, value in (
            ("type", f'"{type}"'),
            ("uri", f'"{uri}"'),
            ("name", f'"{name}"'),
            ("disabled", "false"),
        )
    )


def make_profile(root: Path, sample: str = "demo-utc", extra: str = "") -> Path:
    """A profile dir holding a copy of a real sample database and its calendar prefs."""
    profile = root / "profile"
    (profile / "calendar-data").mkdir(parents=True)
    shutil.copyfile(SAMPLES / sample / "local.sqlite", profile / "calendar-data" / "local.sqlite")
    prefs = (SAMPLES / sample / "calendar-prefs.js").read_text(encoding="utf-8")
    (profile / "prefs.js").write_text(prefs + extra, encoding="utf-8")
    return profile


def store(profile: Path, calendar: str, cache: Path, name: str = "tb") -> ThunderbirdStore:
    return ThunderbirdStore(
        name, StoreContext(cache_dir=cache), profile, find_calendar(profile, calendar)
    )
