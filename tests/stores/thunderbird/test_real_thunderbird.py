"""(c)+(d) Both directions against the real Thunderbird, through the real engine.

One Thunderbird profile, driven by ../shared/peers/thunderbird/tbpeer.py
(headless Thunderbird 153 through Marionette, its own calendar code):

1. calsync writes events and tasks (recurrence + exception, all-day,
   timezones, alarms, attendees, non-ASCII...) while Thunderbird is stopped;
   Thunderbird starts and its own export shows exactly those;
2. while it runs, Thunderbird creates, modifies and deletes items and calsync
   syncs them to a vdir (read from a hot snapshot), while calsync's own
   changes wait in the queue: Thunderbird does not see them;
3. after Thunderbird quits, the next sync writes the queue; Thunderbird's
   export then shows them, and both sides agree item by item.

Thunderbird's own behaviour on load, not a loss: it re-stamps DTSTAMP and
LAST-MODIFIED (and adds CREATED) of items stored without LAST-MODIFIED, and
shows ``PERCENT-COMPLETE:0`` for a task that has none.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from calsync.cli import cli
from calsync.config import load
from calsync.items import Item, items_from_stream
from calsync.sync.engine import SyncResult
from calsync.sync.runner import run_pair
from tests.conftest import SHARED
from tests.stores.thunderbird.semantic import components

pytestmark = pytest.mark.peer

CORPUS = Path(__file__).parent / "data" / "corpus.ics"
RESTAMPED = frozenset({"DTSTAMP", "LAST-MODIFIED", "CREATED"})

TB_NEW = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//made in Thunderbird by the test//EN
BEGIN:VEVENT
UID:tb-series@calsync.test
DTSTAMP:20260201T080000Z
DTSTART;TZID=Europe/Berlin:20260601T180000
DTEND;TZID=Europe/Berlin:20260601T193000
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Kurs (Thunderbird)
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT30M
DESCRIPTION:Kurs
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:tb-series@calsync.test
DTSTAMP:20260201T080000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260602T180000
DTSTART;TZID=Europe/Berlin:20260602T190000
DTEND;TZID=Europe/Berlin:20260602T203000
SUMMARY:Kurs (later, Thunderbird)
END:VEVENT
BEGIN:VTODO
UID:tb-task@calsync.test
DTSTAMP:20260201T080000Z
DUE;VALUE=DATE:20260610
SUMMARY:Task made in Thunderbird
PRIORITY:9
END:VTODO
END:VCALENDAR
"""


