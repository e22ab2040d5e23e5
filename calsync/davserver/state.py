"""What the CalDAV endpoint remembers per store: sync tokens, client-chosen hrefs, props.

One SQLite file (``davserver.sqlite`` in the state dir), shared by every
user who sees a store: the collection *is* the store, so its history of
changes is the store's.

* ``collections``: per store an ``epoch`` (random; a new one invalidates
  every token handed out, e.g. when the store now points elsewhere) and a
  sequence number ``seq`` that grows whenever a listing differs from the
  last one seen.  A sync token is ``epoch`` + ``seq``.
* ``seen``: the last listing (href -> ETag); ``changes``: per href the
  ``seq`` at which it last changed (or disappeared).  The hrefs changed
  since a token are those with ``changes.seq`` > the token's.  Tombstones
  of long-gone hrefs are pruned; ``floor`` says below which ``seq`` a token
  can no longer be answered (the client then gets ``valid-sync-token`` and
  starts over, as RFC 6578 intends).
* ``hrefs``: a client PUTs to a name it chose; the store files the item
  under an id of its own.  The client's name is kept here, so it finds its
  item where it put it.
* ``props``: what a client set with PROPPATCH (display name, colour...).
* ``items``: facts Radicale needs about an item (UID, component, time range),
  keyed by ETag, so a listing or a time-range query does not parse every
  item each time.
* ``clients``: who logged in, with which program (User-Agent) and which
  password (``device``: the paired device whose app password it was, "" for
  the account's own), last from where and when (the web page lists them as
  devices, a paired one under its name); written at most once a minute per
  user, program and password.  A file from before ``device`` existed has its
  table rebuilt with the column (its rows kept, as the account's own).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from calsync.perms import private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    store TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    seq INTEGER NOT NULL,
    floor INTEGER NOT NULL,
    identity TEXT NOT NULL,
    modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    store TEXT NOT NULL, href TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (store, href)
);
CREATE TABLE IF NOT EXISTS changes (
    store TEXT NOT NULL, href TEXT NOT NULL, seq INTEGER NOT NULL, gone INTEGER NOT NULL,
    PRIMARY KEY (store, href)
);
CREATE INDEX IF NOT EXISTS changes_seq ON changes(store, seq);
CREATE TABLE IF NOT EXISTS hrefs (
    store TEXT NOT NULL, href TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (store, href)
);
CREATE TABLE IF NOT EXISTS props (
    store TEXT NOT NULL, user TEXT NOT NULL, props TEXT NOT NULL,
    PRIMARY KEY (store, user)
);
CREATE TABLE IF NOT EXISTS items (
    etag TEXT PRIMARY KEY, uid TEXT NOT NULL, component TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, used REAL NOT NULL
);
"""
CLIENTS = """CREATE TABLE IF NOT EXISTS clients (
    user TEXT NOT NULL, agent TEXT NOT NULL, device TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (user, agent, device)
)"""
SCHEMA += CLIENTS + ";\n"
CLIENTS_BEFORE_DEVICE = (  # the clients table of a file made before ``device`` existed
    "ALTER TABLE clients RENAME TO clients_old",
    CLIENTS,
    "INSERT INTO clients(user, agent, address, last)"
    " SELECT user, agent, address, last FROM clients_old",
    "DROP TABLE clients_old",
)

TOKEN_PREFIX = "http://calsync.invalid/ns/sync/"
MAX_TOMBSTONES = 5000  # gone hrefs remembered per store before the oldest are pruned
ITEM_CACHE_MAX = 200_000
SEEN_EVERY = 60.0  # seconds between two writes of one client's last login
MAX_AGENT = 200  # a User-Agent is kept this long at most
MAX_CLIENTS = 1000  # clients remembered (the longest unseen go first)


class InvalidToken(ValueError):
    """A sync token we cannot answer (not ours, too old, another epoch)."""


class Snapshot:
    """A store's state as the endpoint last saw it (epoch, seq, when)."""

    __slots__ = ("epoch", "modified", "seq")

    def __init__(self, epoch: str, seq: int, modified: float) -> None:
        self.epoch = epoch
        self.seq = seq
        self.modified = modified

    @property
    def token(self) -> str:
        return f"{TOKEN_PREFIX}{self.epoch}-{self.seq}"


