"""What a one-file store (ics, vcs) and Thunderbird's database may be.

- a file that is not a calendar ("hello world") is refused and left as it is
  (calsync once appended a VCALENDAR after such content);
- a symbolic link is followed: the target is written (next to it), the link
  stays a link (it was replaced by a regular file on the first write);
- a device, FIFO, socket or directory is refused and never replaced (as root,
  replacing /dev/null by a file breaks the whole system).  The device nodes
  here are made with mknod in the test's own directory: the real /dev/null is
  never touched.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from calsync.stores import StoreContext, StoreUnavailable
from calsync.stores._files import NotRegularFile, write_atomic, write_through
from calsync.stores.ics import IcsStore
from calsync.stores.vcs import VcsStore
from calsync.stores.vdir import VdirStore
from tests.conftest import event
from tests.stores.thunderbird.helpers import TEST_ID, make_profile, registry, store
from tests.sync.helpers import Pair, contents, put

VCS_ENTRY = (
    b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nUID:v1\r\nSUMMARY:Phone\r\n"
    b"DTSTART:20250301T100000Z\r\nDTEND:20250301T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def one_file(kind: str, tmp: Path, path: Path) -> IcsStore | VcsStore:
    cls = IcsStore if kind == "ics" else VcsStore
    return cls("a", StoreContext(tmp / "cache" / "a"), path)


def holding(kind: str, tmp: Path, content: bytes) -> tuple[Path, IcsStore | VcsStore]:
    """A one-file store whose file holds ``content``."""
    path = tmp / f"cal.{kind}"
    path.write_bytes(content)
    return path, one_file(kind, tmp, path)


def with_an_item(tmp: Path) -> VdirStore:
    b = VdirStore("b", StoreContext(tmp / "cache" / "b"), tmp / "b")
    put(b, event("from-b", "From b"))
    return b


# -- not a calendar (#20 item 7) ------------------------------------------------------


@pytest.mark.parametrize("kind", ["ics", "vcs"])
@pytest.mark.parametrize(
    "content",
    [
        b"hello world\n",
        b"\xef\xbb\xbfNotes\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        b"BEGIN:VCARD\n",
    ],
    ids=["text", "text-before-a-calendar", "vcard"],
)
def test_a_file_that_is_not_a_calendar_is_refused_and_left_alone(
    tmp_path: Path, kind: str, content: bytes
) -> None:
    path, a = holding(kind, tmp_path, content)
    with pytest.raises(StoreUnavailable, match="is not a calendar file: it begins with"):
        a.list()
    r = Pair(a, with_an_item(tmp_path), tmp_path / "state").sync()
    assert r.stopped is not None and str(path) in r.stopped and "left as it is" in r.stopped
    assert r.changes == 0
    assert path.read_bytes() == content


@pytest.mark.parametrize("kind", ["ics", "vcs"])
@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b"\xef\xbb\xbf\r\n  BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"],
    ids=["empty", "blank", "bom-and-blanks"],
)
def test_an_empty_file_or_a_calendar_after_blanks_is_a_calendar(
    tmp_path: Path, kind: str, content: bytes
) -> None:
    path, a = holding(kind, tmp_path, content)
    r = Pair(a, with_an_item(tmp_path), tmp_path / "state").sync()
    assert r.stopped is None and r.added_a == 1 and not r.errors
    assert b"From b" in path.read_bytes()


# -- symbolic links (#20 item 10) ------------------------------------------------------


@pytest.mark.parametrize("kind", ["ics", "vcs"])
def test_a_link_is_followed_and_stays_a_link(tmp_path: Path, kind: str) -> None:
    synced = tmp_path / "synced-folder"
    synced.mkdir()
    target = synced / f"real.{kind}"
    target.write_bytes(b"" if kind == "ics" else VCS_ENTRY)
    home = tmp_path / "home"
    home.mkdir()
    link = home / f"cal.{kind}"
    link.symlink_to(target)
    a = one_file(kind, tmp_path, link)
    b = with_an_item(tmp_path)
    pair = Pair(a, b, tmp_path / "state")
    r = pair.sync()
    assert r.added_a == 1 and not r.errors
    assert link.is_symlink() and link.resolve() == target
    assert b"From b" in target.read_bytes()
    assert os.listdir(home) == [link.name]  # nothing written next to the link
    assert sorted(os.listdir(synced)) == [target.name]
    # and changes keep arriving through it
    put(b, event("second", "Second"))
    assert pair.sync().added_a == 1
    assert link.is_symlink() and b"Second" in target.read_bytes()


def test_a_dangling_link_gets_its_target_created(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "cal.ics"
    link.symlink_to(tmp_path / "elsewhere" / "new.ics")
    a = one_file("ics", tmp_path, link)
    r = Pair(a, with_an_item(tmp_path), tmp_path / "state").sync()
    assert r.added_a == 1 and not r.errors
    assert link.is_symlink() and b"From b" in (tmp_path / "elsewhere" / "new.ics").read_bytes()


# -- what is not a regular file (#20 item 10) -----------------------------------------


def fifo(path: Path) -> None:
    os.mkfifo(path)


def char_device(path: Path) -> None:
    """A null device node of our own (major 1, minor 3), never the real /dev/null."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root (the FIFO case runs everywhere)")
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))


