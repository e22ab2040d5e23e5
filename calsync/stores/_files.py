"""File helpers shared by file-based stores: atomic writes and durability points.

New files (``exclusive``) are written on Linux as an unnamed ``O_TMPFILE``
inode that ``linkat`` then names: one directory change instead of three
(create, rename, remove), the name fails with EEXIST if taken, and a crash
leaves no temporary file behind.  Elsewhere, or on file systems without
``O_TMPFILE``, a temporary name and a no-replace rename do the same.

A replacement goes through symbolic links: a calendar kept elsewhere and
linked from home gets its *target* replaced (written next to it), never the
link.  Only regular files are read as calendars or replaced: a device, FIFO,
socket or directory is refused (``NotRegularFile``) and left as it is
(replacing ``/dev/null`` by a file, as root, breaks the whole system).  The
check is one ``lstat`` per replacement (``write_atomic``), and stores resolve
their file once per sync (``regular_target``), never per item.  Writing to a
FIFO or a device is for ``export`` and ``convert`` only, and by plain writing
(``write_through``), never by rename.

Why batch durability: fsync per file costs ~0.3 ms here (3 s for a 10k-item
first sync).  Files are written to a temporary name and renamed into place
(atomic against a crash of calsync: a reader sees the old or the new file,
never half of one); durability against power loss is then established once per
batch with ``syncfs`` before the engine commits the status rows that describe
those files, so the status is never ahead of the disk.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
import sys
import threading
import time
from pathlib import Path
from queue import SimpleQueue
from typing import Any, BinaryIO

_libc: Any = None
_renameat2: Any = None
_probed = False
# O_TMPFILE + linkat through /proc: None = not tried yet, then True/False
_tmpfile_ok: bool | None = None
_tmpfile_refused: set[str] = set()  # directories where linking it failed


def _probe_libc() -> None:
    """Find syncfs/renameat2 in the C library (Linux), once, on first write."""
    global _libc, _renameat2, _probed
    if _probed:
        return
    _probed = True
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        # the running process already has libc loaded; find_library would fork ldconfig
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syncfs  # noqa: B018 - probe
        _renameat2 = getattr(_libc, "renameat2", None)
    except (OSError, AttributeError):
        _libc = None


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_tmp_counter = itertools.count()


def _rename_noreplace(src: str, dst: str) -> None:
    """Atomic create-if-absent rename: renameat2(RENAME_NOREPLACE) where it exists."""
    _probe_libc()
    if _renameat2 is not None:
        import ctypes

        if (
            _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
            == 0
        ):
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(dst)
        if err not in (errno.EINVAL, errno.ENOSYS):  # other errors are real
            raise OSError(err, os.strerror(err), dst)
    try:  # portable fallback: link fails if the target exists
        os.link(src, dst)
    except (AttributeError, NotImplementedError, PermissionError):
        if os.path.exists(dst):  # no hard links here (some Windows/FAT setups)
            raise FileExistsError(dst) from None
        os.replace(src, dst)
        return
    os.unlink(src)


_RENAME_EXCHANGE = 2
_exchange_refused: set[str] = set()  # directories where swapping names failed


def _can_exchange() -> bool:
    _probe_libc()
    return _renameat2 is not None


def _exchange(src: str, dst: str) -> bool | None:
    """Swap the two names in one step: True; False where this kernel or file
    system cannot; None if ``dst`` is not there."""
    import ctypes

    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ENOENT and os.path.lexists(src):
        return None
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), dst)


def _temporary_name(parent: str) -> str:
    """A hidden name for a file being written (``is_leftover`` once its writer is gone)."""
    return os.path.join(parent, f".calsync-{os.getpid()}-{next(_tmp_counter)}.tmp")


def _discard(tmp: str) -> None:
    """Remove a temporary file a failed write leaves (if it got as far as creating it)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def _write_new(path: str, data: bytes, fsync: bool, mode: int = 0o666) -> os.stat_result:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        return _fill(fd, data, fsync)
    finally:
        os.close(fd)