class DavState:
    """The SQLite file; thread-safe (one connection, one lock: requests are short)."""

    def __init__(self, path: Path) -> None:
        private_file(path)  # owner-only; SQLite gives its -wal and -shm the same mode
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._add_client_device()
        # store -> {href: etag}: the last listing, so a quiet refresh is a dict compare
        self._seen: dict[str, dict[str, str]] = {}
        self._client_written: dict[tuple[str, str, str], float] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _add_client_device(self) -> None:
        """Rebuild a ``clients`` table without ``device`` (see the module docstring)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(clients)")}
            if "device" not in columns:
                for statement in CLIENTS_BEFORE_DEVICE:
                    self._db.execute(statement)

    # -- change tracking ---------------------------------------------------------------

    def refresh(
        self, store: str, identity: str, current: dict[str, str], keep: set[str] | None = None
    ) -> Snapshot:
        """Compare ``current`` (href -> ETag) with the last listing; record what changed.

        ``keep``: hrefs that exist but could not be listed now (an item the
        store reports as unusable for the moment): not taken for gone.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT epoch, seq, floor, identity, modified FROM collections WHERE store = ?",
                (store,),
            ).fetchone()
            if row is None or row[3] != identity:
                return self._start(store, identity, current)
            epoch, seq, _floor, _identity, modified = row
            seen = self._seen.get(store)
            if seen is None:
                seen = dict(
                    self._db.execute("SELECT href, etag FROM seen WHERE store = ?", (store,))
                )
                self._seen[store] = seen
            if keep:
                current = {**{h: seen[h] for h in keep if h in seen}, **current}
            if seen == current:
                return Snapshot(epoch, seq, modified)
            changed = [h for h, e in current.items() if seen.get(h) != e]
            gone = [h for h in seen if h not in current]
            seq += 1
            now = time.time()
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO changes(store, href, seq, gone) VALUES (?, ?, ?, ?)",
                    [(store, h, seq, 0) for h in changed] + [(store, h, seq, 1) for h in gone],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO seen(store, href, etag) VALUES (?, ?, ?)",
                    [(store, h, current[h]) for h in changed],
                )
                self._db.executemany(
                    "DELETE FROM seen WHERE store = ? AND href = ?", [(store, h) for h in gone]
                )
                self._db.execute(
                    "UPDATE collections SET seq = ?, modified = ? WHERE store = ?",
                    (seq, now, store),
                )
                if gone:
                    self._prune(store)
            self._seen[store] = dict(current)
            return Snapshot(epoch, seq, now)

    def _start(self, store: str, identity: str, current: dict[str, str]) -> Snapshot:
        """A store seen for the first time (or pointed elsewhere): a new epoch."""
        epoch = secrets.token_hex(8)
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            for table in ("seen", "changes"):
                self._db.execute(f"DELETE FROM {table} WHERE store = ?", (store,))
            self._db.execute(
                "INSERT OR REPLACE INTO collections(store, epoch, seq, floor, identity, modified)"
                " VALUES (?, ?, 1, 1, ?, ?)",
                (store, epoch, identity, now),
            )
            self._db.executemany(
                "INSERT INTO seen(store, href, etag) VALUES (?, ?, ?)",
                [(store, h, e) for h, e in current.items()],
            )
        self._seen[store] = dict(current)
        return Snapshot(epoch, 1, now)

    def _prune(self, store: str) -> None:
        (n,) = self._db.execute(
            "SELECT count(*) FROM changes WHERE store = ? AND gone = 1", (store,)
        ).fetchone()
        if n <= MAX_TOMBSTONES:
            return
        (cut,) = self._db.execute(
            "SELECT seq FROM changes WHERE store = ? AND gone = 1"
            " ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (store, MAX_TOMBSTONES // 2),
        ).fetchone()
        self._db.execute(
            "DELETE FROM changes WHERE store = ? AND gone = 1 AND seq <= ?", (store, cut)
        )
        self._db.execute("UPDATE collections SET floor = ? WHERE store = ?", (cut, store))

    def changed_since(self, store: str, token: str) -> list[str]:
        """Hrefs changed or gone after ``token``; InvalidToken when it cannot be answered."""
        if not token.startswith(TOKEN_PREFIX):
            raise InvalidToken(f"not a sync token of this server: {token!r}")
        epoch, _, seq_text = token[len(TOKEN_PREFIX) :].rpartition("-")
        if not seq_text.isdigit():
            raise InvalidToken(f"malformed sync token: {token!r}")
        old = int(seq_text)
        with self._lock:
            row = self._db.execute(
                "SELECT epoch, seq, floor FROM collections WHERE store = ?", (store,)
            ).fetchone()
            if row is None or row[0] != epoch:
                raise InvalidToken("sync token of an earlier state of this collection")
            if old > row[1]:
                raise InvalidToken("sync token from the future")
            if old < row[2]:
                raise InvalidToken("sync token too old: changes since then were forgotten")
            return [
                h
                for (h,) in self._db.execute(
                    "SELECT href FROM changes WHERE store = ? AND seq > ? ORDER BY seq, href",
                    (store, old),
                )
            ]

    # -- client-chosen hrefs -------------------------------------------------------------

    def hrefs(self, store: str) -> dict[str, str]:
        """href -> store id, for items a client filed under a name of its own."""
        with self._lock:
            return dict(self._db.execute("SELECT href, id FROM hrefs WHERE store = ?", (store,)))

    def set_href(self, store: str, href: str, id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO hrefs(store, href, id) VALUES (?, ?, ?)", (store, href, id)
            )

    def forget_hrefs(self, store: str, hrefs: list[str]) -> None:
        if not hrefs:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "DELETE FROM hrefs WHERE store = ? AND href = ?", [(store, h) for h in hrefs]
            )

    # -- clients --------------------------------------------------------------------------

    def client_due(self, user: str, agent: str, now: float, device: str = "") -> bool:
        """Whether a login of ``user`` with ``agent`` (and ``device``'s app password, ""
        for the account's own) is worth writing now (cheap)."""
        last = self._client_written.get((user, agent[:MAX_AGENT], device))
        return last is None or now - last >= SEEN_EVERY

    def client_seen(
        self, user: str, agent: str, address: str, now: float, device: str = ""
    ) -> None:
        """Remember a login (a few writes a minute at most: ``client_due`` first)."""
        agent = agent[:MAX_AGENT]
        with self._lock:
            self._client_written[(user, agent, device)] = now
            self._db.execute(
                "INSERT OR REPLACE INTO clients(user, agent, device, address, last)"
                " VALUES (?, ?, ?, ?, ?)",
                (user, agent, device, address, now),
            )
            self._db.execute(
                "DELETE FROM clients WHERE rowid NOT IN "
                "(SELECT rowid FROM clients ORDER BY last DESC LIMIT ?)",
                (MAX_CLIENTS,),
            )

    def clients(self) -> list[tuple[str, str, str, float, str]]:
        """(user, agent, address, last login, device: "" for the account's own
        password), the latest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT user, agent, address, last, device FROM clients ORDER BY last DESC"
            ).fetchall()
        return [(str(u), str(a), str(ad), float(t), str(d)) for u, a, ad, t, d in rows]

    # -- properties ----------------------------------------------------------------------

    def props(self, store: str, user: str) -> dict[str, str]:
        with self._lock:
            row = self._db.execute(
                "SELECT props FROM props WHERE store = ? AND user = ?", (store, user)
            ).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def set_props(self, store: str, user: str, props: dict[str, str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO props(store, user, props) VALUES (?, ?, ?)",
                (store, user, json.dumps(props, sort_keys=True)),
            )

    # -- item facts ----------------------------------------------------------------------

    def item_facts(self, etags: list[str]) -> dict[str, tuple[str, str, int, int]]:
        """ETag -> (uid, component, start, end) for those known."""
        out: dict[str, tuple[str, str, int, int]] = {}
        with self._lock:
            for i in range(0, len(etags), 500):
                chunk = etags[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for etag, uid, comp, start, end in self._db.execute(
                    f'SELECT etag, uid, component, start, "end" FROM items WHERE etag IN ({marks})',
                    chunk,
                ):
                    out[etag] = (uid, comp, start, end)
        return out

    def remember_facts(self, facts: dict[str, tuple[str, str, int, int]]) -> None:
        if not facts:
            return
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                'INSERT OR REPLACE INTO items(etag, uid, component, start, "end", used)'
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(e, u, c, s, t, now) for e, (u, c, s, t) in facts.items()],
            )
            (n,) = self._db.execute("SELECT count(*) FROM items").fetchone()
            if n > ITEM_CACHE_MAX:
                self._db.execute(
                    "DELETE FROM items WHERE etag IN "
                    "(SELECT etag FROM items ORDER BY used LIMIT ?)",
                    (n - ITEM_CACHE_MAX // 2,),
                )
