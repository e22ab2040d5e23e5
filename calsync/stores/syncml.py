"""SyncML store: a datastore on a SyncML server, with calsync as the client.

For users with an account on a SyncML server (a Funambol-style service,
SyncEvolution's server, Horde, calsync's own ``calsync serve``)::

    [stores.work]
    type = "syncml"
    url = "https://sync.example.org/sync"
    username = "alice"
    password_command = "pass show syncml/alice"
    device_id = "calsync-laptop"      # the device id the server knows us by
    datastore = "calendar"            # the server's name for the datastore
    format = "ical20"                 # ical20 | vcal10 (what travels on the wire)
    encoding = "wbxml"                # wbxml | xml

SyncML exchanges *changes*, so the store keeps a mirror of what the server
holds (``calsync.syncml.client_mirror``) and is *buffered*:

- ``list()`` runs a session that sends what is still queued and brings the
  server's changes into the mirror, then lists the mirror;
- ``add``/``update``/``delete`` only queue (one mirror transaction);
- ``flush()`` commits the queue, then sends it in a session of its own (the
  protocol lets a client send its changes only before it hears the server's,
  so a sync with changes both ways takes two sessions).

Which SyncML sync type each session uses follows the engine's mode and this
store's side of the pair (``begin_sync``): two-way 200 + 200; slow 201 then
200; refresh from the server 205 (nothing sent); refresh to it 203 (every
item sent, the server drops the rest); one-way from it 204 (our changes
wait in the mirror); one-way to it 200 + 200, the engine holding the
server's changes back in the mirror (a server answering a one-way sync from
the client, 202, may count its own changes as delivered for good:
SyncEvolution's does).  A first sync, lost anchors or Adds left unanswered
make any incremental request a slow sync (201); a server may force one (508)
too.  In a slow sync we send nothing and match what the server sends by its
id and UID, so nothing is duplicated (``calsync.syncml.client_mirror``).

Failures: the server unreachable, refusing the credentials or breaking off
during ``list`` -> ``StoreUnavailable`` (the pair is skipped, nothing is
deleted).  During ``flush`` -> ``FlushFailed``: the queue stays in the mirror
and goes out with the next sync; the engine keeps its status for those items
where it was, so the next sync converges.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from calsync.items import Item, ItemError
from calsync.stores import (
    FlushFailed,
    Listing,
    NotFound,
    Option,
    PreconditionFailed,
    Store,
    StoreContext,
    StoreError,
    StoreUnavailable,
)
from calsync.stores._files import expand_path
from calsync.stores._tls import tls_verify
from calsync.syncml.client import MODE_NAMES, ClientConfig, Report, SessionFailed
from calsync.syncml.client_http import (
    AuthFailed,
    HttpTransport,
    Transport,
    TransportError,
    redact,
    run_session,
)
from calsync.syncml.client_mirror import MAX_ATTEMPTS, Row, ServerMirror, connect
from calsync.syncml.model import (
    ONE_WAY_FROM_SERVER,
    REFRESH_FROM_CLIENT,
    REFRESH_FROM_SERVER,
    SLOW_SYNC,
    TWO_WAY,
)

log = logging.getLogger("calsync.syncml.client")

DB_NAME = "syncml-client.sqlite"
LOCK_NAME = "syncml-client.lock"


def sessions_for(mode: str, side: str) -> tuple[int | None, int | None]:
    """(sync type of the session in ``list``, of the one in ``flush``); None: no session.

    ``side`` is this store's side of the pair: the engine's ``one-way-a-to-b``
    sends to this store when it is ``b``.
    """
    if mode == "two-way":
        return TWO_WAY, TWO_WAY
    if mode == "slow":
        return SLOW_SYNC, TWO_WAY
    if mode.startswith("one-way-"):
        to = mode[-1]
        # towards the server: two-way sessions, the server's changes wait in the mirror
        # (a server answering a one-way sync from us, 202, may count its own changes
        # as delivered: SyncEvolution's does, and they would never come)
        return (TWO_WAY, TWO_WAY) if to == side else (ONE_WAY_FROM_SERVER, None)
    if mode.startswith("refresh-from-"):
        source = mode[-1]
        return (REFRESH_FROM_SERVER, None) if source == side else (None, REFRESH_FROM_CLIENT)
    raise ValueError(f"unknown sync mode {mode!r}")


class SyncMLStore(Store):
    type = "syncml"
    buffered: ClassVar[bool] = True
    options: ClassVar[dict[str, Option]] = {
        "url": Option(str, "the SyncML server's URL, e.g. https://host/sync", required=True),
        "username": Option(str, "user name on the server", required=True),
        "password": Option(str, "password (prefer password_command)", secret=True),
        "password_command": Option(
            (str, list), "a command whose first line of output is the password"
        ),
        "device_id": Option(
            str,
            "the device id calsync announces (many servers accept only known ones)",
            required=True,
        ),
        "datastore": Option(
            str, "the server's name for the calendar datastore", default="calendar"
        ),
        "format": Option(
            str,
            "item format on the wire: ical20 (iCalendar 2.0) or vcal10 (vCalendar 1.0)",
            default="ical20",
            choices=("ical20", "vcal10"),
        ),
        "encoding": Option(
            str, "message encoding: wbxml or xml", default="wbxml", choices=("wbxml", "xml")
        ),
        "auth": Option(
            str,
            "credentials sent: md5 (syncml:auth-md5 with the server's nonce) or basic",
            default="md5",
            choices=("md5", "basic"),
        ),
        "verify_tls": Option(bool, "check the server's TLS certificate", default=True),
        "ca_file": Option(str, "CA certificate(s) to trust for this server (PEM)"),
        "timeout": Option((int, float), "seconds to wait for the server per message", default=120),
    }

    def __init__(
        self,
        name: str,
        ctx: StoreContext,
        url: str,
        *,
        username: str,
        password: Callable[[], str | None],
        device_id: str,
        datastore: str = "calendar",
        format: str = "ical20",
        encoding: str = "wbxml",
        auth: str = "md5",
        verify_tls: bool = True,
        ca_file: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        super().__init__(name, ctx)
        if not url.lower().startswith(("http://", "https://")):
            raise self.error(StoreError, f"url must be an http(s) URL, not {redact(url)!r}")
        if "@" in url.split("/")[2]:
            raise self.error(StoreError, "put the credentials in username/password, not in url")
        self.url = url
        self.username = username
        self._password = password
        self.device_id = device_id
        self.datastore = datastore
        self.format = format
        self.encoding = encoding
        self.auth = auth
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.timeout = float(timeout)
        self.pull: int | None = TWO_WAY
        self.push: int | None = TWO_WAY
        self.dry_run = False
        self._stack = contextlib.ExitStack()
        self._mirror: ServerMirror | None = None
        self._transport: Transport | None = None
        self._config: ClientConfig | None = None
        self._pulled = False
        self._in_tx = False
        self._written: set[str] = set()  # UIDs queued in this sync
        self.reports: list[Report] = []  # sessions of this sync (for logs and tests)

    @classmethod
    def from_config(cls, name: str, section: dict[str, Any], ctx: StoreContext) -> Store:
        from calsync.config import resolve_secret

        if "password" not in section and "password_command" not in section:
            raise StoreError("needs password or password_command", store=name)

        def password() -> str | None:
            return resolve_secret(section)

        return cls(
            name,
            ctx,
            section["url"],
            username=section["username"],
            password=password,
            device_id=section["device_id"],
            datastore=section.get("datastore", "calendar"),
            format=section.get("format", "ical20"),
            encoding=section.get("encoding", "wbxml"),
            auth=section.get("auth", "md5"),
            verify_tls=section.get("verify_tls", True),
            ca_file=(
                str(expand_path(section["ca_file"], ctx.config_dir))
                if section.get("ca_file")
                else None
            ),
            timeout=section.get("timeout", 120),
        )

    def identity(self) -> str:
        return (
            f"syncml:{redact(self.url)}#{self.datastore}"
            f"?user={self.username}&device={self.device_id}"
        )

    def describe(self) -> str:
        return f"SyncML datastore {self.datastore!r} at {redact(self.url)}"

    # -- setup ----------------------------------------------------------------------------

    def begin_sync(self, *, mode: str, side: str, dry_run: bool) -> None:
        self.pull, self.push = sessions_for(mode, side)
        self.dry_run = dry_run
        if dry_run and self.pull is not None:
            # a dry run only fetches: a refresh or slow session would reshape the
            # mirror (drop queued changes, re-queue what the server lacks)
            self.pull = TWO_WAY

    def _open(self) -> ServerMirror:
        if self._mirror is not None:
            return self._mirror
        from calsync.sync.lock import Busy, pair_lock

        try:
            self._stack.enter_context(pair_lock(self.ctx.cache_dir / LOCK_NAME))
        except Busy:
            raise self.error(
                StoreUnavailable, "another calsync is syncing with this SyncML server right now"
            ) from None
        db = connect(self.ctx.cache_dir / DB_NAME)
        self._stack.callback(db.close)
        self._mirror = ServerMirror(db, self.identity(), where=self.describe())
        return self._mirror

    def _client(self) -> tuple[ClientConfig, Transport]:
        if self._config is None:
            from calsync.config import ConfigError

            try:
                password = self._password()
            except ConfigError as e:
                raise self.error(StoreUnavailable, e.message) from None
            if password is None:
                raise self.error(StoreUnavailable, "no password (set password or password_command)")
            _warn_plain_http(self.url, self.auth, self.describe())
            self._config = ClientConfig(
                url=self.url,
                username=self.username,
                password=password,
                device_id=self.device_id,
                datastore=self.datastore,
                format=self.format,
                encoding=self.encoding,
                auth=self.auth,
            )
        if self._transport is None:
            self._transport = self.new_transport()
            self._stack.callback(self._transport.close)
        return self._config, self._transport

    def new_transport(self) -> Transport:
        """How messages travel (tests put a server core in-process here)."""
        return HttpTransport(timeout=self.timeout, verify=tls_verify(self.verify_tls, self.ca_file))

    def _session(self, mode: int, *, push: bool) -> Report:
        mirror = self._open()
        config, transport = self._client()
        report = run_session(config, mirror, transport, mode=mode, push=push)
        self.reports.append(report)
        log.info("%s: %s", self.describe(), _summary(report))
        return report

    # -- reading ----------------------------------------------------------------------------

    def list(self) -> Listing:
        mirror = self._open()
        if not self._pulled and self.pull is not None:
            self._pulled = True
            try:
                self._session(self.pull, push=not self.dry_run)
            except AuthFailed as e:
                raise self.error(StoreUnavailable, str(e)) from None
            except TransportError as e:
                raise self.error(StoreUnavailable, f"{e}; not syncing this time") from None
            except SessionFailed as e:
                raise self.error(
                    StoreUnavailable, f"the session with {redact(self.url)} failed: {e}"
                ) from None
        self._warn_parked(mirror)
        versions, uids = mirror.listing()
        return Listing(versions, uids=uids)

    def _warn_parked(self, mirror: ServerMirror) -> None:
        for row in mirror.parked():
            log.error(
                "%s: item %s is not on the server: it refused it (%s); it is sent again "
                "when it changes",
                self.describe(),
                row.uid,
                row.error or "?",
            )

    def _row(self, id: str) -> Row:
        row = self._open().row(id)
        if row is None or row.state != "live":
            raise self.error(NotFound, "not on the server", id)
        return row

    def get(self, id: str) -> tuple[Item, str]:
        row = self._row(id)
        return row.item, str(row.version)

    def get_many(self, ids: Iterable[str]) -> Iterator[tuple[str, Item | ItemError, str]]:
        for row in self._open().live(ids):
            yield row.luid, row.item, str(row.version)

    # -- writing (queued) ---------------------------------------------------------------------

    def _begin(self) -> ServerMirror:
        mirror = self._open()
        if not self._in_tx:
            mirror.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
        return mirror

    def _check(self, id: str, version: str) -> Row:
        row = self._row(id)
        if str(row.version) != version:
            raise self.error(PreconditionFailed, "changed since it was listed", id)
        return row

    def add(self, item: Item) -> tuple[str, str]:
        mirror = self._begin()
        luid = mirror.engine_add(item)
        self._written.add(item.uid)
        return luid, "1"

    def update(self, id: str, item: Item, version: str) -> str:
        mirror = self._begin()
        row = self._check(id, version)
        if item.uid != row.uid:
            item = item.with_uid(row.uid)
        self._written.add(row.uid)
        return str(mirror.engine_update(row, item))

    def delete(self, id: str, version: str) -> None:
        mirror = self._begin()
        row = self._check(id, version)
        self._written.add(row.uid)
        mirror.engine_delete(row)

    def flush(self) -> None:
        mirror = self._open()
        if self._in_tx:
            mirror.db.execute("COMMIT")
            self._in_tx = False
        if self.push is None or self.dry_run:
            return
        if not (self._written or mirror.pending_count() or self.push == REFRESH_FROM_CLIENT):
            return
        written, self._written = self._written, set()
        try:
            report = self._session(self.push, push=True)
            # a slow sync (forced by the server) cannot carry Deletes: one more session
            if report.mode == SLOW_SYNC and mirror.pending_count():
                self._session(TWO_WAY, push=True)
        except SessionFailed as e:
            raise FlushFailed(
                f"{e}; the changes are kept and sent with the next sync",
                store=self.name,
                uids=written,
            ) from None
        refused = {
            r.uid: r.error or "?"
            for r in mirror.rows("pending IS NOT NULL AND error IS NOT NULL")
            if r.uid in written
        }
        if refused:
            what = ", ".join(f"{uid} ({err})" for uid, err in sorted(refused.items())[:5])
            raise FlushFailed(
                f"the server refused {len(refused)} change(s): {what}; they are kept and "
                f"retried with the next syncs (up to {MAX_ATTEMPTS} times)",
                store=self.name,
                uids=set(refused),
            )

    def close(self) -> None:
        if self._in_tx and self._mirror is not None:
            self._mirror.db.execute("ROLLBACK")
            self._in_tx = False
        self._stack.close()
        self._mirror = None
        self._transport = None

    # -- calsync status ------------------------------------------------------------------------

    @classmethod
    def queued_status(cls, ctx: StoreContext) -> dict[str, Any] | None:
        """Changes waiting for the server (``calsync status``)."""
        import sqlite3
        import time

        path = ctx.cache_dir / DB_NAME
        if not path.exists():
            return None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return None
        try:
            rows = db.execute(
                "SELECT i.pending, i.uid, i.error, d.last_sync FROM items i "
                "JOIN datastores d ON d.ds = i.ds WHERE i.pending IS NOT NULL"
            ).fetchall()
        except sqlite3.Error:
            return None
        finally:
            db.close()
        if not rows:
            return None
        last = max((r[3] or 0.0) for r in rows)
        refused = sum(1 for r in rows if r[2])
        reason = "not yet confirmed by the SyncML server"
        if refused:
            reason += f" ({refused} refused by it)"
        return {
            "count": len(rows),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)) if last else "never",
            "reason": reason,
            "calendars": [{"items": [{"op": r[0], "uid": r[1]} for r in rows]}],
        }


def _warn_plain_http(url: str, auth: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "http" or _loopback(parts.hostname or ""):
        return
    what = "the calendar and the password" if auth == "basic" else "the calendar"
    log.warning("%s: plain http: %s travel unencrypted (use https)", where, what)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _summary(report: Report) -> str:
    mode = MODE_NAMES.get(report.mode or report.requested, str(report.mode))
    if report.forced_slow:
        mode += " (forced by the server)"
    got = report.received
    sent = report.sent
    text = (
        f"{mode}: received +{got.get('Add', 0)} ~{got.get('Replace', 0)} -{got.get('Delete', 0)}, "
        f"sent +{sent.get('Add', 0)} ~{sent.get('Replace', 0)} -{sent.get('Delete', 0)}"
    )
    if report.rejected:
        text += f", {len(report.rejected)} refused by the server"
    if report.refused:
        text += f", {len(report.refused)} of its items unusable here"
    return text
