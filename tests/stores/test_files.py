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


@pytest.mark.parametrize("way", ["exchange", "hard-links", "no-hard-links"])
def test_freeing_replaces_and_removes_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The old file lives on under a hidden name until the thread frees it,
    whether the names were swapped (Linux) or the old file hard-linked first;
    where neither can be done, the plain way does the same job."""
    monkeypatch.setattr(_files, "_exchange_refused", set())
    real_link = os.link
    links: list[object] = []

    def link(*args: object, **kw: object) -> None:
        if way == "no-hard-links":
            raise PermissionError("no hard links here")
        links.append(args)
        real_link(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link)
    if way != "exchange":
        monkeypatch.setattr(_files, "_exchange", lambda src, dst: False)  # refused here
    elif not _files._can_exchange():
        pytest.fail("renameat2 should be there on Linux")  # the test machine is Linux
    freeing = _files.Freeing()
    target = tmp_path / "x.ics"
    target.write_bytes(b"old")
    with open(target, "rb") as reader:  # someone reading the old file meanwhile
        st = freeing.replace(str(target), b"new", fsync=False)
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new" and os.stat(target).st_ino == st.st_ino
    assert (links == []) == (way != "hard-links")  # swapped names need no link
    assert (str(tmp_path) in _files._exchange_refused) == (way != "exchange")
    again = freeing.replace(str(target), b"newer", fsync=True)  # refused: not tried again
    assert target.read_bytes() == b"newer" and os.stat(target).st_ino == again.st_ino
    gone = tmp_path / "y.ics"
    gone.write_bytes(b"y")
    freeing.remove(str(gone))
    assert not gone.exists()
    with pytest.raises(FileNotFoundError):
        freeing.remove(str(gone))
    freeing.replace(str(gone), b"back", fsync=False)  # deleted meanwhile: a plain write
    assert gone.read_bytes() == b"back"
    freeing.wait()
    assert sorted(os.listdir(tmp_path)) == ["x.ics", "y.ics"]


def test_a_failed_replacement_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(src: str, dst: str) -> bool:
        raise OSError(5, "Input/output error", dst)

    monkeypatch.setattr(_files, "_exchange", broken)
    target = tmp_path / "x.ics"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="Input/output"):
        _files.Freeing().replace(str(target), b"new", fsync=False)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.ics"]


def _gone_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_leftovers_are_trash_and_temporaries_of_ended_processes() -> None:
    ended = _gone_pid()
    assert _files.is_leftover(".calsync-4242-7.trash")
    assert _files.is_leftover(f".calsync-{ended}-3.tmp")
    assert not _files.is_leftover(f".calsync-{os.getpid()}-3.tmp")  # being written now
    assert not _files.is_leftover(".calsync-x-3.tmp")
    assert not _files.is_leftover(".hidden.trash")
    assert not _files.is_leftover("a.ics")


def test_a_vdir_removes_what_a_crashed_sync_left_to_free(tmp_path: Path) -> None:
    from calsync.stores import StoreContext
    from calsync.stores.vdir import VdirStore

    store = VdirStore("v", StoreContext(cache_dir=tmp_path / "cache"), tmp_path / "v")
    store.path.mkdir()
    (store.path / "a.ics").write_bytes(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    os.link(store.path / "a.ics", store.path / ".calsync-4242-7.trash")
    (store.path / ".hidden.trash").write_bytes(b"not ours")
    (store.path / f".calsync-{_gone_pid()}-2.tmp").write_bytes(b"old content, swapped out")
    live = f".calsync-{os.getpid()}-9.tmp"  # a sync of this process is writing it
    (store.path / live).write_bytes(b"new content")
    assert list(store.list().versions) == ["a.ics"]
    assert sorted(os.listdir(store.path)) == [live, ".hidden.trash", "a.ics"]


def test_one_syncfs_serves_every_store_on_the_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two vdirs on one disk: the second flush needs no syncfs of its own when
    one began after its last write, and needs one when it wrote after that."""
    from calsync.items import Item
    from calsync.stores import StoreContext
    from calsync.stores.vdir import VdirStore
    from tests.conftest import event

    _files._probe_libc()
    if _files._libc is None:
        pytest.fail("no syncfs in the C library of this Linux machine")
    calls: list[int] = []
    real = _files._libc

    class Counting:
        def syncfs(self, fd: int) -> int:
            calls.append(fd)
            return int(real.syncfs(fd))

    monkeypatch.setattr(_files, "_libc", Counting())
    a, b = (VdirStore(n, StoreContext(cache_dir=tmp_path / "c"), tmp_path / n) for n in "ab")
    a.add(Item.from_bytes(event("x")))
    b.add(Item.from_bytes(event("y")))
    a.flush()
    b.flush()
    assert len(calls) == 1
    b.add(Item.from_bytes(event("z")))  # written after that syncfs began
    a.flush()  # nothing written since: nothing to do
    b.flush()
    assert len(calls) == 2
