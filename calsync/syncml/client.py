"""The SyncML client session: a state machine, bytes in, bytes out, no I/O.

Theory of operation
===================

calsync as the *client* of a SyncML server (SyncEvolution, Funambol, Horde,
calsync's own ``calsync serve``).  One ``ClientSession`` is one conversation
about one datastore; the caller (``client_http.run_session``) posts each
message and feeds the reply back::

    client (this module)                      server
    pkg 1  Cred, Put DevInf, Alert(mode,    ->
           Last/Next anchors), Final
                                            <- pkg 2  Status SyncHdr (212 + Chal),
                                                      Status Alert (200, or 508:
                                                      slow sync forced), its Alert
    pkg 3  Statuses, Sync: our changes      ->        (may span messages: no Final
           (Add/Replace/Delete by our LUID)           until the last; the server
                                                      answers the others with
                                                      statuses and Alert 222)
                                            <- pkg 4  Statuses for our changes, its
                                                      Sync (Add by its GUID,
                                                      Replace/Delete by our LUID);
                                                      may span messages: we answer
                                                      each with statuses + Alert 222
    pkg 5  Statuses, Map (GUID -> LUID)     ->
                                            <- pkg 6  Statuses, Final: done

The session never touches a socket or a database.  What it needs from the
local side it asks a ``ClientBackend`` (the mirror of what the server has,
``client_mirror.MirrorBackend``; tests use a dictionary):

- ``begin(mode)`` once the server's Alert fixed the sync type (a server may
  turn our two-way into a slow sync: status 508 + Alert 201);
- ``outgoing(mode, push)`` the changes for package 3: pending changes in a
  two-way or one-way-from-client sync, every item as Add in a refresh from
  the client, nothing in a slow sync (the server then sends all it has and
  the backend matches it by UID; what the server lacks waits for the next
  two-way session), nothing when the server is the only source (204/205) or
  ``push`` is off (a dry run);
- ``sent(changes)`` just before a message carrying them leaves, so Adds are
  known to be in flight if the session dies;
- ``results(...)`` the server's statuses for our changes, as they arrive;
- ``apply(changes)`` the server's changes, message by message, *before* we
  answer them: every status we send reflects what was stored; the answer
  gives the LUID each Add was stored under, for the Map;
- ``finish(ok, ...)`` at the end: anchors move only when ``ok``.

Rules
-----

Authentication
    ``syncml:auth-md5`` with the NextNonce of the server's last challenge
    (an empty nonce on first contact, which some servers accept), or
    ``syncml:auth-basic``.  A 401/407 answer carrying a challenge ends the
    session with ``AuthRequired``; the caller retries once in a new session
    with the new nonce, then reports wrong credentials.  Every challenge's
    NextNonce is kept (``next_nonce``) for the next session.

Anchors
    ``Last`` is our ``Next`` of the last session that finished well (none on
    a first sync: then, and whenever the backend says a slow sync is due, an
    incremental request is sent as 201).  Our status for the server's Alert
    echoes its ``Next`` anchor.

Messages
    Statuses go first, then queued commands, then changes, all under the
    server's MaxMsgSize; what does not fit goes in the next message of the
    same package (no Final).  An item too large for any message goes in
    chunks (``MoreData``, ``Size`` on the first) when the server announced a
    MaxObjSize, else it is reported as failed (413).  Chunks the server sends
    are put together before they reach ``apply`` (213 per chunk).

Failure
    Anything unexpected (a refused Sync, a missing Alert, a reply that does
    not decode, an HTTP error) raises ``SessionFailed``; the caller then calls
    ``finish(ok=False)``.  What was applied stays applied (the mirror is right
    about what it received); Adds in flight make the next session slow, so
    the server matches them instead of adding them twice.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urljoin

from calsync.syncml import auth, codec
from calsync.syncml import devinf as di
from calsync.syncml.large import MIN_CHUNK, size_matches, utf8_prefix, wire_data
from calsync.syncml.model import (
    CHUNK_ACCEPTED,
    COMMAND_NOT_ALLOWED,
    INCOMPLETE_COMMAND,
    INVALID_CREDENTIALS,
    MISSING_CREDENTIALS,
    NEXT_MESSAGE,
    NOT_FOUND,
    OK,
    ONE_WAY_FROM_CLIENT,
    ONE_WAY_FROM_SERVER,
    OPTIONAL_FEATURE_NOT_SUPPORTED,
    REFRESH_FROM_CLIENT,
    REFRESH_FROM_SERVER,
    REFRESH_REQUIRED,
    REQUEST_ENTITY_TOO_LARGE,
    SERVER_ALERTED,
    SIZE_MISMATCH,
    SLOW_SYNC,
    SYNC_ALERTS,
    TWO_WAY,
    Alert,
    Anchor,
    BodyCommand,
    Change,
    Cred,
    DecodeError,
    Get,
    Header,
    Item,
    Map,
    MapItem,
    Message,
    Meta,
    Node,
    ProtocolError,
    Put,
    Results,
    Status,
    Sync,
    Unknown,
    build_command,
    build_header,
    is_success,
)
from calsync.syncml.wbxml import DEFAULT_LIMITS, Limits

log = logging.getLogger("calsync.syncml.client")

ICAL_TYPE = "text/calendar"
VCAL_TYPE = "text/x-vcalendar"
FORMATS = {"ical20": (ICAL_TYPE, "2.0"), "vcal10": (VCAL_TYPE, "1.0")}
MODE_NAMES = {
    TWO_WAY: "two-way",
    SLOW_SYNC: "slow",
    ONE_WAY_FROM_CLIENT: "one-way-from-client",
    REFRESH_FROM_CLIENT: "refresh-from-client",
    ONE_WAY_FROM_SERVER: "one-way-from-server",
    REFRESH_FROM_SERVER: "refresh-from-server",
}
INCREMENTAL = (TWO_WAY, ONE_WAY_FROM_CLIENT, ONE_WAY_FROM_SERVER)
MIN_MESSAGE = 4096  # smallest message budget we work with, whatever a server says
DEFAULT_SERVER_MSG = 64_000  # when a server names no MaxMsgSize


# -- what the session exchanges with its backend ------------------------------------------


@dataclass
class LocalChange:
    """One change we send: addressed by our LUID."""

    op: str  # Add | Replace | Delete
    luid: str
    data: bytes | None = None
    uid: str | None = None  # for messages only


@dataclass
class ServerChange:
    """One change the server sent (put together from its chunks)."""

    op: str  # Add | Replace | Delete
    guid: str | None  # the server's id (Adds)
    luid: str | None  # our id (Replace, Delete)
    data: bytes | None = None
    content_type: str | None = None
    soft: bool = False


@dataclass
class Applied:
    """How a server change was stored: the status to answer, the LUID of an Add."""

    code: int
    luid: str | None = None


class ClientBackend(Protocol):
    """The local side of a session (see the module docstring)."""

    def begin(self, mode: int) -> None: ...

    def outgoing(self, mode: int, push: bool) -> list[LocalChange]: ...

    def sent(self, changes: list[LocalChange]) -> None: ...

    def results(self, results: list[tuple[LocalChange, int]]) -> None: ...

    def apply(self, changes: list[ServerChange]) -> list[Applied]: ...

    def finish(self, ok: bool, mode: int, our_next: str, server_next: str | None) -> None: ...


@dataclass
class ClientConfig:
    """One SyncML account and datastore, as the session needs it."""

    url: str
    username: str
    password: str
    device_id: str
    datastore: str  # the server's name for it (Alert Target), e.g. "calendar"
    format: str = "ical20"  # ical20 | vcal10
    encoding: str = "wbxml"  # wbxml | xml
    auth: str = "md5"  # md5 | basic
    version: str = "1.2"
    max_msg_size: int = 1_000_000  # what we accept and advertise
    max_obj_size: int = 4_000_000
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]

    @property
    def local_uri(self) -> str:
        """Our datastore's name (Alert Source): ``./calendar`` for ``calendar``."""
        return "./" + (di.normalize_uri(self.datastore) or "calendar")