def unix_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()


def directory(path: Path) -> None:
    path.mkdir()


NODES: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (fifo, "a FIFO (named pipe)"),
    "char-device": (char_device, "a character device"),
    "socket": (unix_socket, "a socket"),
    "directory": (directory, "a directory"),
}


@pytest.fixture(params=sorted(NODES))
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    """(path, its kind in words, its inode) of a node that is not a regular file."""
    make, words = NODES[request.param]
    path = tmp_path / "node"
    make(path)
    yield path, words, os.lstat(path).st_ino


def unchanged(path: Path, ino: int) -> bool:
    st = os.lstat(path)
    return st.st_ino == ino and not stat.S_ISREG(st.st_mode)


@pytest.mark.parametrize("kind", ["ics", "vcs"])
@pytest.mark.parametrize("through_link", [False, True], ids=["direct", "through-a-link"])
def test_a_store_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, node: tuple[Path, str, int], kind: str, through_link: bool
) -> None:
    path, words, ino = node
    configured = path
    if through_link:
        configured = tmp_path / f"link.{kind}"
        configured.symlink_to(path)
    a = one_file(kind, tmp_path, configured)
    r = Pair(a, with_an_item(tmp_path), tmp_path / "state").sync()  # never blocks on a FIFO
    assert r.stopped is not None and f"is {words}, not a regular file" in r.stopped
    assert r.changes == 0
    assert unchanged(path, ino)
    assert not through_link or configured.is_symlink()


def test_write_atomic_replaces_a_links_target(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    target = tmp_path / "dir" / "t.ics"
    target.write_bytes(b"old")
    link = tmp_path / "l.ics"
    link.symlink_to(target)
    write_atomic(link, b"new", fsync=False)
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert os.listdir(tmp_path / "dir") == ["t.ics"] and sorted(os.listdir(tmp_path)) == [
        "dir",
        "l.ics",
    ]


def test_write_atomic_never_replaces_what_is_not_a_regular_file(
    node: tuple[Path, str, int],
) -> None:
    path, words, ino = node
    with pytest.raises(NotRegularFile, match=re.escape(f"is {words}, not a regular file")):
        write_atomic(path, b"data", fsync=False)
    assert unchanged(path, ino)


def test_write_through_writes_into_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(path.read_bytes()))
    reader.start()
    write_through(path, b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    reader.join(10)
    assert got == [b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"]
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_write_through_writes_into_a_device(tmp_path: Path) -> None:
    path = tmp_path / "null"
    char_device(path)
    ino = os.lstat(path).st_ino
    write_through(path, b"gone")
    assert unchanged(path, ino) and stat.S_ISCHR(os.lstat(path).st_mode)


@pytest.mark.parametrize("kind", ["socket", "directory"])
def test_write_through_refuses_a_socket_or_directory(tmp_path: Path, kind: str) -> None:
    make, words = NODES[kind]
    path = tmp_path / "node"
    make(path)
    with pytest.raises(NotRegularFile, match=re.escape(f"is {words}")):
        write_through(path, b"data")


# -- Thunderbird's database -------------------------------------------------------------


def test_thunderbird_database_through_a_link(tmp_path: Path) -> None:
    """The database is opened where the link points (its -wal is next to it)."""
    profile = make_profile(tmp_path, "demo-utc", registry(TEST_ID, "calsync-test"))
    db = profile / "calendar-data" / "local.sqlite"
    real = tmp_path / "elsewhere" / "local.sqlite"
    real.parent.mkdir()
    db.rename(real)
    db.symlink_to(real)
    tb = store(profile, "calsync-test", tmp_path / "cache" / "tb")
    r = Pair(tb, with_an_item(tmp_path), tmp_path / "state").sync()
    assert r.added_a == 1 and not r.errors
    assert db.is_symlink() and db.resolve() == real
    assert sorted(os.listdir(db.parent)) == ["local.sqlite"]  # no -wal beside the link
    again = store(profile, "calsync-test", tmp_path / "cache" / "tb2")
    assert "from-b" in contents(again)


def test_thunderbird_database_that_is_not_a_file_is_refused(
    tmp_path: Path, node: tuple[Path, str, int]
) -> None:
    path, words, ino = node
    profile = make_profile(tmp_path, "demo-utc", registry(TEST_ID, "calsync-test"))
    db = profile / "calendar-data" / "local.sqlite"
    db.unlink()
    db.symlink_to(path)
    tb = store(profile, "calsync-test", tmp_path / "cache" / "tb")
    r = Pair(tb, with_an_item(tmp_path), tmp_path / "state").sync()
    assert r.stopped is not None and f"is {words}, not a regular file" in r.stopped
    assert unchanged(path, ino) and db.is_symlink()
