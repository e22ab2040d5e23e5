"""Taking over vdirsyncer's status, so the first calsync sync after migrating
changes nothing and downloads no item.

vdirsyncer 0.21 keeps one SQLite file per pair (``STATUS/PAIR.items``) or per
collection (``STATUS/PAIR/COLLECTION.items``), table ``status``: per item its
ident (the UID), and per side its href, content hash and ETag -- a
filesystem storage's ETag is ``"<mtime_ns>.000000000;<inode>"``, a CalDAV
one the server's.  calsync's status (``status.StatusDB``) wants per UID each
side's id, version and content hash, and the last synced content (the merge
base).  Per row:

- a vdir side: the file is read (locally: no request) for the content, its
  hash and its UID; when its mtime and inode are still the ones vdirsyncer
  recorded, calsync records the file's own version, so the file counts as
  unchanged; otherwise a version that matches nothing, so the first sync
  reads it and compares contents (a changed file is synced, nothing is lost);
- a CalDAV side: the id is the percent-decoded path, the version the ETag
  vdirsyncer saw; its hash is the vdir side's when vdirsyncer's two hashes
  agree (the two sides held the same item), else a marker that matches no
  content (the item is compared when it next changes).  The CalDAV store's
  cache gets the ETags as its last listing, without a sync-token: its first
  listing asks for ETags only (an initial sync-collection), never for data;
- a pair without a vdir side keeps vdirsyncer's hashes as markers and no base.

vdirsyncer's ``.metadata`` file next to the status (the values its
``metasync`` last synced) becomes the record a pair's ``metadata`` compares
against.  The stores' identities are recorded as the engine would, so its guard sees
the same stores.  Nothing is written to either store.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from calsync.config import Config
from calsync.items import ItemError
from calsync.plain import Plain
from calsync.stores import StoreError
from calsync.sync.status import Row, StatusDB


class AdoptError(Exception):
    """A vdirsyncer status file that cannot be read."""


class Adopted(Plain):
    __slots__ = ("items", "name", "notes")
    name: str
    items: int
    notes: list[str]

    def __init__(self, name: str, items: int = 0, notes: list[str] | None = None) -> None:
        self.name = name
        self.items = items
        self.notes = notes if notes is not None else []


def read_status(path: Path) -> list[tuple[str, ...]]:
    """(ident, href_a, hash_a, etag_a, href_b, hash_b, etag_b) of every item."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise AdoptError(f"{path}: cannot open it: {e}") from None
    try:
        rows = db.execute(
            "SELECT ident, href_a, hash_a, etag_a, href_b, hash_b, etag_b FROM status"
        ).fetchall()
    except sqlite3.Error as e:
        raise AdoptError(f"{path}: not a vdirsyncer 0.21 status file: {e}") from None
    finally:
        db.close()
    return [tuple("" if v is None else str(v) for v in row) for row in rows]


def _local(store: Any, href: str, etag: str) -> tuple[str, str, bytes, str] | None:
    """(version, hash, content, uid) of a vdir's file, the version matching nothing
    when the file changed since vdirsyncer's sync; None when it is gone or unreadable."""
    try:
        st = os.stat(store.path / href)
        item, version = store.get(href)
        raw, h, uid = item.raw, item.hash, item.uid
    except (OSError, StoreError, ItemError):
        return None
    if f"{st.st_mtime_ns:.9f};{st.st_ino}" != etag:
        version = f"vdirsyncer:{etag}"  # changed since: the first sync reads it
    return version, h, raw, uid


def adopt(
    cfg: Config, pair: str, source: Path, collections: dict[str, str] | None = None
) -> Adopted:
    """Write the status of ``pair`` (a plain pair or a sub-pair) from vdirsyncer's
    ``source`` file.  ``collections``: side -> collection URL of a CalDAV side
    (default: its configured url)."""
    from calsync.stores.caldav.store import CalDAVStore
    from calsync.stores.vdir import VdirStore
    from calsync.sync.runner import status_file

    rows = read_status(source)
    config = cfg.pairs[pair]
    stores = {"a": cfg.store(config.a), "b": cfg.store(config.b)}
    done = Adopted(pair)
    status = StatusDB(status_file(cfg, pair))
    try:
        if status.count():
            done.notes.append(f"{pair}: calsync already has a status for it; left as it is")
            return done
        etags: dict[str, dict[str, str]] = {"a": {}, "b": {}}
        for ident, href_a, hash_a, etag_a, href_b, hash_b, etag_b in rows:
            if not href_a or not href_b:
                continue  # a half-written row (vdirsyncer crashed): the sync compares it
            seen = {"a": (href_a, hash_a, etag_a), "b": (href_b, hash_b, etag_b)}
            local = {
                side: _local(stores[side], seen[side][0], seen[side][2])
                for side in ("a", "b")
                if isinstance(stores[side], VdirStore)
            }
            base = next((got[2] for got in local.values() if got is not None), None)
            uid = next((got[3] for got in local.values() if got is not None), ident)
            known = next((got[1] for got in local.values() if got is not None), None)
            parts = {}
            for side in ("a", "b"):
                href, vhash, etag = seen[side]
                got = local.get(side)
                if side in local:
                    if got is None:
                        parts[side] = (href, f"vdirsyncer:{etag}", f"vdirsyncer:{vhash}")
                    else:
                        parts[side] = (href, got[0], got[1])
                    continue
                same = known is not None and hash_a == hash_b
                h = known if same and known is not None else f"vdirsyncer:{vhash}"
                store = stores[side]
                if isinstance(store, CalDAVStore):
                    url = (collections or {}).get(side, store.url)
                    from calsync.stores.caldav.hrefs import normalize

                    href = normalize(href, url)
                    etags[side][href] = etag
                parts[side] = (href, etag, h)
            row = Row(uid, *parts["a"], *parts["b"])
            status.stage_put(row, base if base is not None and hash_a == hash_b else None)
            done.items += 1
        _adopt_metadata(source.with_suffix(".metadata"), status)
        for side in ("a", "b"):
            status.set_meta(f"identity.{side}", stores[side].identity())
            store = stores[side]
            if isinstance(store, CalDAVStore):
                store.adopt((collections or {}).get(side, store.url), etags[side])
        status.commit()
    finally:
        status.close()
        for store in stores.values():
            store.close()
    return done


def _adopt_metadata(path: Path, status: StatusDB) -> None:
    """vdirsyncer's last synced metadata values (JSON ``{key: value}``), if any."""
    import json

    from calsync.sync.metadata import UNSET

    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    if not isinstance(values, dict):
        return
    for key in ("displayname", "color"):
        if key in values:
            value = values[key]
            status.set_meta(f"metadata.{key}", UNSET if not value else str(value).strip())