def _fill(fd: int, data: bytes, fsync: bool) -> os.stat_result:
    """Write all of ``data`` to a new file; its stat (naming it keeps inode, size, mtime)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if fsync:
        os.fsync(fd)
    return os.fstat(fd)


def _write_new_unnamed(parent: str, path: str, data: bytes, fsync: bool) -> os.stat_result | None:
    """Create ``path`` complete or not at all via O_TMPFILE + linkat; None if unsupported."""
    global _tmpfile_ok
    if _tmpfile_ok is None:
        _tmpfile_ok = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
    if not _tmpfile_ok or parent in _tmpfile_refused:
        return None
    try:
        fd = os.open(parent or ".", os.O_WRONLY | os.O_TMPFILE, 0o666)
    except OSError as e:
        if e.errno in (errno.EISDIR, errno.EINVAL):
            _tmpfile_ok = False  # a kernel without O_TMPFILE: the portable way
            return None
        if e.errno == errno.EOPNOTSUPP:
            _tmpfile_refused.add(parent)  # a file system without it
            return None
        raise
    try:
        st = _fill(fd, data, fsync)
        try:
            # a dir fd makes Python call linkat(AT_SYMLINK_FOLLOW) rather than
            # link(), which would try to link the /proc symlink itself (EXDEV);
            # the path is absolute, so which fd does not matter
            os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            raise
        except OSError:
            # EXDEV through some bind mounts, EPERM under some policies: the
            # portable way still works (and reports a real problem itself)
            _tmpfile_refused.add(parent)
            return None
    finally:
        os.close(fd)
    return st


class NotRegularFile(OSError):
    """A path that names something else than a regular file: never read as a
    calendar, never replaced."""


_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _not_regular(path: Path | str, mode: int) -> NotRegularFile:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return NotRegularFile(
        f"{os.fspath(path)} is {kind}, not a regular file; calsync neither reads nor replaces it"
    )


def regular_target(path: Path | str) -> str:
    """``path`` with symbolic links resolved, when that is a regular file or does
    not exist yet; NotRegularFile otherwise (once per store and sync: a few
    ``lstat``s)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode)
    return real


def _replaceable(path: Path | str) -> str:
    """What a replacement of ``path`` writes: the path itself (a regular file or
    nothing yet: one ``lstat``), a link's target, or NotRegularFile."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return os.fspath(path)
    if stat.S_ISREG(st.st_mode):
        return os.fspath(path)
    if stat.S_ISLNK(st.st_mode):
        return regular_target(path)
    raise _not_regular(path, st.st_mode)


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; NotRegularFile if not.

    Opened without blocking first: reading a FIFO would wait for a writer forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def write_through(path: Path | str, data: bytes) -> None:
    """``export`` and ``convert``: a FIFO or a device gets ``data`` written into
    it (never replaced); a regular file, a link to one, or a new name is
    written atomically; a directory or socket raises NotRegularFile."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        with open(path, "wb") as out:  # opening a device or FIFO truncates nothing
            out.write(data)
        return
    write_atomic(path, data, fsync=True)


def write_atomic(
    path: Path | str, data: bytes, *, fsync: bool, exclusive: bool = False, private: bool = False
) -> os.stat_result:
    """Write ``data`` to ``path`` so that readers see all of it or nothing; returns its stat.

    ``exclusive``: fail with FileExistsError instead of replacing an existing file.
    ``private``: readable by the owner only (0600: calsync's state, not the user's files).
    A replacement replaces a symbolic link's target (written next to it), and
    raises NotRegularFile for anything else than a regular file, leaving it.
    """
    if not exclusive:
        path = _replaceable(path)
    parent = os.path.dirname(path)
    if exclusive and not private and sys.platform.startswith("linux"):
        st = _write_new_unnamed(parent, os.fspath(path), data, fsync)
        if st is not None:
            if fsync:
                fsync_dir(Path(parent or "."))
            return st
    tmp = _temporary_name(parent)
    try:
        st = _write_new(tmp, data, fsync, 0o600 if private else 0o666)
        if exclusive:
            _rename_noreplace(tmp, str(path))
        else:
            os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    if fsync:
        fsync_dir(Path(parent))
    return st


TRASH_PREFIX = ".calsync-"
TRASH_SUFFIX = ".trash"


