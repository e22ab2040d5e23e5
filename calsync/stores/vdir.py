"""vdir store: a directory with one ``.ics`` file per item.

The layout vdirsyncer, khal and todoman use.  The version of a file is its
mtime (ns), inode and size, so listing needs one ``stat`` per file and no read.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from stat import S_ISREG
from typing import Any, ClassVar

from calsync.items import Item
from calsync.stores import (
    ItemRejected,
    Listing,
    NotFound,
    Option,
    PreconditionFailed,
    Store,
    StoreContext,
)
from calsync.stores._files import expand_path, sync_filesystem, write_atomic

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,150}")
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM\d|LPT\d)(\..*)?", re.I)


def file_name(uid: str, ext: str) -> str:
    """A file name for ``uid`` that is safe on every platform and unique per UID."""
    if _SAFE.fullmatch(uid) and not _WINDOWS_RESERVED.fullmatch(uid) and not uid.endswith("."):
        return uid + ext
    readable = re.sub(r"[^A-Za-z0-9_.@+=-]+", "_", uid).strip("._")[:80]
    digest = hashlib.sha1(uid.encode("utf-8")).hexdigest()[:16]
    return f"{readable}-{digest}{ext}" if readable else f"{digest}{ext}"


def _version(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}.{st.st_ino}.{st.st_size}"


class VdirStore(Store):
    type = "vdir"
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
    ) -> None:
        super().__init__(name, ctx)
        self.path = path
        self.fileext = fileext
        self.fsync = fsync
        self._written: list[Path | str] = []
        self._dir = str(path)  # plain strings on the hot path: no Path objects per item
        self._dir_ok = False
        self._listed: dict[str, str] = {}  # the last listing, for get()

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        return cls(
            name,
            ctx,
            expand_path(section["path"], ctx.config_dir),
            fileext=section.get("fileext", ".ics"),
            fsync=section.get("fsync", "batch"),
        )

    def identity(self) -> str:
        return f"vdir:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"vdir {self.path}"

    def _ensure_dir(self) -> None:
        if not self._dir_ok:
            self.path.mkdir(parents=True, exist_ok=True)
            self._dir_ok = True

    def list(self) -> Listing:
        self._ensure_dir()
        versions: dict[str, str] = {}
        ext = self.fileext
        names = [n for n in os.listdir(self._dir) if n.endswith(ext) and n[:1] != "."]
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
        self._listed = versions
        return Listing(dict(versions))

    def _file(self, id: str) -> str:
        if "/" in id or "\\" in id or id.startswith(".") or not id:
            raise self.error(NotFound, "not an item file name", id)
        return os.path.join(self._dir, id)

    def get(self, id: str) -> tuple[Item, str]:
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
        return Item.from_bytes(b"".join(chunks), source=path), listed

    def _current(self, id: str) -> str:
        try:
            return _version(os.stat(self._file(id)))
        except FileNotFoundError:
            raise self.error(NotFound, "no such file", id) from None

    def _write(self, path: str, item: Item, *, exclusive: bool) -> str:
        st = write_atomic(path, item.raw, fsync=self.fsync == "always", exclusive=exclusive)
        if self.fsync == "batch":
            self._written.append(path)
        version = _version(st)
        self._listed[os.path.basename(path)] = version
        return version

    def add(self, item: Item) -> tuple[str, str]:
        self._ensure_dir()
        base = file_name(item.uid, self.fileext)
        name = base
        for n in range(1, 1000):
            try:
                return name, self._write(os.path.join(self._dir, name), item, exclusive=True)
            except FileExistsError:
                stem = base[: -len(self.fileext)] if self.fileext else base
                name = f"{stem}-{n}{self.fileext}"
            except OSError as e:
                raise self.error(ItemRejected, f"cannot write {name}: {e}", item.uid) from None
        raise self.error(ItemRejected, "no free file name", item.uid)

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
            os.unlink(self._file(id))
        except FileNotFoundError:
            raise self.error(NotFound, "no such file", id) from None
        finally:
            self._listed.pop(id, None)
        if self.fsync != "never":
            self._written.append(self.path)

    def flush(self) -> None:
        if self._written and self.fsync == "batch":
            sync_filesystem(self.path, self._written)
        self._written.clear()
