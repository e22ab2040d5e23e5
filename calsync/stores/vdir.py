"""vdir store: a directory with one ``.ics`` file per item.

The layout vdirsyncer, khal and todoman use.  The version of a file is its
mtime (ns), inode and size, so listing needs one ``stat`` per file and no read.

A vdir's metadata is a file per key next to the items (``displayname``,
``color``: one line of text, as khal and vdirsyncer read them).  As the root
of a pair's ``collections`` the path is a folder whose sub-folders (not hidden)
are the calendars.
"""

from __future__ import annotations

import builtins
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from stat import S_ISREG
from typing import Any, ClassVar

from calsync.items import Item, ItemError
from calsync.stores import (
    META_KEYS,
    Collection,
    ItemRejected,
    Listing,
    NoCollections,
    NotFound,
    Option,
    PreconditionFailed,
    Store,
    StoreContext,
    StoreError,
    _forked,
)
from calsync.stores._files import Freeing, expand_path, is_leftover, sync_filesystem, write_atomic

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,150}")
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM\d|LPT\d)(\..*)?", re.I)


def file_name(uid: str, ext: str) -> str:
    """A file name for ``uid`` that is safe on every platform and unique per UID."""
    if _SAFE.fullmatch(uid) and not _WINDOWS_RESERVED.fullmatch(uid) and not uid.endswith("."):
        return uid + ext
    import hashlib  # only for unusual UIDs (it loads OpenSSL: ~2.5 ms)

    readable = re.sub(r"[^A-Za-z0-9_.@+=-]+", "_", uid).strip("._")[:80]
    digest = hashlib.sha1(uid.encode("utf-8")).hexdigest()[:16]
    return f"{readable}-{digest}{ext}" if readable else f"{digest}{ext}"


_NOT_IN_NAMES = frozenset('<>:"/\\|?*')  # not in Windows file names


def client_file_name(name: str, ext: str) -> bool:
    """Whether a name a client chose for a new item (a CalDAV href) can be its file
    name as it is: in any script and byte for byte (no normalisation), but
    listed back (it ends in ``ext``, no leading dot) and fit for every file
    system the directory may be synced to (at most 200 bytes of UTF-8, none of
    ``<>:"/\\|?*``, no control or format character, no Windows device name, no
    dot or space at the end)."""
    import unicodedata  # only for names clients choose

    if len(name) <= len(ext) or not name.endswith(ext) or name.startswith("."):
        return False
    if name[-1] in ". " or _WINDOWS_RESERVED.fullmatch(name):
        return False
    if len(name.encode("utf-8", "surrogatepass")) > 200:
        return False
    if any(c in _NOT_IN_NAMES for c in name):
        return False
    return name.isprintable() or not any(
        unicodedata.category(c) in ("Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn") for c in name
    )


_BYTES_PER_NAME = 64


def read_meta(folder: str, key: str) -> str | None:
    """A vdir's metadata file ``key`` (``displayname``, ``color``): its text,
    stripped, or None when missing or empty (as vdirsyncer reads it)."""
    if key not in META_KEYS:
        raise ValueError(f"unknown metadata {key!r}")
    try:
        with open(os.path.join(folder, key), "rb") as f:
            text = f.read(4096).decode("utf-8", "replace").strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return text or None


def write_meta(folder: str, key: str, value: str | None) -> None:
    """Write (None: remove) a vdir's metadata file ``key``, atomically."""
    if key not in META_KEYS:
        raise ValueError(f"unknown metadata {key!r}")
    path = os.path.join(folder, key)
    if value is None or not value.strip():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    write_atomic(path, value.strip().encode("utf-8"), fsync=True)


def _version(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}.{st.st_ino}.{st.st_size}"


class _Ahead:
    """New files a forked child is writing; ``take`` answers ``add`` for them."""

    def __init__(self, child: _forked.Child[Sequence[tuple[str, str] | None]], part: list[Item]):
        self.child = child
        self.part = part
        self.index = {id(item): n for n, item in enumerate(part)}
        self.done: Sequence[tuple[str, str] | None] | None = None
        self.collected = False

    def take(self, item: Item) -> tuple[str, str] | None:
        """(name, version) if the child wrote ``item``; None: ``add`` writes it."""
        n = self.index.get(id(item))
        if n is None or self.part[n] is not item:
            return None
        if not self.collected:  # waits for the child the first time
            self.done = self.child.result()
            self.collected = True
        return self.done[n] if self.done is not None else None


