"""pst store: an Outlook .pst / .ost file's calendars and task lists, read only.

What it reads: every folder whose container class is a calendar
(``IPF.Appointment...``) or a task list (``IPF.Task``), or only those the
``folder`` option names (a folder's name or its path below the file's root,
as ``calsync`` prints them in errors); each appointment or task becomes one
item (``outlook.mapping``).  Other messages in those folders (meeting
requests, notes) are listed as errors naming their class: never taken for
deleted, never silently left out.

Ids and versions: an item's id is the message's node id in the file (stable
while the file lives), its version the message's last modification time and
size; the file is reopened when its size or mtime changes.  Items are
converted on ``get`` only.

Writes: none; ``add``/``update``/``delete`` raise ``ItemRejected`` saying the
store is read only, so a pair syncing from it should run one way
(``calsync sync --mode one-way-a-to-b``) or let it win conflicts.  libpff is
the optional ``pst`` extra; without it the store is unavailable with the
command that installs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from calsync.items import Item, ItemError
from calsync.outlook.mapping import OutlookError, is_appointment, is_task, to_item
from calsync.outlook.pst import Message, PstError, PstFile, open_pst
from calsync.stores import (
    ItemRejected,
    Listing,
    NotFound,
    Option,
    Store,
    StoreContext,
    StoreUnavailable,
)

_CALENDAR_CLASSES = ("ipf.appointment", "ipf.task")


def calendar_folder(container_class: str) -> bool:
    return container_class.lower().startswith(_CALENDAR_CLASSES)


class PstStore(Store):
    type = "pst"
    options: ClassVar[dict[str, Option]] = {
        "path": Option(str, "the Outlook .pst or .ost file (read only)", required=True),
        "folder": Option(
            (str, list),
            "only these calendar/task folders (names or paths); default: all of them",
        ),
    }

    def __init__(
        self, name: str, ctx: StoreContext, path: Path, *, folders: list[str] | None = None
    ) -> None:
        super().__init__(name, ctx)
        self.path = path
        self.folders = folders or []
        self._file: PstFile | None = None
        self._stamp: tuple[int, int] | None = None
        self._messages: dict[str, Message] = {}

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        path = Path(os.path.expandvars(os.path.expanduser(section["path"])))
        if not path.is_absolute() and ctx.config_dir is not None:
            path = ctx.config_dir / path
        folders = section.get("folder")
        if isinstance(folders, str):
            folders = [folders]
        return cls(name, ctx, path, folders=[str(f) for f in folders or []])

    def identity(self) -> str:
        return f"pst:{os.path.realpath(self.path)}"

    def describe(self) -> str:
        return f"Outlook file {self.path}"

    # -- reading ------------------------------------------------------------------------

    def _open(self) -> PstFile:
        try:
            st = self.path.stat()
        except OSError as e:
            raise self.error(StoreUnavailable, f"cannot read {self.path}: {e}") from None
        stamp = (st.st_size, st.st_mtime_ns)
        if self._file is not None and stamp == self._stamp:
            return self._file
        self.close()
        try:
            self._file = open_pst(self.path)
        except PstError as e:
            raise self.error(StoreUnavailable, str(e)) from None
        self._stamp = stamp
        return self._file

    def _wanted(self, path: str) -> bool:
        if not self.folders:
            return True
        name = path.rsplit("/", 1)[-1]
        return any(f in (path, name) for f in self.folders)

    def list(self) -> Listing:
        pst = self._open()
        versions: dict[str, str] = {}
        errors: dict[str, str] = {}
        self._messages = {}
        seen_folders: list[str] = []
        try:
            for path, container, folder in pst.folders():
                if not calendar_folder(container) or not self._wanted(path):
                    continue
                seen_folders.append(path)
                for message in pst.messages(folder, path):
                    if isinstance(message, PstError):
                        errors[f"{path}#{len(errors)}"] = str(message)
                        continue
                    id = message.identifier
                    kind = message.message_class
                    if not (is_appointment(kind) or is_task(kind)):
                        errors[id] = f"{path}: a {kind or 'message'} is no appointment or task"
                        continue
                    self._messages[id] = message
                    versions[id] = _version(message)
        except PstError as e:
            raise self.error(StoreUnavailable, str(e)) from None
        missing = [f for f in self.folders if not any(self._matches(f, p) for p in seen_folders)]
        if missing:
            raise self.error(
                StoreUnavailable,
                f"no calendar or task folder {', '.join(map(repr, missing))} in {self.path}",
            )
        return Listing(versions, errors)

    @staticmethod
    def _matches(wanted: str, path: str) -> bool:
        return wanted in (path, path.rsplit("/", 1)[-1])

    def get(self, id: str) -> tuple[Item, str]:
        if not self._messages:
            self.list()
        message = self._messages.get(id)
        if message is None:
            raise self.error(NotFound, "no such message", id)
        try:
            item = to_item(message)
        except OutlookError as e:
            raise ItemError(f"{message.folder}: {e}", source=self.name, id=id) from None
        return item, _version(message)

    def modified(self, id: str) -> float | None:
        """PidTagLastModificationTime, else PidTagCreationTime (as DTSTAMP; for
        conflicts whose items' clocks tie)."""
        message = self._messages.get(id)
        stamp = (message.get(0x3008) or message.get(0x3007)) if message is not None else None
        return stamp.timestamp() if stamp is not None else None

    # -- writing: refused -------------------------------------------------------------

    def _read_only(self, id: str | None) -> ItemRejected:
        error = self.error(
            ItemRejected,
            f"{self.path.name} is read only (an Outlook file): sync from it one way "
            "(--mode one-way-a-to-b) or import it",
            id,
        )
        assert isinstance(error, ItemRejected)
        return error

    def add(self, item: Item) -> tuple[str, str]:
        raise self._read_only(item.uid)

    def update(self, id: str, item: Item, version: str) -> str:
        raise self._read_only(id)

    def delete(self, id: str, version: str) -> None:
        raise self._read_only(id)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._messages = {}


def _version(message: Message) -> str:
    modified = message.get(0x3008) or message.get(0x3007)
    stamp = modified.isoformat() if modified is not None else "-"
    return f"{stamp}/{message.get(0x0E08) or 0}"


def read_items(path: Path, source: str) -> tuple[list[Item], list[ItemError]]:
    """Every appointment and task of a .pst/.ost file (for ``calsync import``)."""
    try:
        pst = open_pst(path)
    except PstError as e:
        return [], [ItemError(str(e), source=source)]
    items: list[Item] = []
    errors: list[ItemError] = []
    try:
        for folder_path, container, folder in pst.folders():
            if not calendar_folder(container):
                continue
            for message in pst.messages(folder, folder_path):
                if isinstance(message, PstError):
                    errors.append(ItemError(str(message), source=source))
                    continue
                kind = message.message_class
                if not (is_appointment(kind) or is_task(kind)):
                    errors.append(
                        ItemError(
                            f"{folder_path}: a {kind or 'message'} is no appointment or task",
                            source=source,
                            id=message.identifier,
                        )
                    )
                    continue
                try:
                    items.append(to_item(message))
                except OutlookError as e:
                    errors.append(
                        ItemError(f"{folder_path}: {e}", source=source, id=message.identifier)
                    )
    except PstError as e:
        errors.append(ItemError(str(e), source=source))
    finally:
        pst.close()
    return items, errors