def tbpeer() -> ModuleType:
    installed = subprocess.run(
        [str(SHARED / "peers" / "install.sh"), "thunderbird"], capture_output=True, text=True
    )
    assert installed.returncode == 0, f"cannot install Thunderbird: {installed.stderr}"
    spec = importlib.util.spec_from_file_location(
        "tbpeer", SHARED / "peers" / "thunderbird" / "tbpeer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def visible(item: Item) -> dict[str, Counter[str]]:
    """What must agree between calsync and Thunderbird (see module docstring)."""
    comps = components(item, ignore=RESTAMPED)
    if item.kind == "VTODO":
        for props in comps.values():
            props.pop("PERCENT-COMPLETE;:0", None)
    return comps


def by_uid(data: bytes | str) -> dict[str, Item]:
    items, errors = items_from_stream(data.encode() if isinstance(data, str) else data)
    assert not errors
    return {i.uid: i for i in items}


def vdir_items(vdir: Path) -> dict[str, Item]:
    out = {}
    for path in vdir.glob("*.ics"):
        item = Item.from_bytes(path.read_bytes())
        out[item.uid] = item
    return out


def counts(r: SyncResult) -> dict[str, int]:
    data = r.to_json()
    assert not data["errors"] and not r.stopped, data
    return {k: v for k, v in data.items() if isinstance(v, int) and v}


def status(config: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["status", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)["pairs"]["p"]
    return data


def test_both_directions_with_real_thunderbird(tmp_path: Path) -> None:
    peer = tbpeer().Peer(tmp_path / "tb", log=lambda *a: None)
    with peer:  # a profile as Thunderbird makes it; its "Home" starts disabled
        peer.enable()
    profile = peer.profile_dir()
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    corpus = by_uid(CORPUS.read_bytes())
    for uid, item in corpus.items():
        (vdir / f"{uid}.ics").write_bytes(item.raw)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[stores.tb]\ntype = "thunderbird"\nprofile = "{profile}"\ncalendar = "Home"\n'
        f'[stores.dir]\ntype = "vdir"\npath = "{vdir}"\ncreate = true\n'
        '[pairs.p]\na = "tb"\nb = "dir"\n',
        encoding="utf-8",
    )

    def sync() -> SyncResult:
        return run_pair(load(config), "p")

    # 1. calsync -> Thunderbird (stopped)
    assert counts(sync()) == {"added_a": len(corpus)}
    with peer:
        exported = by_uid(peer.export_ics())
        assert sorted(exported) == sorted(corpus)
        for uid, item in corpus.items():
            assert visible(exported[uid]) == visible(item), uid

        # 2. Thunderbird edits with its own code while running ...
        assert all(r["ok"] for r in peer.import_ics(TB_NEW))
        peer.set_title("ev-simple@calsync.test", "Umbenannt in Thunderbird ✓")
        peer.delete("ev-floating@calsync.test")
        # ... and calsync's side changes too
        task = corpus["task-1@calsync.test"].raw.replace(
            b"SUMMARY:Steuererkl\xc3\xa4rung einreichen", b"SUMMARY:Steuererkl\xc3\xa4rung (eilt!)"
        )
        (vdir / "task-1@calsync.test.ics").write_bytes(task)
        (vdir / "ev-allday@calsync.test.ics").unlink()
        new = CORPUS.read_bytes().split(b"BEGIN:VEVENT")[0] + (
            b"BEGIN:VEVENT\r\nUID:ev-new@calsync.test\r\nDTSTAMP:20260301T080000Z\r\n"
            b"DTSTART:20260501T100000Z\r\nDTEND:20260501T110000Z\r\n"
            b"SUMMARY:Added while Thunderbird ran\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        (vdir / "ev-new.ics").write_bytes(new)

        running = sync()
        assert counts(running) == {
            "added_a": 1,
            "updated_a": 1,
            "deleted_a": 1,
            "added_b": 2,
            "updated_b": 1,
            "deleted_b": 1,
        }
        mine = vdir_items(vdir)
        now = by_uid(peer.export_ics())
        for uid in ("tb-series@calsync.test", "tb-task@calsync.test", "ev-simple@calsync.test"):
            assert visible(mine[uid]) == visible(now[uid]), uid
        assert "ev-floating@calsync.test" not in mine
        waiting = status(config)["queued"]["tb"]
        assert waiting["count"] == 3 and "Thunderbird is running" in waiting["reason"]
        assert counts(sync()) == {}, "queued changes count as done: nothing twice"

        # (d) nothing was written behind Thunderbird's back
        assert visible(now["task-1@calsync.test"]) == visible(corpus["task-1@calsync.test"])
        assert "ev-allday@calsync.test" in now and "ev-new@calsync.test" not in now

    # 3. Thunderbird has quit: the queue is written
    assert counts(sync()) == {}
    assert status(config)["queued"] == {}
    with peer:
        final = by_uid(peer.export_ics())
    mine = vdir_items(vdir)
    assert sorted(final) == sorted(mine)
    assert "ev-allday@calsync.test" not in final and "ev-floating@calsync.test" not in final
    assert "Steuererklärung (eilt!)" in final["task-1@calsync.test"].master().value("SUMMARY")  # type: ignore[union-attr,operator]
    for uid in final:
        assert visible(final[uid]) == visible(mine[uid]), uid
    assert counts(sync()) == {}


def test_fidelity_matrix_with_real_thunderbird(tmp_path: Path) -> None:
    """What Thunderbird keeps, changes and drops of items calsync writes (FIDELITY.md)."""
    from calsync.stores import StoreContext
    from calsync.stores.thunderbird.prefs import find_calendar
    from calsync.stores.thunderbird.store import ThunderbirdStore

    peer = tbpeer().Peer(tmp_path / "tb", log=lambda *a: None)
    with peer:
        peer.enable()
    profile = peer.profile_dir()
    cache = StoreContext(cache_dir=tmp_path / "cache")
    store = ThunderbirdStore("tb", cache, profile, find_calendar(profile, "Home"))
    store.list()
    written = by_uid((Path(__file__).parent / "data" / "edge.ics").read_bytes())
    for item in written.values():
        store.add(item)
    store.flush()
    with peer:
        shown = by_uid(peer.export_ics())
        for uid in written:
            peer.set_title(uid, "edited in Thunderbird")
        edited = by_uid(peer.export_ics())

    def diff(uid: str, rid: str = "") -> tuple[dict[str, int], dict[str, int]]:
        mine = components(written[uid], ignore=RESTAMPED).get(rid, Counter())
        theirs = components(shown[uid], ignore=RESTAMPED).get(rid, Counter())
        return dict(mine - theirs), dict(theirs - mine)

    # everything else of these items (GEO, CONTACT, binary ATTACH, SENT-BY, DELEGATED-FROM,
    # two RELATED-TO, X-MOZ-*, a full AUDIO VALARM...) Thunderbird shows as written
    assert diff("edge-1@calsync.test") == (
        {
            "DURATION;:PT90M": 1,  # becomes DTEND
            "SUMMARY;LANGUAGE=de:Zusammenfassung": 1,  # parameters of SUMMARY are dropped
            "COMMENT;:first comment": 1,  # of a repeated property only the last stays
            "X-DUP;:one": 1,
            "PRIORITY;:0": 1,  # 0 = undefined: not shown
            "EXDATE;:20260502T100000Z,20260503T100000Z": 1,  # one value per line
            "RDATE;VALUE=PERIOD:20260601T100000Z/20260601T120000Z": 1,  # only the start
            "RESOURCES;:Projector,Whiteboard": 1,  # several values become one
            "REQUEST-STATUS;:2.0;Success": 1,
        },
        {
            "DTEND;:20260501T113000Z": 1,
            "SUMMARY;:Zusammenfassung": 1,
            "EXDATE;:20260502T100000Z": 1,
            "EXDATE;:20260503T100000Z": 1,
            "RDATE;:20260601T100000Z": 1,
            "RESOURCES;:Projector\\,Whiteboard": 1,
            "REQUEST-STATUS;:2.0\\;Success": 1,
        },
    )
    assert diff("edge-task@calsync.test") == (
        {"DURATION;:P2D": 1, "DTEND;:20260309T090000Z": 1},  # a task has no DTEND
        {"DUE;:20260303T090000Z": 1},
    )
    assert diff("edge-noend@calsync.test") == (
        {"DESCRIPTION;:": 1},  # empty values are dropped
        {"DTEND;VALUE=DATE:20260802": 1},
    )
    orphan = components(shown["edge-orphan@calsync.test"])
    assert orphan[""]["X-MOZ-FAKED-MASTER;:1"] == 1  # Thunderbird shows its invented master
    assert diff("edge-orphan@calsync.test", "20260701T100000") == ({}, {})

    # after Thunderbird's own edit calsync reads what Thunderbird shows
    listing = store.list()
    assert sorted(listing.versions) == sorted(written)
    for uid in written:
        got, _ = store.get(uid)
        theirs = visible(edited[uid])
        mine = visible(got)
        for props in (*theirs.values(), *mine.values()):
            for key in list(props):  # Thunderbird's own text forms of these two
                if key.startswith(("RESOURCES;", "REQUEST-STATUS;")):
                    del props[key]
        assert mine == theirs, uid
    first, _ = store.get("edge-1@calsync.test")
    assert first.master().value("RESOURCES") == "Projector,Whiteboard"  # type: ignore[union-attr]
