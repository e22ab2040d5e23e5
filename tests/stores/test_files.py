"""Atomic writes: a new file appears whole or not at all, and never replaces another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calsync.stores import _files
from calsync.stores._files import write_atomic


@pytest.fixture(params=["unnamed", "portable"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of creating a file: O_TMPFILE + link (Linux) and temp + rename."""
    if request.param == "portable":
        monkeypatch.setattr(_files, "_tmpfile_ok", False)
    else:
        monkeypatch.setattr(_files, "_tmpfile_ok", None)
        monkeypatch.setattr(_files, "_tmpfile_refused", set())
    return str(request.param)


def test_new_file_has_its_content_and_stat(tmp_path: Path, way: str) -> None:
    target = tmp_path / "a.ics"
    st = write_atomic(target, b"BEGIN:VCALENDAR\r\n", fsync=False, exclusive=True)
    assert target.read_bytes() == b"BEGIN:VCALENDAR\r\n"
    now = os.stat(target)
    assert (st.st_ino, st.st_size, st.st_mtime_ns) == (now.st_ino, now.st_size, now.st_mtime_ns)
    assert os.listdir(tmp_path) == ["a.ics"]  # no temporary file left
    if way == "unnamed" and hasattr(os, "O_TMPFILE"):  # Linux: really the unnamed way
        assert _files._tmpfile_ok and not _files._tmpfile_refused


def test_exclusive_never_replaces(tmp_path: Path, way: str) -> None:
    target = tmp_path / "a.ics"
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"ours", fsync=True, exclusive=True)
    assert target.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["a.ics"]


def test_replace_and_fsync(tmp_path: Path, way: str) -> None:
    target = tmp_path / "a.ics"
    write_atomic(target, b"one", fsync=True, exclusive=True)
    write_atomic(target, b"two", fsync=True)
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["a.ics"]


def test_missing_directory_is_an_error(tmp_path: Path, way: str) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nope" / "a.ics", b"x", fsync=False, exclusive=True)


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="O_TMPFILE is Linux-only")
def test_refused_link_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that refuses linking an unnamed file (EXDEV) still gets the file."""
    monkeypatch.setattr(_files, "_tmpfile_ok", None)
    monkeypatch.setattr(_files, "_tmpfile_refused", set())
    real_link = os.link

    def refuse(src: str, dst: str, **kw: object) -> None:
        if str(src).startswith("/proc/self/fd/"):
            raise OSError(18, "Invalid cross-device link")
        real_link(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", refuse)
    target = tmp_path / "a.ics"
    write_atomic(target, b"content", fsync=False, exclusive=True)
    assert target.read_bytes() == b"content"
    assert str(tmp_path) in _files._tmpfile_refused
    assert os.listdir(tmp_path) == ["a.ics"]