# -- failures ---------------------------------------------------------------------------


class SessionFailed(Exception):
    """The session cannot go on; ``status`` is the SyncML or HTTP code if there is one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AuthRequired(SessionFailed):
    """The server refused our credentials (401/407); ``nonce`` is its new challenge."""

    def __init__(self, message: str, *, status: int, chal_type: str | None, nonce: str | None):
        self.chal_type = chal_type
        self.nonce = nonce
        super().__init__(message, status=status)


# -- the session ------------------------------------------------------------------------


@dataclass
class Report:
    """What one session did, for logs and tests."""

    requested: int = TWO_WAY
    mode: int | None = None
    forced_slow: bool = False
    sent: dict[str, int] = field(default_factory=dict)  # op -> count confirmed
    received: dict[str, int] = field(default_factory=dict)  # op -> count stored
    rejected: list[tuple[LocalChange, int]] = field(default_factory=list)
    refused: list[tuple[ServerChange, int]] = field(default_factory=list)
    messages: int = 0


@dataclass
class _InChunk:
    op: str
    key: str
    content_type: str | None
    declared: int | None
    parts: list[bytes]
    cmd: Change
    target: str | None
    source: str | None


@dataclass
class _OutChunk:
    change: LocalChange
    data: bytes
    offset: int = 0


def _anchor_now(previous: str | None, now: str) -> str:
    if previous and previous >= now:  # two sessions in one second
        return previous + "1"
    return now


class ClientSession:
    """One conversation with a SyncML server about one datastore."""

    def __init__(
        self,
        config: ClientConfig,
        backend: ClientBackend,
        *,
        mode: int,
        session_id: str,
        last_anchor: str | None,
        now: str,
        nonce: str | None = None,
        slow_due: bool = False,
        push: bool = True,
    ) -> None:
        if mode not in SYNC_ALERTS:
            raise ValueError(f"not a sync type: {mode}")
        self.config = config
        self.backend = backend
        self.enc = config.encoding
        self.version = config.version
        self.session_id = session_id
        self.push = push
        self.nonce = nonce
        self.next_nonce: str | None = None  # the newest challenge, to keep
        self.chal_type: str | None = None
        self.target = config.url  # where the next message goes (RespURI once known)
        self.last_anchor = last_anchor
        self.our_next = _anchor_now(last_anchor, now)
        requested = mode
        if mode in INCREMENTAL and (last_anchor is None or slow_due):
            requested = SLOW_SYNC
        self.report = Report(requested=requested)
        self.phase = "init"  # init -> sending -> receiving -> mapping -> done
        self.mode: int | None = None
        self.server_next: str | None = None
        self.server_max_msg = DEFAULT_SERVER_MSG
        self.server_max_obj: int | None = None
        self.out_msg_id = 0
        self.in_msg_id = 0
        self._cmd_id = 0
        self.statuses: deque[Status] = deque()
        self.commands: deque[BodyCommand] = deque()
        self.changes: deque[LocalChange] = deque()
        self.total_changes = 0
        self.sync_sent = False
        self.out_chunk: _OutChunk | None = None
        self.in_chunk: _InChunk | None = None
        self.maps: list[MapItem] = []
        self.awaiting: dict[tuple[int, int], tuple[LocalChange, bool]] = {}
        self._sent_final = False

    # -- public -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def content_type(self) -> str:
        return codec.content_type(self.enc)

    def first(self) -> bytes:
        """Package 1: credentials, our DevInf, the Alert."""
        self.commands.append(self._devinf_put())
        self.commands.append(
            Alert(
                cmd_id=0,
                code=self.report.requested,
                items=[
                    Item(
                        target=self.config.datastore,
                        source=self.config.local_uri,
                        meta=Meta(
                            anchor=Anchor(self.last_anchor, self.our_next),
                            max_obj_size=self.config.max_obj_size,
                        ),
                    )
                ],
            )
        )
        return self._compose(final=True, cred=True)

    def receive(self, body: bytes, content_type: str | None) -> bytes | None:
        """Handle the server's reply; the next message to send, or None when done."""
        try:
            enc = codec.encoding_of(content_type, body)
            msg = codec.decode(body, enc, self.config.limits)
        except (DecodeError, ProtocolError) as e:
            raise SessionFailed(f"the server's reply is not valid SyncML: {e}") from None
        hdr = msg.header
        if msg.header.msg_id <= self.in_msg_id:
            raise SessionFailed(f"the server repeated message {hdr.msg_id}")
        self.in_msg_id = hdr.msg_id
        self.report.messages += 1
        if hdr.resp_uri:
            self.target = urljoin(self.config.url, hdr.resp_uri)
        if hdr.max_msg_size:
            self.server_max_msg = max(hdr.max_msg_size, MIN_MESSAGE)
        if hdr.max_obj_size:
            self.server_max_obj = hdr.max_obj_size
        self._cmd_id = 0
        self._status_for_header(hdr)
        self._handle(msg)
        return self._next(msg)

    # -- the server's commands ---------------------------------------------------------------

    def _handle(self, msg: Message) -> None:
        incoming: list[tuple[Status, ServerChange]] = []
        results: list[tuple[LocalChange, int]] = []
        for cmd in msg.commands:
            if isinstance(cmd, Status):
                self._status(cmd, results)
            elif isinstance(cmd, Alert):
                self._alert(cmd)
            elif isinstance(cmd, Sync):
                self._sync(cmd, incoming)
            elif isinstance(cmd, Get):
                self._get(cmd)
            elif isinstance(cmd, Put | Results):
                ref = cmd.items[0].source if cmd.items else None
                self._answer(cmd, OK, source=ref)
            elif isinstance(cmd, Map | Change):
                self._answer(cmd, COMMAND_NOT_ALLOWED)
            else:
                self._answer(cmd, OPTIONAL_FEATURE_NOT_SUPPORTED)
        if results:
            self.backend.results(results)
            for mine, code in results:
                if is_success(code):
                    self.report.sent[mine.op] = self.report.sent.get(mine.op, 0) + 1
                else:
                    self.report.rejected.append((mine, code))
        if incoming:
            applied = self.backend.apply([c for _, c in incoming])
            for (status, theirs), got in zip(incoming, applied, strict=True):
                status.code = got.code
                if is_success(got.code):
                    self.report.received[theirs.op] = self.report.received.get(theirs.op, 0) + 1
                else:
                    self.report.refused.append((theirs, got.code))
                if theirs.op == "Add" and got.luid and theirs.guid and is_success(got.code):
                    self.maps.append(MapItem(target=theirs.guid, source=got.luid))

    def _status(self, st: Status, results: list[tuple[LocalChange, int]]) -> None:
        if st.cmd == "SyncHdr":
            if st.chal is not None:
                self.chal_type = st.chal.type or self.chal_type
                if st.chal.next_nonce:
                    self.next_nonce = st.chal.next_nonce
            if st.code in (INVALID_CREDENTIALS, MISSING_CREDENTIALS):
                raise AuthRequired(
                    f"the server refused the credentials of user {self.config.username!r} "
                    f"(status {st.code})",
                    status=st.code,
                    chal_type=st.chal.type if st.chal else None,
                    nonce=st.chal.next_nonce if st.chal else None,
                )
            if not is_success(st.code):
                raise SessionFailed(
                    f"the server refused the session (status {st.code})", status=st.code
                )
            return
        sent = self.awaiting.pop((st.msg_ref, st.cmd_ref), None)
        if sent is not None:
            change, chunk = sent
            if chunk and st.code == CHUNK_ACCEPTED:
                return
            results.append((change, st.code))
            if not is_success(st.code):
                log.warning(
                    "%s: the server refused %s of %s (%s): status %d",
                    self.config.datastore,
                    change.op,
                    change.uid or change.luid,
                    change.luid,
                    st.code,
                )
            return
        if st.cmd == "Alert" and self.phase == "init":
            if st.code == REFRESH_REQUIRED:
                self.report.forced_slow = True
                log.info("%s: the server wants a slow sync (status 508)", self.config.datastore)
            elif st.code == NOT_FOUND:
                raise SessionFailed(
                    f"the server has no datastore {self.config.datastore!r} (status 404)",
                    status=st.code,
                )
            elif not is_success(st.code):
                raise SessionFailed(
                    f"the server refused to sync {self.config.datastore!r} (status {st.code})",
                    status=st.code,
                )
        elif st.cmd == "Sync" and not is_success(st.code):
            raise SessionFailed(
                f"the server refused our changes to {self.config.datastore!r} (status {st.code})",
                status=st.code,
            )
        elif st.cmd == "Map" and not is_success(st.code):
            raise SessionFailed(f"the server refused our Map (status {st.code})", status=st.code)
        elif st.cmd == "Put" and not is_success(st.code):
            log.info("the server did not take our device information (status %d)", st.code)

    def _alert(self, alert: Alert) -> None:
        if alert.code == NEXT_MESSAGE:
            self._answer(alert, OK)
            return
        code = SERVER_ALERTED.get(alert.code, alert.code)
        item = alert.items[0] if alert.items else Item()
        if code not in SYNC_ALERTS or self.phase != "init" or self.mode is not None:
            self._answer(alert, COMMAND_NOT_ALLOWED, target=item.target, source=item.source)
            return
        mine = item.target and di.normalize_uri(item.target) == di.normalize_uri(
            self.config.local_uri
        )
        if item.target and not mine:
            self._answer(alert, NOT_FOUND, target=item.target, source=item.source)
            return
        anchor = item.meta.anchor if item.meta and item.meta.anchor else Anchor()
        self.server_next = anchor.next
        self.mode = code
        self.report.mode = code
        echo = Node("Anchor")
        echo.add("Next", anchor.next or "")
        self._answer(
            alert, OK, target=item.target, source=item.source, items=[Item(data_node=echo)]
        )
        if code != self.report.requested:
            log.info(
                "%s: we asked for %s, the server runs %s",
                self.config.datastore,
                MODE_NAMES.get(self.report.requested),
                MODE_NAMES.get(code, code),
            )
        self.backend.begin(code)

    def _get(self, get: Get) -> None:
        item = get.items[0] if get.items else None
        uri = item.target if item else None
        if uri is None or "devinf" not in uri.lower():
            self._answer(get, NOT_FOUND, target=uri)
            return
        self._answer(get, OK, target=uri)
        self.commands.append(
            Results(
                cmd_id=0,
                msg_ref=self.in_msg_id,
                cmd_ref=get.cmd_id,
                meta=Meta(type=self._devinf_type()),
                items=[Item(source=uri, data_node=self._devinf())],
            )
        )

    def _sync(self, sync: Sync, incoming: list[tuple[Status, ServerChange]]) -> None:
        target, source = sync.target, sync.source
        if self.phase != "receiving" or self.mode is None:
            self._answer(sync, COMMAND_NOT_ALLOWED, target=target, source=source)
            for change in sync.changes:
                self.statuses.append(self._change_status(change, COMMAND_NOT_ALLOWED))
            return
        if sync.target and di.normalize_uri(sync.target) != di.normalize_uri(self.config.local_uri):
            self._answer(sync, NOT_FOUND, target=target, source=source)
            for change in sync.changes:
                self.statuses.append(self._change_status(change, NOT_FOUND))
            return
        self._answer(sync, OK, target=target, source=source)
        for change in sync.changes:
            if isinstance(change, Unknown) or change.kind not in ("Add", "Replace", "Delete"):
                self.statuses.append(self._change_status(change, OPTIONAL_FEATURE_NOT_SUPPORTED))
                continue
            for item in change.items or [Item()]:
                self._incoming(change, item, incoming)

    def _incoming(
        self, change: Change, item: Item, incoming: list[tuple[Status, ServerChange]]
    ) -> None:
        op = change.kind
        guid = item.source if op == "Add" else None
        luid = item.target if op != "Add" else None
        if op != "Add" and luid is None:
            luid = item.source  # some servers address by Source
        key = guid or luid
        status = Status(
            0,
            self.in_msg_id,
            change.cmd_id,
            op,
            OK,
            target_refs=[luid] if luid and op != "Add" else [],
            source_refs=[guid] if guid else [],
        )
        self.statuses.append(status)
        if not key:
            status.code = INCOMPLETE_COMMAND
            return
        if self.mode in (ONE_WAY_FROM_CLIENT, REFRESH_FROM_CLIENT):
            status.code = COMMAND_NOT_ALLOWED  # we were to send only
            return
        meta = item.meta or Meta()
        cmeta = change.meta or Meta()
        ctype = meta.type or cmeta.type
        data = item.data
        if data is not None and (meta.format or cmeta.format) == "b64":
            try:
                data = base64.b64decode(data, validate=False)
            except (binascii.Error, ValueError):
                status.code = 400
                return
        chunk = self.in_chunk
        if chunk is not None and (chunk.key != key or chunk.op != op):
            log.warning("the server abandoned the large object %s", chunk.key)
            self.in_chunk = chunk = None
        if item.more_data or chunk is not None:
            if chunk is None:
                declared = meta.size or cmeta.size
                if declared is not None and declared > self.config.max_obj_size:
                    status.code = REQUEST_ENTITY_TOO_LARGE
                    return
                chunk = _InChunk(op, key, ctype, declared, [], change, luid, guid)
                self.in_chunk = chunk
            chunk.parts.append(data or b"")
            if sum(len(p) for p in chunk.parts) > self.config.max_obj_size:
                self.in_chunk = None
                status.code = REQUEST_ENTITY_TOO_LARGE
                return
            if item.more_data:
                status.code = CHUNK_ACCEPTED
                return
            self.in_chunk = None
            data = b"".join(chunk.parts)
            ctype = ctype or chunk.content_type
            if chunk.declared is not None and not size_matches(
                len(data), chunk.declared, data, self.enc == "xml"
            ):
                status.code = SIZE_MISMATCH
                return
        if op != "Delete" and data is None:
            status.code = INCOMPLETE_COMMAND
            return
        incoming.append(
            (status, ServerChange(op, guid, luid, data, ctype, soft=change.soft_delete))
        )

    # -- moving between packages ----------------------------------------------------------------

    def _next(self, msg: Message) -> bytes | None:
        if self.phase == "init":
            if not msg.final:
                return self._compose(final=False, alert_next=True)
            if self.mode is None:
                raise SessionFailed(
                    f"the server did not agree to sync {self.config.datastore!r} "
                    "(no Alert for it in its answer)"
                )
            self.phase = "sending"
            changes = self.backend.outgoing(self.mode, self.push)
            self.changes.extend(changes)
            self.total_changes = len(changes)
            return self._compose(final=True)
        if self.phase == "sending":
            return self._compose(final=True)
        if self.phase == "receiving":
            if not msg.final:
                return self._compose(final=False, alert_next=True)
            if self.in_chunk is not None:
                log.warning("the server never completed the large object %s", self.in_chunk.key)
                self.in_chunk = None
            if not self.maps and all(isinstance(c, Status) for c in msg.commands):
                # nothing to confirm (a one-way sync from us): the server is done, and
                # so are we; a package 5 would reach a session that is over
                self._finish()
                return None
            self.phase = "mapping"
            if self.maps:
                assert self.mode is not None
                self.commands.append(
                    Map(
                        cmd_id=0,
                        target=self.config.datastore,
                        source=self.config.local_uri,
                        items=list(self.maps),
                    )
                )
                self.maps = []
            return self._compose(final=True)
        if self.phase == "mapping":
            if not self._sent_final:  # package 5 did not fit in one message
                return self._compose(final=True)
            if not msg.final:  # package 6 in several messages
                return self._compose(final=False, alert_next=True)
            self._finish()
            return None
        raise SessionFailed("the session is over")

    def _finish(self) -> None:
        assert self.mode is not None
        if self.awaiting:
            log.warning(
                "%s: the server never answered %d of our changes",
                self.config.datastore,
                len(self.awaiting),
            )
        self.phase = "done"
        self.backend.finish(True, self.mode, self.our_next, self.server_next)

    # -- composing messages -----------------------------------------------------------------------

    def _next_id(self) -> int:
        self._cmd_id += 1
        return self._cmd_id

    def _header(self, cred: bool) -> Header:
        h = Header(
            ver_dtd=self.version,
            ver_proto=f"SyncML/{self.version}",
            session_id=self.session_id,
            msg_id=self.out_msg_id,
            target=self.target,
            source=self.config.device_id,
            source_name=self.config.username,
            max_msg_size=self.config.max_msg_size,
            max_obj_size=self.config.max_obj_size if self.version != "1.0" else None,
        )
        if cred:
            h.cred = self._cred()
        return h

    def _cred(self) -> Cred:
        cfg = self.config
        if cfg.auth == "basic":
            return Cred(auth.BASIC, "b64", auth.basic_credential(cfg.username, cfg.password))
        nonce = auth.decode_nonce(self.nonce) if self.nonce else b""
        data = auth.md5_credential(cfg.username, cfg.password, nonce, version=self.version)
        return Cred(auth.MD5, "b64", data)

    def _compose(self, *, final: bool, cred: bool = False, alert_next: bool = False) -> bytes:
        """The next message: statuses, commands, then changes, under the server's limit.

        ``final``: the package may end here (it does only if nothing is left).
        """
        self.out_msg_id += 1
        self._cmd_id = 0
        out = Message(self._header(cred))
        budget = max(int(self.server_max_msg * 0.95) - 256, MIN_MESSAGE)
        used = codec.size_of(build_header(out.header), self.enc) + 64
        empty = used
        for queue in (self.statuses, self.commands):
            while queue and (queue is self.statuses or not self.statuses):
                cmd = queue[0]
                cmd.cmd_id = self._cmd_id + 1
                size = codec.size_of(build_command(cmd), self.enc)
                if used + size > budget and out.commands:
                    break
                queue.popleft()
                self._next_id()
                out.commands.append(cmd)
                used += size
        if self.phase == "sending" and not self.statuses and not self.commands:
            self._place_changes(out, used, budget, budget - empty - 1024)
        left = bool(self.statuses or self.commands)
        if self.phase == "sending":
            left = left or bool(self.changes or self.out_chunk) or not self.sync_sent
        out.final = final and not left
        self._sent_final = out.final
        if self.phase == "sending" and out.final:
            self.phase = "receiving"
        if alert_next or (not out.final and all(isinstance(c, Status) for c in out.commands)):
            out.commands.append(
                Alert(
                    cmd_id=self._next_id(),
                    code=NEXT_MESSAGE,
                    items=[Item(target=self.config.datastore, source=self.config.local_uri)],
                )
            )
        return codec.encode(out, self.enc)

    def _place_changes(self, out: Message, used: int, budget: int, capacity: int) -> None:
        """A Sync with as many of our changes as fit (always one Sync in the package)."""
        sync = Sync(
            cmd_id=self._cmd_id + 1,
            target=self.config.datastore,
            source=self.config.local_uri,
            number_of_changes=(
                self.total_changes if not self.sync_sent and self.version != "1.0" else None
            ),
        )
        wrapper = codec.size_of(build_command(sync), self.enc)
        if used + wrapper > budget and out.commands:
            return
        self._next_id()
        used += wrapper
        out.commands.append(sync)
        self.sync_sent = True
        leaving: list[LocalChange] = []
        try:
            while self.out_chunk is not None or self.changes:
                if self.out_chunk is not None:
                    used, done = self._place_chunk(sync, used, budget, leaving)
                    if not done:
                        return
                    continue
                change = self.changes[0]
                cmd = self._change_command(change, self._cmd_id + 1)
                size = codec.size_of(build_command(cmd), self.enc)
                if used + size <= budget:
                    self._next_id()
                    self.changes.popleft()
                    sync.changes.append(cmd)
                    self.awaiting[(self.out_msg_id, cmd.cmd_id)] = (change, False)
                    leaving.append(change)
                    used += size
                    continue
                if size <= capacity:
                    return  # fits in the next message
                self.changes.popleft()
                data = wire_data(change.data, self.enc)
                why = None
                if change.op == "Delete":
                    why = "a Delete larger than a message"
                elif self.version == "1.0" or self.server_max_obj is None:
                    why = "larger than the server's MaxMsgSize, and it takes no large objects"
                elif len(data) > self.server_max_obj:
                    why = f"larger than the server's MaxObjSize ({self.server_max_obj} bytes)"
                if why is not None:
                    log.error(
                        "%s: cannot send %s: %s",
                        self.config.datastore,
                        change.uid or change.luid,
                        why,
                    )
                    self.backend.results([(change, REQUEST_ENTITY_TOO_LARGE)])
                    self.report.rejected.append((change, REQUEST_ENTITY_TOO_LARGE))
                    continue
                self.out_chunk = _OutChunk(change, data)
        finally:
            if leaving:
                self.backend.sent(leaving)

    def _place_chunk(
        self, sync: Sync, used: int, budget: int, leaving: list[LocalChange]
    ) -> tuple[int, bool]:
        """The next piece of a large object; (used, whether it was the last)."""
        chunk = self.out_chunk
        assert chunk is not None
        probe = self._change_command(
            chunk.change, self._cmd_id + 1, data=b"", more=True, size=len(chunk.data)
        )
        overhead = codec.size_of(build_command(probe), self.enc) + 16
        room = budget - used - overhead
        if room < MIN_CHUNK:
            return used, False
        rest = chunk.data[chunk.offset :]
        piece = utf8_prefix(rest, room)
        last = len(piece) == len(rest)
        cmd = self._change_command(
            chunk.change,
            self._next_id(),
            data=piece,
            more=not last,
            size=len(chunk.data) if chunk.offset == 0 else None,
        )
        sync.changes.append(cmd)
        self.awaiting[(self.out_msg_id, cmd.cmd_id)] = (chunk.change, not last)
        if chunk.offset == 0:
            leaving.append(chunk.change)
        chunk.offset += len(piece)
        used += codec.size_of(build_command(cmd), self.enc)
        if last:
            self.out_chunk = None
            return used, True
        return used, False

    def _change_command(
        self,
        change: LocalChange,
        cmd_id: int,
        *,
        data: bytes | None = None,
        more: bool = False,
        size: int | None = None,
    ) -> Change:
        meta = Meta(type=self.config.content_type)
        item = Item(source=change.luid)
        if change.op != "Delete":
            item.data = wire_data(change.data, self.enc) if data is None else data
            item.more_data = more
        else:
            meta = Meta()
        if size is not None:
            meta.size = size
        return Change(cmd_id=cmd_id, kind=change.op, meta=meta or None, items=[item])

    # -- statuses we send ------------------------------------------------------------------

    def _status_for_header(self, hdr: Header) -> None:
        self.statuses.appendleft(
            Status(
                cmd_id=0,
                msg_ref=hdr.msg_id,
                cmd_ref=0,
                cmd="SyncHdr",
                code=OK,
                target_refs=[hdr.target] if hdr.target else [],
                source_refs=[hdr.source] if hdr.source else [],
            )
        )

    def _answer(
        self,
        cmd: BodyCommand,
        code: int,
        *,
        target: str | None = None,
        source: str | None = None,
        items: list[Item] | None = None,
    ) -> Status:
        name = cmd.kind if isinstance(cmd, Change) else cmd.name if isinstance(cmd, Unknown) else ""
        st = Status(
            cmd_id=0,
            msg_ref=self.in_msg_id,
            cmd_ref=cmd.cmd_id,
            cmd=name or type(cmd).__name__,
            code=code,
            target_refs=[target] if target else [],
            source_refs=[source] if source else [],
            items=items or [],
        )
        self.statuses.append(st)
        return st

    def _change_status(self, cmd: Change | Unknown, code: int) -> Status:
        name = cmd.kind if isinstance(cmd, Change) else cmd.name
        refs: list[str] = []
        if isinstance(cmd, Change) and cmd.items:
            ref = cmd.items[0].source or cmd.items[0].target
            refs = [ref] if ref else []
        return Status(0, self.in_msg_id, cmd.cmd_id, name, code, source_refs=refs)

    # -- device information ----------------------------------------------------------------

    def _devinf_type(self) -> str:
        return codec.DEVINF_WBXML if self.enc == "wbxml" else codec.DEVINF_XML

    def _devinf(self) -> Node:
        ctype, ver = FORMATS[self.config.format]
        node = di.build(
            self.config.device_id,
            [di.ServerDataStore(self.config.local_uri, self.config.datastore, [(ctype, ver)])],
            ver_dtd=self.version,
            mod="calsync",
            large_objects=self.version != "1.0",
        )
        for child in node.children:  # we are a client, not a server
            if child.name == "DevTyp":
                child.text = "workstation"
            elif child.name == "HwV":
                child.text = "unknown"
        return node

    def _devinf_put(self) -> Put:
        uri = "./devinf" + self.version.replace(".", "")
        return Put(
            cmd_id=0,
            meta=Meta(type=self._devinf_type()),
            items=[Item(source=uri, data_node=self._devinf())],
        )