class VdirStore(Store):
    type = "vdir"
    path_kind = "dir"
    options: ClassVar[dict[str, Option]] = {
        "path": Option(str, "directory holding one .ics file per item", required=True),
        "fileext": Option(str, "file name extension of items", default=".ics"),
        "fsync": Option(
            str,
            "durability: 'batch' (one filesystem sync per batch of writes, before the "
            "status records them), 'always' (fsync every file), 'never'",
            default="batch",
            choices=("batch", "always", "never"),
        ),
    }

    def __init__(
        self,
        name: str,
        ctx: StoreContext,
        path: Path,
        *,
        fileext: str = ".ics",
        fsync: str = "batch",
        create: bool = True,
    ) -> None:
        super().__init__(name, ctx)
        self.path = path
        self.fileext = fileext
        self.fsync = fsync
        self.create = create  # make the directory when missing (the config's own default: no)
        self._written: list[Path | str] = []
        self._dir = str(path)  # plain strings on the hot path: no Path objects per item
        self._dir_ok = False
        self._listed: dict[str, str] = {}  # the last listing, for get()
        self._ahead: _Ahead | None = None  # new files a forked child writes (expect_adds)
        self._last_write = 0  # time.monotonic_ns() of the last write (see flush)
        self._freeing = Freeing()  # replaced and deleted files' blocks, freed by a thread
        self._listing_ahead: _forked.Child[dict[str, str]] | None = None  # (expect_list)

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        return cls(
            name,
            ctx,
            expand_path(section["path"], ctx.config_dir),
            fileext=section.get("fileext", ".ics"),
            fsync=section.get("fsync", "batch"),
            create=section.get("create", False),
        )

    def identity(self) -> str:
        return f"vdir:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"vdir {self.path}"

    # -- a folder of calendars, and a calendar's metadata ----------------------

    def collections(self) -> builtins.list[Collection]:
        try:
            names = sorted(os.listdir(self._dir))
        except FileNotFoundError:
            if self.create:
                return []
            raise self.missing_directory(self.path) from None
        except OSError as e:
            raise self.error(StoreError, f"cannot read the folder {self.path}: {e}") from None
        out = []
        for name in names:
            where = os.path.join(self._dir, name)
            if name[:1] == "." or not os.path.isdir(where):
                continue
            out.append(
                Collection(
                    name,
                    where,
                    displayname=read_meta(where, "displayname"),
                    color=read_meta(where, "color"),
                )
            )
        return out

    def create_collection(
        self,
        name: str,
        displayname: str | None = None,
        color: str | None = None,
        components: tuple[str, ...] | None = None,
    ) -> Collection:
        if not name or name[:1] == "." or "/" in name or "\\" in name or "\0" in name:
            raise self.error(NoCollections, f"{name!r} cannot be a folder name")
        where = os.path.join(self._dir, name)
        if self.create:
            os.makedirs(self._dir, exist_ok=True)
        try:
            os.mkdir(where)
        except FileExistsError:
            pass
        except OSError as e:
            raise self.error(StoreError, f"cannot make the folder {where}: {e}") from None
        for key, value in (("displayname", displayname), ("color", color)):
            if value:
                write_meta(where, key, value)
        return Collection(name, where, displayname, color)

    def remove_collection(self, collection: Collection) -> None:
        for key in META_KEYS:
            write_meta(collection.where, key, None)
        try:
            os.rmdir(collection.where)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise self.error(
                StoreError, f"cannot remove the folder {collection.where}: {e}"
            ) from None

    def collection_section(self, section: dict[str, Any], collection: Collection) -> dict[str, Any]:
        return {**section, "path": collection.where, "create": False}

    def get_meta(self, key: str) -> str | None:
        return read_meta(self._dir, key)

    def set_meta(self, key: str, value: str | None) -> None:
        try:
            write_meta(self._dir, key, value)
        except OSError as e:
            raise self.error(StoreError, f"cannot write {key} in {self.path}: {e}") from None

    def _ensure_dir(self) -> None:
        if not self._dir_ok:
            if self.create:
                self.path.mkdir(parents=True, exist_ok=True)
            elif not os.path.isdir(self._dir):  # gone since the config was checked
                raise self.missing_directory(self.path)
            self._dir_ok = True

    def expect_list(self) -> None:
        """A one-shot sync lists a large directory in a helper meanwhile."""
        if self._listing_ahead is not None:
            return
        try:  # a directory's size tells roughly how many names it holds without
            # reading them (ext4: ~80 bytes per .ics name, tmpfs ~20, btrfs ~100)
            size = os.stat(self._dir).st_size
        except OSError:
            return  # not there yet: nothing to list ahead (list() creates it)
        if _forked.usable(size // _BYTES_PER_NAME):
            self._listing_ahead = _forked.Child(self._list_part, [self._dir])

    def list(self) -> Listing:
        ahead, self._listing_ahead = self._listing_ahead, None
        versions = ahead.result() if ahead is not None else None
        if versions is None:  # not listed ahead, or the helper failed
            versions = self._list_part([self._dir])
        self._listed = versions
        return Listing(dict(versions))

    def _list_part(self, _: Sequence[str]) -> dict[str, str]:
        """The version of every item file (the argument: the helper's part, unused)."""
        return self._stat_part(self._names())

    def _names(self) -> Sequence[str]:
        self._ensure_dir()
        ext = self.fileext
        names = os.listdir(self._dir)
        for name in (n for n in names if n[:1] == "." and is_leftover(n)):
            try:  # a file a crashed sync had not freed yet
                os.unlink(os.path.join(self._dir, name))
            except OSError:
                pass
        return [n for n in names if n.endswith(ext) and n[:1] != "."]

    def _stat_part(self, names: Sequence[str]) -> dict[str, str]:
        """The version of each regular file of ``names`` still there."""
        versions: dict[str, str] = {}
        # one stat per file, relative to the open directory (no path walk per file)
        use_fd = os.stat in os.supports_dir_fd
        dir_fd = os.open(self._dir, os.O_RDONLY) if use_fd else None
        try:
            for name in names:
                try:
                    st = (
                        os.stat(name, dir_fd=dir_fd)
                        if dir_fd is not None
                        else os.stat(os.path.join(self._dir, name))
                    )
                except FileNotFoundError:
                    continue  # deleted while we listed
                if S_ISREG(st.st_mode):
                    versions[name] = f"{st.st_mtime_ns}.{st.st_ino}.{st.st_size}"
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        return versions

    def _file(self, id: str) -> str:
        if "/" in id or "\\" in id or id.startswith(".") or not id:
            raise self.error(NotFound, "not an item file name", id)
        return os.path.join(self._dir, id)

    def get(self, id: str) -> tuple[Item, str]:
        data, version, path = self._read(id)
        return Item.from_bytes(data, source=path), version

    def modified(self, id: str) -> float | None:
        """The item's file's mtime (asked only for items in conflict)."""
        try:
            return os.stat(self._file(id)).st_mtime
        except FileNotFoundError:
            return None

    def _read(self, id: str) -> tuple[bytes, str, str]:
        """The file's bytes, its version and its path."""
        path = self._file(id)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise self.error(NotFound, "no such file", id) from None
        try:
            listed = self._listed.get(id)
            if listed is None:  # not from this listing: the version of what we read
                listed = _version(os.fstat(fd))
            # Ask for the listed size and one byte more: a short read is then
            # the end.  A fixed large request costs more than the read itself
            # (a 1 MiB buffer per file is mapped and unmapped: ~14 µs each).
            want = int(listed.rsplit(".", 1)[1]) + 1
            chunks = []
            while chunk := os.read(fd, want):
                chunks.append(chunk)
                if len(chunk) < want:
                    break  # a short read of a regular file is its end
                want = 1 << 16  # it grew since it was listed: read on
        finally:
            os.close(fd)
        # The version is the listed one: if the file changed since, the next sync
        # sees a new version, reads it again and compares content (nothing missed).
        return b"".join(chunks), listed, path

    def get_many(self, ids: Iterable[str]) -> Iterator[tuple[str, Item | ItemError, str]]:
        """Like ``Store.get_many``; a one-shot sync reads half of a large batch
        in a forked child (see ``_forked``), as the reads are system-call bound."""
        wanted = list(ids)
        if not _forked.usable(len(wanted)):
            yield from super().get_many(wanted)
            return
        half = len(wanted) // 2
        child = _forked.Child(self._read_part, wanted[half:])
        try:
            yield from super().get_many(wanted[:half])
        except BaseException:  # the caller failed or stopped early
            child.abandon()
            raise
        done = child.result()
        if done is None:  # the child failed: read its part here
            yield from super().get_many(wanted[half:])
            return
        for id, read in zip(wanted[half:], done, strict=True):
            if read is None:  # missing, unusual or malformed: read it here, errors and all
                yield from super().get_many([id])
            else:
                raw, version, uid, kind = read
                yield id, Item(raw, uid, kind), version

    def _read_part(self, ids: Sequence[str]) -> Sequence[tuple[bytes, str, str, str] | None]:
        """In the child: each item's (bytes, version, UID, kind), or None where it
        is not the common case (the parent reads it again, and reports or warns)."""
        out: list[tuple[bytes, str, str, str] | None] = []
        for id in ids:
            try:
                data, version, path = self._read(id)
                item = Item.from_bytes_simple(data, source=path)
            except Exception:  # see the docstring
                item = None
            out.append(None if item is None else (data, version, item.uid, item.kind))
        return out

    def _current(self, id: str) -> str:
        try:
            return _version(os.stat(self._file(id)))
        except FileNotFoundError:
            raise self.error(NotFound, "no such file", id) from None

    def _write(self, path: str, item: Item, *, exclusive: bool) -> str:
        fsync = self.fsync == "always"
        st = (
            write_atomic(path, item.raw, fsync=fsync, exclusive=True)
            if exclusive
            else self._freeing.replace(path, item.raw, fsync=fsync)
        )
        version = _version(st)
        self._wrote(path, version)
        return version

    def _wrote(self, path: str, version: str) -> None:
        """A file written here or by a helper: its version for ``get``, and for
        ``flush`` to make it durable."""
        self._listed[os.path.basename(path)] = version
        if self.fsync == "batch":
            self._written.append(path)
            self._last_write = time.monotonic_ns()

    def expect_adds(self, items: Sequence[Item]) -> None:
        """A one-shot sync writes the second half of a large batch of new files
        in a forked child (see ``_forked``) while this process writes the first."""
        if self._ahead is not None or not _forked.usable(len(items)):
            return
        self._ensure_dir()
        part = list(items[len(items) // 2 :])
        child = _forked.Child(self._add_part, part, writes=True)
        self._ahead = _Ahead(child, part)

    def _add_part(self, items: Sequence[Item]) -> Sequence[tuple[str, str] | None]:
        """In the child: (name, version) of each item written, None where it failed
        (nothing was written then: the parent's own ``add`` reports why)."""
        out: list[tuple[str, str] | None] = []
        for item in items:
            try:
                out.append(self._add_now(item))
            except Exception:  # see the docstring
                out.append(None)
        return out

    def add(self, item: Item) -> tuple[str, str]:
        done = self._ahead.take(item) if self._ahead is not None else None
        if done is None:
            return self._add_now(item)
        name, version = done  # the helper is done: its writes were earlier than now
        self._wrote(os.path.join(self._dir, name), version)
        return name, version

    def add_named(self, item: Item, name: str) -> tuple[str, str]:
        """Under ``name`` when it is a ``client_file_name``; else, or when the file
        system refuses it or another file has that name, as ``add`` does."""
        if not client_file_name(name, self.fileext):
            return self.add(item)
        self._ensure_dir()
        try:
            version = self._create(name, item)
        except OSError:  # a name this file system does not take (too long, not UTF-8...)
            version = None
        return (name, version) if version is not None else self._add_now(item)

    def _add_now(self, item: Item) -> tuple[str, str]:
        self._ensure_dir()
        base = file_name(item.uid, self.fileext)
        name = base
        for n in range(1, 1000):
            try:
                version = self._create(name, item)
            except OSError as e:
                raise self.error(ItemRejected, f"cannot write {name}: {e}", item.uid) from None
            if version is not None:
                return name, version
            stem = base[: -len(self.fileext)] if self.fileext else base
            name = f"{stem}-{n}{self.fileext}"
        raise self.error(ItemRejected, "no free file name", item.uid)

    def _create(self, name: str, item: Item) -> str | None:
        """Write ``item`` as the new file ``name``: its version (or that of the
        identical file found there, see ``_identical``), None when another file
        has that name."""
        try:
            return self._write(os.path.join(self._dir, name), item, exclusive=True)
        except FileExistsError:
            return self._identical(name, item)

    def _identical(self, name: str, item: Item) -> str | None:
        """The version of file ``name`` if it holds exactly ``item``, else None.

        Such a file is this item already (written by a helper that failed to
        report it, or by someone else since the listing): it is taken as the
        add, not duplicated under another name.
        """
        try:
            with open(os.path.join(self._dir, name), "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size != len(item.raw) or not S_ISREG(st.st_mode):
                    return None
                same = f.read() == item.raw
        except OSError:
            return None
        return _version(st) if same else None

    def update(self, id: str, item: Item, version: str) -> str:
        if self._current(id) != version:
            raise self.error(PreconditionFailed, "file changed since it was listed", id)
        try:
            return self._write(self._file(id), item, exclusive=False)
        except OSError as e:
            raise self.error(ItemRejected, f"cannot write: {e}", id) from None

    def delete(self, id: str, version: str) -> None:
        if self._current(id) != version:
            raise self.error(PreconditionFailed, "file changed since it was listed", id)
        try:
            self._freeing.remove(self._file(id))
        except FileNotFoundError:
            raise self.error(NotFound, "no such file", id) from None
        finally:
            self._listed.pop(id, None)
        if self.fsync != "never":
            self._written.append(self.path)
            self._last_write = time.monotonic_ns()

    def close(self) -> None:
        self._freeing.wait()
        if self._ahead is not None:  # a sync that stopped early: its files stay
            self._ahead.child.abandon()
            self._ahead = None
        if self._listing_ahead is not None:
            self._listing_ahead.abandon()
            self._listing_ahead = None

    def flush(self) -> None:
        self._freeing.wait()
        if self._written and self.fsync == "batch":
            sync_filesystem(self.path, self._written, self._last_write)
        self._written.clear()
