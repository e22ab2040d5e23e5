"""Changes waiting for Thunderbird to quit: a durable queue per calendar.

Why a queue: while Thunderbird runs, its database is locked and its item
cache would hide (and later overwrite) anything written behind its back.  So
every write the engine makes goes into this queue first, kept in the store's
private cache dir as JSON written atomically and fsync'ed before ``flush``
returns: a crash loses nothing.  The queue is applied, in one transaction,
by the first ``flush`` that finds Thunderbird stopped.

Why the engine may treat a queued write as done: the store reports the
database *with the queue laid over it* (``overlay``).  The version the engine
records for a queued add or update is the hash of the rows that will be
written, and ``list`` reports exactly that version until then, and after
(the same rows are in the database); a queued delete hides the item.  So the
next sync sees "unchanged", nothing is re-added or duplicated.

Thunderbird may change the same item while our change waits.  Each entry
remembers the version (and content) Thunderbird had when it was queued;
``reconcile`` compares that with what the database holds now:

* unchanged: the entry stands;
* the database already holds our rows: done (e.g. a crash after the commit);
* Thunderbird edited it: our change is merged into Thunderbird's edit
  (property-level three-way merge against the remembered content), so the
  next sync reports the merged version and carries Thunderbird's edit to the
  other side too; an edit beats a delete in both directions (Thunderbird
  deleted what we update: we put it back; Thunderbird edited what we delete:
  we keep it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calsync.items import Item, ItemError
from calsync.items.merge import merge_calendars, newest_chooser
from calsync.stores._files import write_atomic
from calsync.stores.thunderbird.read import to_ical
from calsync.stores.thunderbird.rows import ItemRows
from calsync.stores.thunderbird.write import Unstorable, item_rows

log = logging.getLogger(__name__)

PUT = "put"
DELETE = "delete"


@dataclass
class Entry:
    """The change waiting for one UID."""

    uid: str
    op: str  # PUT | DELETE
    rows: ItemRows | None
    base_version: str | None  # what Thunderbird held when the change was first queued
    base_item: bytes | None
    queued_at: float

    @property
    def version(self) -> str | None:
        return self.rows.version() if self.rows is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "op": self.op,
            "rows": self.rows.to_queue() if self.rows is not None else None,
            "base_version": self.base_version,
            "base_item": self.base_item.decode("utf-8") if self.base_item is not None else None,
            "queued_at": self.queued_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        base = data.get("base_item")
        return cls(
            uid=str(data["uid"]),
            op=str(data["op"]),
            rows=ItemRows.from_json(data["rows"]) if data.get("rows") else None,
            base_version=data.get("base_version"),
            base_item=base.encode("utf-8") if isinstance(base, str) else None,
            queued_at=float(data.get("queued_at", 0)),
        )


def queue_dir(cache_dir: Path) -> Path:
    return cache_dir / "thunderbird-queue"


class Queue:
    """The queued changes of one calendar (one JSON file, see module docstring)."""

    def __init__(self, cache_dir: Path, identity: str, meta: dict[str, str]) -> None:
        digest = hashlib.blake2b(identity.encode("utf-8"), digest_size=8).hexdigest()
        self.path = queue_dir(cache_dir) / f"{digest}.json"
        self.identity = identity
        self.meta = meta
        self.entries: dict[str, Entry] = {}
        self.reason = ""

    def load(self) -> None:
        self.entries = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read the queue {self.path}: {e}") from None
        if data.get("identity") != self.identity:
            raise OSError(f"{self.path} belongs to {data.get('identity')}, not {self.identity}")
        self.reason = str(data.get("reason", ""))
        for raw in data.get("entries", []):
            entry = Entry.from_json(raw)
            self.entries[entry.uid] = entry

    def save(self) -> None:
        """Durably: written to a temporary file, fsync'ed, renamed."""
        if not self.entries:
            if self.path.exists():
                self.path.unlink()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "identity": self.identity,
            **self.meta,
            "reason": self.reason,
            "entries": [e.to_json() for e in self.entries.values()],
        }
        data = json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8")
        write_atomic(self.path, data, fsync=True)
        if os.name == "posix":
            os.chmod(self.path, 0o600)

    def stage(
        self,
        uid: str,
        op: str,
        rows: ItemRows | None,
        base_version: str | None,
        base_item: bytes | None,
    ) -> None:
        """Queue a change; a later change to the same UID replaces an earlier one."""
        old = self.entries.pop(uid, None)
        if old is not None:
            base_version, base_item = old.base_version, old.base_item
        if op == DELETE and base_version is None:
            return  # added and deleted while waiting: Thunderbird never had it
        self.entries[uid] = Entry(uid, op, rows, base_version, base_item, time.time())

    def summary(self) -> dict[str, Any]:
        return {
            "count": len(self.entries),
            "since": min((e.queued_at for e in self.entries.values()), default=None),
            "items": [{"uid": e.uid, "op": e.op} for e in self.entries.values()],
        }


Current = Callable[[str], tuple[str, Item] | None]


def reconcile(entry: Entry, current: tuple[str, Item] | None) -> tuple[Entry | None, str]:
    """The entry as it must be applied given what Thunderbird holds now (see docstring).

    Returns (entry or None when nothing is left to do, what happened).
    """
    now_version = current[0] if current is not None else None
    if entry.op == PUT and now_version is not None and now_version == entry.version:
        return None, "already written"
    if entry.op == DELETE and current is None:
        return None, "already gone"
    if now_version == entry.base_version:
        return entry, "waiting"
    if entry.op == DELETE:
        return (
            None,
            "Thunderbird edited it after calsync queued its deletion; an edit beats a delete",
        )
    assert entry.rows is not None
    if current is None:
        kept = Entry(entry.uid, PUT, entry.rows, None, None, entry.queued_at)
        return kept, "Thunderbird deleted it after calsync queued a change; the change wins"
    theirs = current[1]
    try:
        ours = to_ical(entry.rows)
        base = Item(entry.base_item, entry.uid) if entry.base_item is not None else None
        merged = merge_calendars(
            base.tree if base is not None else None, ours.tree, theirs.tree, newest_chooser("a")
        )
        item = Item.from_tree(merged.calendar)
        rows = item_rows(item)
    except (ItemError, Unstorable) as e:
        log.warning(
            "item %s: cannot merge with Thunderbird's edit (%s); keeping calsync's", entry.uid, e
        )
        rows = entry.rows
    if rows.version() == now_version:
        return None, "Thunderbird's edit already contains calsync's change"
    merged_entry = Entry(entry.uid, PUT, rows, now_version, theirs.raw, entry.queued_at)
    return merged_entry, "merged with Thunderbird's edit made while it waited"