class Freeing:
    """Replaces and removes files, leaving the freeing of their old blocks to a thread.

    Why: on ext4 with online discard (this project's test VM; many cloud
    disks) freeing a file's blocks costs 85-150 µs, most of what replacing or
    deleting a small file costs, while changing a name costs ~20 µs.  So the
    old file first moves to a hidden name, and a thread unlinks those names
    while the sync goes on.

    A replacement writes the new file under a hidden temporary name and, on
    Linux, swaps the two names in one ``renameat2(RENAME_EXCHANGE)``: the old
    file then sits under the temporary name, and nothing was linked or freed
    on the way (200 replacements: 8-9 ms instead of 20-24 with a hard link
    and a rename, 45-47 freeing in place).  Where the swap is refused (another
    system, an old kernel, a file system without it), the old file is kept
    under a hard link first and the new one renamed over it.  Readers never
    see a half state: the item's name changes in one step either way.

    A crash can leave hidden names behind: ``.calsync-*.trash`` (removable by
    anyone, any time) and ``.calsync-PID-N.tmp`` of a process that is gone;
    ``is_leftover`` lets a store's listing recognise and remove both.
    """

    def __init__(self) -> None:
        self._queue: SimpleQueue[str | None] = SimpleQueue()
        self._thread: threading.Thread | None = None

    def replace(self, path: str, data: bytes, *, fsync: bool) -> os.stat_result:
        """``write_atomic(path, data)`` over an existing file."""
        parent = os.path.dirname(path)
        if parent in _exchange_refused or not _can_exchange():
            return self._replace_linked(path, data, fsync=fsync)
        tmp = _temporary_name(parent)
        try:
            st = _write_new(tmp, data, fsync)
            swapped = _exchange(tmp, path)
            if swapped is None:  # the file is gone (deleted meanwhile): a plain write
                os.rename(tmp, path)
        except BaseException:
            _discard(tmp)
            raise
        if swapped is False:  # refused here (once per directory): the hard-link way
            _exchange_refused.add(parent)
            _discard(tmp)
            return self._replace_linked(path, data, fsync=fsync)
        if swapped:
            self._later(tmp)  # the old file, under the temporary name now
        if fsync:
            fsync_dir(Path(parent))
        return st

    def _replace_linked(self, path: str, data: bytes, *, fsync: bool) -> os.stat_result:
        """``replace`` where names cannot be swapped: keep the old file under a hard
        link, so the replacing rename frees nothing."""
        trash = self._keep(path, os.link)
        try:
            return write_atomic(path, data, fsync=fsync)
        finally:
            if trash is not None:
                self._later(trash)

    def remove(self, path: str) -> None:
        """Delete ``path`` (FileNotFoundError if it is not there)."""
        trash = self._keep(path, os.rename)
        if trash is None:
            os.unlink(path)
        else:
            self._later(trash)

    def wait(self) -> None:
        """Return when every old file is freed (the thread ends until the next one)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    @staticmethod
    def _keep(path: str, how: Any) -> str | None:
        """The hidden name ``how`` (link or rename) gave the file, or None where
        that is not possible here (no hard links): the caller then does it plainly."""
        trash = os.path.join(
            os.path.dirname(path),
            f"{TRASH_PREFIX}{os.getpid()}-{next(_tmp_counter)}{TRASH_SUFFIX}",
        )
        try:
            how(path, trash)
        except FileNotFoundError:
            if how is os.rename:
                raise  # removing a file that is not there: the caller says so
            return None  # replacing one deleted meanwhile: a plain write
        except OSError:  # no hard links here (some FAT or SMB mounts)
            return None
        return trash

    def _later(self, trash: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._free, name="calsync-free", daemon=True)
            self._thread.start()
        self._queue.put(trash)

    def _free(self) -> None:
        while (trash := self._queue.get()) is not None:
            try:
                os.unlink(trash)
            except OSError:
                pass  # already removed (a listing's sweep): nothing left to free


def is_trash(name: str) -> bool:
    """A name ``Freeing`` hides an old file under (removable by anyone, any time)."""
    return name.startswith(TRASH_PREFIX) and name.endswith(TRASH_SUFFIX)


_TEMPORARY = re.compile(r"\.calsync-(\d+)-\d+\.tmp")


def is_leftover(name: str) -> bool:
    """A hidden name a crashed sync left behind: trash, or a temporary file of a
    process that is gone (a live one may be about to rename or swap it)."""
    if is_trash(name):
        return True
    found = _TEMPORARY.fullmatch(name)
    if found is None:
        return False
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):
        return False  # alive under another user, or no such check here
    return False


def fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# st_dev -> when (monotonic ns) the latest completed syncfs of it began
_synced: dict[int, int] = {}


def sync_filesystem(
    directory: Path, written: list[Path | str], last_write: int | None = None
) -> None:
    """Make every file written so far durable: syncfs on Linux, else fsync each.

    ``last_write``: when (``time.monotonic_ns()``) the last of ``written`` was
    done.  A syncfs of the same file system that began after it, for another
    store of the same sync, made them durable already: two vdirs on one disk
    need one syncfs, not two.
    """
    _probe_libc()
    if _libc is not None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            dev = os.fstat(fd).st_dev
            if last_write is not None and _synced.get(dev, -1) > last_write:
                return
            began = time.monotonic_ns()
            if _libc.syncfs(fd) == 0:
                _synced[dev] = max(_synced.get(dev, -1), began)
                return
        finally:
            os.close(fd)
    for p in written:
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(directory)


def expand_path(value: str, base: Path | None) -> Path:
    """``~`` and environment variables expanded; relative to the config file's dir."""
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    if not p.is_absolute() and base is not None:
        p = base / p
    return p
