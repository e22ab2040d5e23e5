"""The rows of one item, as read from or about to be written to ``local.sqlite``.

Why a shared model: the reader builds it from the database, the writer from
an iCalendar item, and the queue keeps it on disk while Thunderbird runs.
Its ``version`` is a hash of exactly these rows, so the version calsync
reports for an item it wrote (or queued) is the version it will read back,
and any change Thunderbird makes, including to columns calsync does not turn
into iCalendar, is seen.  We do not use ``last_modified`` as the version: it
is NULL for imported items without LAST-MODIFIED, and another program could
change rows without touching it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Value = str | int | float | None

# cal_metadata value of the original item calsync wrote (see ItemRows.original)
ORIGINAL_TAG = "calsync-original:1\n"


@dataclass
class CompRows:
    """One master or overridden instance: its main row and its child rows."""

    main: dict[str, Value]  # columns of cal_events / cal_todos, without cal_id
    properties: list[tuple[str, Value]] = field(default_factory=list)
    parameters: list[tuple[str, str, Value]] = field(default_factory=list)
    attendees: list[str] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)

    @property
    def rid(self) -> tuple[Value, Value]:
        return self.main.get("recurrence_id"), self.main.get("recurrence_id_tz")

    @property
    def flags(self) -> int:
        return int(self.main.get("flags") or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "main": self.main,
            "properties": [list(p) for p in self.properties],
            "parameters": [list(p) for p in self.parameters],
            "attendees": self.attendees,
            "attachments": self.attachments,
            "relations": self.relations,
            "alarms": self.alarms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompRows:
        return cls(
            main=dict(data["main"]),
            properties=[(str(k), v) for k, v in data["properties"]],
            parameters=[(str(a), str(b), v) for a, b, v in data["parameters"]],
            attendees=list(data["attendees"]),
            attachments=list(data["attachments"]),
            relations=list(data["relations"]),
            alarms=list(data["alarms"]),
        )


@dataclass
class ItemRows:
    """All rows of one UID in one calendar."""

    uid: str
    kind: str  # VEVENT | VTODO
    master: CompRows
    exceptions: list[CompRows] = field(default_factory=list)
    recurrence: list[str] = field(default_factory=list)
    # The exact item calsync wrote these rows from.  Kept in cal_metadata (which
    # Thunderbird does not use for local calendars, keeps across its own edits
    # and deletes with the item) together with the rows' version, and used only
    # while the rows are still exactly those: Thunderbird shows the same thing,
    # and the other side gets back the very bytes it sent (escaping, DURATION,
    # parameters Thunderbird has no column for).  Not part of the version.
    original: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "kind": self.kind,
            "master": self.master.to_json(),
            "exceptions": [e.to_json() for e in self.exceptions],
            "recurrence": self.recurrence,
        }

    def metadata(self) -> str | None:
        """The cal_metadata value recording ``original`` for this exact version."""
        if self.original is None:
            return None
        payload = {"version": self.version(), "item": self.original.decode("utf-8", "replace")}
        return ORIGINAL_TAG + json.dumps(payload, ensure_ascii=False)

    def adopt_metadata(self, value: str) -> None:
        """Take ``original`` from a cal_metadata value if it belongs to these rows."""
        if not value.startswith(ORIGINAL_TAG):
            return
        try:
            payload = json.loads(value[len(ORIGINAL_TAG) :])
        except ValueError:
            return
        if isinstance(payload, dict) and payload.get("version") == self.version():
            item = payload.get("item")
            if isinstance(item, str):
                self.original = item.encode("utf-8")

    def to_queue(self) -> dict[str, Any]:
        data = self.to_json()
        data["original"] = self.original.decode("utf-8", "replace") if self.original else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemRows:
        original = data.get("original")
        return cls(
            uid=str(data["uid"]),
            kind=str(data["kind"]),
            master=CompRows.from_json(data["master"]),
            exceptions=[CompRows.from_json(e) for e in data["exceptions"]],
            recurrence=list(data["recurrence"]),
            original=original.encode("utf-8") if isinstance(original, str) else None,
        )

    def version(self) -> str:
        """Hash of the rows (exceptions in a fixed order; values typed)."""
        data = self.to_json()
        data["exceptions"] = sorted(
            data["exceptions"], key=lambda e: (str(e["main"].get("recurrence_id")), str(e))
        )
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.blake2b(blob.encode("utf-8"), digest_size=12).hexdigest()
