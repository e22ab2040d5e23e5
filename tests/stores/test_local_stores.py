"""The conformance suite on the local stores (memory, vdir, ics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.stores import StoreContext
from calsync.stores.ics import IcsStore
from calsync.stores.memory import MemoryStore
from calsync.stores.vdir import VdirStore
from tests.stores.conformance import Conformance


def ctx(tmp_path: Path) -> StoreContext:
    return StoreContext(cache_dir=tmp_path / "cache")


class TestMemory(Conformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> MemoryStore:
        return MemoryStore("mem", ctx(tmp_path))


class TestVdir(Conformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> VdirStore:
        return VdirStore("dir", ctx(tmp_path), tmp_path / "vdir")


def _event(uid: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.mark.parametrize("summary", ["much longer " * 20_000, "short"])
def test_vdir_reads_a_file_whole_when_its_size_changed_after_listing(
    tmp_path: Path, summary: str
) -> None:
    """A read asks for the listed size: a file that grew (past any one read)
    or shrank since is still read whole, under the version that was listed."""
    store = VdirStore("dir", ctx(tmp_path), tmp_path / "vdir")
    (tmp_path / "vdir").mkdir()
    (tmp_path / "vdir" / "a.ics").write_bytes(_event("a", "first"))
    listed = store.list().versions["a.ics"]
    changed = _event("a", summary)
    (tmp_path / "vdir" / "a.ics").write_bytes(changed)
    item, version = store.get("a.ics")
    assert item.raw == changed
    assert version == listed  # the next listing sees the change and reads again


class TestIcs(Conformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> IcsStore:
        return IcsStore("file", ctx(tmp_path), tmp_path / "cal.ics")


def test_ics_versions_do_not_change_with_the_files_line_endings(tmp_path: Path) -> None:
    """A tool that rewrites the whole file with LF for CRLF (or back) changes no
    item: a sync then has nothing to read or compare.  An edit still shows."""
    path = tmp_path / "cal.ics"
    crlf = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
        + "".join(
            f"BEGIN:VEVENT\r\nUID:e{i}\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:20260102T100000Z\r\nSUMMARY:Event {i}\r\nEND:VEVENT\r\n"
            for i in range(3)
        )
        + "END:VCALENDAR\r\n"
    ).encode()
    path.write_bytes(crlf)
    before = IcsStore("file", ctx(tmp_path / "one"), path).list().versions
    assert len(before) == 3
    path.write_bytes(crlf.replace(b"\r\n", b"\n"))
    after = IcsStore("file", ctx(tmp_path / "two"), path).list().versions
    assert after == before
    path.write_bytes(crlf.replace(b"SUMMARY:Event 1", b"SUMMARY:Edited"))
    edited = IcsStore("file", ctx(tmp_path / "three"), path).list().versions
    assert {u for u in before if edited[u] != before[u]} == {"e1"}
