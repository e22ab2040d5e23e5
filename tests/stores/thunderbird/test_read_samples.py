"""(b) Reading databases the real Thunderbird made gives what its own export shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.items import items_from_stream
from calsync.stores.thunderbird.prefs import read_prefs
from calsync.stores.thunderbird.read import load_calendar, to_ical
from calsync.stores.thunderbird.snapshot import snapshot
from tests.stores.thunderbird.helpers import HOME_ID, SAMPLES
from tests.stores.thunderbird.semantic import components


def sample_calendar(sample: str, name: str) -> str:
    prefs = read_prefs(SAMPLES / sample / "calendar-prefs.js")
    ids = [k.split(".")[2] for k, v in prefs.items() if k.endswith(".name") and v == name]
    assert len(ids) == 1
    return ids[0]


@pytest.mark.parametrize("sample", ["demo-utc", "demo-berlin"])
@pytest.mark.parametrize(
    ("calendar", "export"), [("Home", "export-home.ics"), ("Work", "export-work.ics")]
)
def test_reading_matches_thunderbirds_export(
    tmp_path: Path, sample: str, calendar: str, export: str
) -> None:
    cal_id = sample_calendar(sample, calendar)
    exported, errors = items_from_stream((SAMPLES / sample / export).read_bytes())
    assert not errors
    want = {item.uid: item for item in exported}
    with snapshot(SAMPLES / sample / "local.sqlite", tmp_path, check=False) as conn:
        got = load_calendar(conn, cal_id)
    assert not got.errors
    assert sorted(got.items) == sorted(want), "the same items (the deleted one is gone)"
    assert len(want) >= 11
    for uid, rows in got.items.items():
        item = to_ical(rows)
        assert item.kind == want[uid].kind
        assert components(item) == components(want[uid]), uid


def test_thunderbirds_duplicated_parameters_are_read_once(tmp_path: Path) -> None:
    """Thunderbird's modify duplicates cal_parameters rows; the item shows the parameter once."""
    with snapshot(SAMPLES / "demo-utc" / "local.sqlite", tmp_path, check=False) as conn:
        dup = conn.execute(
            "SELECT count(*) FROM cal_parameters WHERE cal_id = ? AND item_id = ?",
            (HOME_ID, "utc-timed@calsync.test"),
        ).fetchone()[0]
        rows = load_calendar(conn, HOME_ID).items["utc-timed@calsync.test"]
    assert dup == 2
    assert rows.master.parameters == [("X-CALSYNC-TEST", "X-PARAM", "abc")]
    prop = to_ical(rows).master().get("X-CALSYNC-TEST")  # type: ignore[union-attr]
    assert prop is not None and prop.params == (("X-PARAM", "abc"),)
