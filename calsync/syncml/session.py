"""The SyncML server session: a state machine, bytes in, bytes out, no I/O.

Theory of operation
===================

A SyncML session is a conversation of HTTP round trips started by the device
(the client).  Messages are grouped into *packages*; a package may span
several messages, and its last message carries ``<Final/>``::

    device                                  server (this module)
    pkg 1  Cred, Put/Get DevInf, Alert/ds  ->
                                           <- pkg 2  Status (212 + Chal), Results
                                                     (our DevInf), Status per Alert
                                                     (200, or 508 = slow sync
                                                     forced), our Alert per ds
    pkg 3  Sync per ds: Add/Replace/Delete ->
                                           <- pkg 4  Statuses, Sync per ds with our
                                                     Add/Replace/Delete
    pkg 5  Statuses for our changes, Map   ->
                                           <- pkg 6  Statuses for the Maps

``ServerSession`` holds everything one conversation needs between round trips.
The transport calls ``receive(body, content_type, now)`` once per HTTP
request.  It returns a *generator*: each thing the session needs from the
outside world (a stored nonce, a datastore's anchors, "apply these device
changes to the mirror", "run the sync engine") is yielded as a request object
(``LoadNonce``, ``OpenDatastore``, ``ApplyChanges``, ``RunSync`` ...); the
transport performs it and sends the answer back in.  When the generator
returns, its value is the ``Reply`` to write to the wire.  The session itself
never touches a socket, a file or a database, so every rule below is testable
with a dictionary standing in for the world (``drive`` runs the loop).

Rules
-----

Identity and order
    The first message of a session must authenticate (``Cred``).  Every later
    message must come from the same device (SyncHdr Source) with the same
    SessionID and a higher MsgID; a message from another device is refused
    (``ForeignSession``) without touching this session.  A message repeated
    with the same MsgID and the same bytes (a client resending after a lost
    reply) gets the same reply again; anything else out of order is a
    ``ProtocolError``.  The transport routes later messages by the session
    token in our ``RespURI`` (``...?sessionid=TOKEN``), an unguessable value.

Authentication
    ``syncml:auth-md5`` against the nonce we issued to this device (never an
    empty one) or ``syncml:auth-basic`` when the account allows it.  Success:
    SyncHdr status 212 and a ``Chal`` with the next nonce; an md5 nonce is
    consumed in one step with the check (``ConsumeNonce``: of simultaneous
    replays of one credential exactly one can win).  Failure: 401 (407
    without credentials) + ``Chal`` with the nonce the device holds
    (``IssueNonce``; a fresh one on first contact), every command answered
    401, the session ends; the device retries in a new session.  A failure
    never rotates the nonce: whoever knows a device ID could otherwise lock
    the device out.  Header fields are bounded before anything is looked up,
    stored or logged (device ID 128 characters, other fields 256, the
    credential 1024): a longer one is a ``ProtocolError`` naming its length
    and start (a credential's never).
    Until the login succeeded a message may hold ``LOGIN_ELEMENTS`` elements
    (decoding happens before anyone is known).

Alerts (package 1)
    One per datastore; the target URI is resolved through the account's
    aliases (``./Calendar``, ``cal``, ``event`` ... -> ``calendar``); unknown
    ones get 404.  Codes 200-205 (and server-alerted 206-210) map onto engine
    modes.  An incremental request (200, 202, 204) whose ``Last`` anchor is not
    the one we stored at the end of the last good session, or for a datastore
    flagged as needing it (adds whose Map never came), is answered 508 and
    turned into a slow sync (our Alert says 201).  A resume (225: continue a
    session that broke off, e.g. when the daemon died) is answered the same
    way: we keep no suspended sessions, and the slow sync matches what both
    sides hold (SyncEvolution's client takes 508 as "do a slow sync").  Each
    Alert status echoes the device's ``Next`` anchor.  Sync Alerts after
    package 1 get 405.

Device changes (package 3)
    Only for datastores alerted in this session (else 404/405, nothing
    written).  Large objects (``MoreData``) are buffered until complete (213
    per chunk, 424 when the size does not add up, 413 above MaxObjSize).
    Each message's changes are applied to the device mirror before we answer
    it (``ApplyChanges``), so every status reflects what was stored.  Base64
    data (``Format b64``) is decoded first.

End of package 3
    ``RunSync`` per datastore: the transport runs the sync engine between the
    device's mirror and the account's store and returns what the device must
    now receive.  A datastore that fails (engine guard, store down) has its
    Sync status set to 510 when still unsent, gets an empty Sync, and its
    anchors are not committed (so the next session re-syncs it).

Our changes (package 4)
    Deletes and Replaces are addressed by the device's LUID (Item/Target),
    Adds by our GUID (Item/Source); NumberOfChanges goes in the first Sync of
    each datastore.  Messages stay under the device's MaxMsgSize: statuses
    first, then changes; what does not fit waits for the device's next message
    (Alert 222).  An item larger than a whole message is sent in chunks with
    ``MoreData`` when the device supports large objects, else reported as
    failed (413).  Before a reply carrying Adds leaves, ``Progress(sent=...)``
    records them as in flight: if the session dies before their Map arrives,
    the next session is a slow sync, which matches them instead of duplicating.

Confirmation (package 5)
    Device statuses for our changes and Maps (GUID -> LUID) are reported with
    ``Progress`` as each message arrives.  At the final message each
    datastore is closed with ``Finish`` (anchors committed when it went well)
    and the session is done.

Non-final messages
    When the device sends a message without Final and we have nothing but
    statuses to answer, the reply carries Alert 222 (next message).

Expiry
    ``expired(now)``: no message for ``timeout`` seconds.  The transport drops
    expired sessions; their device's next session starts afresh (in-flight
    adds then force a slow sync, see above).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

from calsync.syncml import auth, codec
from calsync.syncml import devinf as di
from calsync.syncml.large import MIN_CHUNK, size_matches, utf8_prefix, wire_data
from calsync.syncml.model import (
    ALREADY_EXISTS,
    AUTH_ACCEPTED,
    BAD_REQUEST,
    CHUNK_ACCEPTED,
    COMMAND_NOT_ALLOWED,
    DATASTORE_FAILURE,
    INCOMPLETE_COMMAND,
    INVALID_CREDENTIALS,
    MISSING_CREDENTIALS,
    NEXT_MESSAGE,
    NOT_FOUND,
    OK,
    ONE_WAY_FROM_CLIENT,
    ONE_WAY_FROM_SERVER,
    OPTIONAL_FEATURE_NOT_SUPPORTED,
    PROTOCOL_VERSION_NOT_SUPPORTED,
    REFRESH_FROM_CLIENT,
    REFRESH_FROM_SERVER,
    REFRESH_REQUIRED,
    REQUEST_ENTITY_TOO_LARGE,
    RESUME,
    SERVER_ALERTED,
    SIZE_MISMATCH,
    SLOW_SYNC,
    SYNC_ALERTS,
    TWO_WAY,
    Alert,
    Anchor,
    BodyCommand,
    Chal,
    Change,
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

log = logging.getLogger("calsync.syncml")

SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2")
ENGINE_MODES = {
    TWO_WAY: "two-way",
    SLOW_SYNC: "slow",
    ONE_WAY_FROM_CLIENT: "one-way-a-to-b",
    REFRESH_FROM_CLIENT: "refresh-from-a",
    ONE_WAY_FROM_SERVER: "one-way-b-to-a",
    REFRESH_FROM_SERVER: "refresh-from-b",
}
ICAL_TYPE = "text/calendar"
MIN_MESSAGE = 2048  # smallest message budget we work with, whatever a device says
VCAL_TYPE = "text/x-vcalendar"
# longest header fields taken (characters): device IDs are short (IMEI:..., a UUID) and
# end up in file names; a longer field is refused before it is stored or logged
MAX_DEVICE_ID = 128
MAX_FIELD = 256
MAX_CREDENTIAL = 1024
# elements of a message before login (package 1 of real devices has under 1,000; a
# message of empty elements would otherwise take ~100 bytes of tree per input byte)
LOGIN_ELEMENTS = 50_000


# -- configuration the session needs -----------------------------------------------------

DEFAULT_ALIASES = {
    "calendar": "calendar",
    "calendars": "calendar",
    "event": "calendar",
    "events": "calendar",
    "cal": "calendar",
    "scal": "calendar",
    "agenda": "calendar",
    "appointments": "calendar",
    "tasks": "tasks",
    "task": "tasks",
    "stask": "tasks",
    "todo": "tasks",
    "todos": "tasks",
}


@dataclass
class Account:
    """A SyncML account as the session sees it (the password is resolved)."""

    name: str
    password: str
    datastores: dict[str, str]  # datastore ("calendar"/"tasks") -> store name
    aliases: dict[str, str] = field(default_factory=dict)  # extra URI -> datastore
    auth: str = "any"  # any | md5 | basic

    def resolve(self, uri: str | None, defaults: dict[str, str]) -> str | None:
        """The datastore a device's target URI names, if this account has it."""
        if not uri:
            return None
        key = di.normalize_uri(uri)
        name = self.aliases.get(key) or defaults.get(key)
        if name is None and key in self.datastores:
            name = key
        return name if name in self.datastores else None

    def allows(self, cred_type: str) -> bool:
        if self.auth == "any":
            return True
        return cred_type == auth.AUTH_TYPES.get(self.auth)


@dataclass
class ServerConfig:
    accounts: dict[str, Account]
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    max_msg_size: int = 1_000_000  # what we accept (and advertise)
    max_obj_size: int = 4_000_000
    default_peer_msg_size: int = 1_000_000  # when a device gives no MaxMsgSize
    timeout: float = 900.0
    formats: tuple[str, ...] = (ICAL_TYPE,)  # content types we can convert
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)


# -- requests to the outside world -------------------------------------------------------


@dataclass
class LoadNonce:
    """-> the NextNonce we last issued to ``device`` (str), or None."""

    device: str


@dataclass
class SaveNonce:
    """The next nonce of a device that just logged in (with basic credentials)."""

    device: str
    nonce: str


@dataclass
class ConsumeNonce:
    """-> bool: make ``next`` the device's nonce if ``used`` still is (one atomic
    step: of simultaneous logins with one nonce, exactly one gets True)."""

    device: str
    used: str
    next: str


@dataclass
class IssueNonce:
    """-> str: the nonce to challenge a device with after a failed login: the one
    it holds, unchanged; ``nonce`` (stored) if it has none yet."""

    device: str
    nonce: str


@dataclass
class LoadAppPasswords:
    """-> [(device, password)]: the app passwords of ``account``'s paired devices
    (``calsync.credentials``), tried after the account's own password."""

    account: str


@dataclass
class DatastoreState:
    device_anchor: str | None = None  # the device's Next of the last good session
    server_anchor: str | None = None  # our Next of the last good session
    needs_slow: bool = False  # e.g. adds in flight whose Map never came


@dataclass
class OpenDatastore:
    """-> DatastoreState."""

    account: str
    device: str
    datastore: str


@dataclass
class LoadDevInf:
    """-> the device's last known DeviceInfo, or None."""

    account: str
    device: str


@dataclass
class SaveDevInf:
    account: str
    device: str
    info: di.DeviceInfo


@dataclass
class BeginSync:
    """The device starts sending this datastore's changes in ``mode`` (alert code)."""

    account: str
    device: str
    datastore: str
    mode: int


@dataclass
class IncomingChange:
    op: str  # Add | Replace | Delete
    luid: str
    data: bytes | None = None
    content_type: str | None = None
    soft: bool = False


@dataclass
class ApplyChanges:
    """-> one status code per change, after storing them in the device's mirror."""

    account: str
    device: str
    datastore: str
    mode: int
    changes: list[IncomingChange]


@dataclass
class OutgoingChange:
    op: str  # Add | Replace | Delete
    guid: str
    luid: str | None
    data: bytes | None
    content_type: str


@dataclass
class SyncOutcome:
    changes: list[OutgoingChange] = field(default_factory=list)
    error: str | None = None  # the datastore could not sync at all


@dataclass
class RunSync:
    """-> SyncOutcome: run the engine, return what the device must receive."""

    account: str
    device: str
    datastore: str
    mode: int
    content_type: str


@dataclass
class Progress:
    account: str
    device: str
    datastore: str
    sent: list[str] = field(default_factory=list)  # GUIDs of Adds now in flight
    results: list[tuple[OutgoingChange, int]] = field(default_factory=list)
    maps: list[MapItem] = field(default_factory=list)


@dataclass
class Finish:
    account: str
    device: str
    datastore: str
    device_anchor: str | None
    server_anchor: str
    ok: bool


Request = (
    LoadNonce
    | SaveNonce
    | ConsumeNonce
    | IssueNonce
    | OpenDatastore
    | LoadDevInf
    | SaveDevInf
    | LoadAppPasswords
    | BeginSync
    | ApplyChanges
    | RunSync
    | Progress
    | Finish
)


@dataclass
class Reply:
    body: bytes
    content_type: str
    finished: bool = False  # the session is over (done, failed or refused)
    authenticated: bool = True
    # a failed login that tested a password (not a first contact learning its nonce)
    guessed: bool = False


class ForeignSession(Exception):
    """A message for this session from another device or SessionID."""


def _check_lengths(msg: Message) -> None:
    """ProtocolError for a header field (or credential) longer than we take."""
    hdr = msg.header
    creds = [hdr.cred] + [
        c.cred for c in msg.commands if isinstance(c, Alert | Sync | Put | Get | Map | Change)
    ]
    fields = [
        ("Source", hdr.source, MAX_DEVICE_ID),
        ("Source LocName", hdr.source_name, MAX_FIELD),
        ("Target", hdr.target, MAX_FIELD),
        ("Target LocName", hdr.target_name, MAX_FIELD),
        ("SessionID", hdr.session_id, MAX_FIELD),
        ("RespURI", hdr.resp_uri, MAX_FIELD),
        *(("Cred", c.data, MAX_CREDENTIAL) for c in creds if c is not None),
    ]
    for what, value, limit in fields:
        if value is not None and len(value) > limit:
            shown = "" if what == "Cred" else f": {value[:24]!r}..."  # never a credential
            raise ProtocolError(f"{what} of {len(value)} characters (at most {limit}){shown}")


def drive(gen: Generator[Request, Any, Reply], handler: Callable[[Request], Any]) -> Reply:
    """Run a ``receive`` generator to its reply, answering requests with ``handler``."""
    answer: Any = None
    while True:
        try:
            request = gen.send(answer)
        except StopIteration as stop:
            reply: Reply = stop.value
            return reply
        answer = handler(request)


# -- per-datastore state of one session ----------------------------------------------------


@dataclass
class _InChunk:
    op: str
    luid: str
    content_type: str | None
    declared: int | None
    parts: list[bytes]


@dataclass
class _OutChunk:
    change: OutgoingChange
    data: bytes
    offset: int


@dataclass
class _Datastore:
    name: str
    server_uri: str  # the device's name for our datastore (Alert Target)
    client_uri: str  # the device's own datastore (Alert Source)
    mode: int
    device_next: str | None
    server_last: str | None
    server_next: str
    alert_status: Status | None = None
    began: bool = False
    got_sync: bool = False
    synced: bool = False
    sync_status: Status | None = None
    ok: bool = True
    content_type: str | None = None
    seen_types: list[str] = field(default_factory=list)
    outgoing: deque[OutgoingChange] = field(default_factory=deque)
    total: int = 0
    sync_sent: bool = False
    in_chunk: _InChunk | None = None
    out_chunk: _OutChunk | None = None


@dataclass
class _Sent:
    datastore: str
    change: OutgoingChange
    chunk: bool = False  # a non-final chunk of a large object


# -- the session ------------------------------------------------------------------------------


class ServerSession:
    """One SyncML conversation with one device (see the module docstring)."""

    def __init__(self, config: ServerConfig, *, url: str, token: str, now: float) -> None:
        self.config = config
        self.url = url
        self.token = token
        self.resp_uri = f"{url}?sessionid={token}"
        self.phase = "init"  # init -> sync -> sending -> map -> done | failed
        self.account: Account | None = None
        self.app_password: str | None = None  # the device whose app password logged in
        self.guessed = False  # the login failed testing a password (see Reply)
        self.device: str | None = None
        self.device_name: str | None = None
        self.session_id: str | None = None
        self.version = "1.2"
        self.encoding: str | None = None
        self.last_msg_id = 0
        self.out_msg_id = 0
        self.peer_max_msg = config.default_peer_msg_size
        self.peer_max_obj: int | None = None
        self.datastores: dict[str, _Datastore] = {}
        self.sent: dict[tuple[int, int], _Sent] = {}
        self.statuses: deque[Status] = deque()  # answers not yet sent
        self.commands: deque[BodyCommand] = deque()  # Results, Alerts, Gets not yet sent
        self.devinf: di.DeviceInfo | None = None
        self.asked_devinf = False
        self.last_active = now
        self.replying = False  # the device's package ended; ours is being sent
        self._last: tuple[int, str, Reply] | None = None
        self._cmd_id = 0
        self.summary: list[str] = []  # per-datastore outcome lines, for logs

    # -- public -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase in ("done", "failed")

    def expired(self, now: float) -> bool:
        return now - self.last_active > self.config.timeout

    def receive(
        self, body: bytes, content_type: str | None, now: float
    ) -> Generator[Request, Any, Reply]:
        """Handle one HTTP request body (see the module docstring for the protocol).

        Raises DecodeError (undecodable), ProtocolError (not valid here) or
        ForeignSession before changing any state.
        """
        encoding = codec.syncml_encoding(content_type)
        limits = self.config.limits
        if self.account is None:  # not logged in (yet): a smaller tree
            limits = replace(limits, max_elements=min(limits.max_elements, LOGIN_ELEMENTS))
        msg = codec.decode(body, encoding, limits)
        hdr = msg.header
        _check_lengths(msg)
        digest = hashlib.sha256(body).hexdigest()
        if self.phase != "init" or self.device is not None:
            if hdr.source != self.device or hdr.session_id != self.session_id:
                raise ForeignSession("message from another device or session")
            if self._last is not None and hdr.msg_id == self._last[0]:
                if digest == self._last[1]:
                    return self._last[2]
                raise ProtocolError(f"MsgID {hdr.msg_id} repeated with other content")
            if hdr.msg_id <= self.last_msg_id:
                raise ProtocolError(f"MsgID {hdr.msg_id} after {self.last_msg_id}")
            if encoding != self.encoding:
                raise ProtocolError("the session changed its encoding")
        if self.done:
            raise ProtocolError("the session is over")
        self.last_active = now
        reply = yield from self._handle(msg, encoding)
        self._last = (hdr.msg_id, digest, reply)
        return reply

    # -- one message ----------------------------------------------------------------------

    def _handle(self, msg: Message, encoding: str) -> Generator[Request, Any, Reply]:
        hdr = msg.header
        first = self.device is None
        if first:
            self.device = hdr.source
            self.device_name = hdr.source_name
            self.session_id = hdr.session_id
            self.encoding = encoding
            self.version = hdr.ver_dtd if hdr.ver_dtd in SUPPORTED_VERSIONS else "1.2"
        self.last_msg_id = hdr.msg_id
        if hdr.max_msg_size:
            self.peer_max_msg = min(hdr.max_msg_size, self.config.max_msg_size)
        if hdr.max_obj_size:
            self.peer_max_obj = hdr.max_obj_size
        self._cmd_id = 0
        if hdr.ver_dtd not in SUPPORTED_VERSIONS or not hdr.ver_proto.startswith("SyncML/"):
            self.phase = "failed"
            self._status_for_header(hdr, PROTOCOL_VERSION_NOT_SUPPORTED)
            for cmd in msg.commands:
                self._answer(cmd, PROTOCOL_VERSION_NOT_SUPPORTED)
            return self._reply(hdr, final=True, finished=True, authenticated=False)
        if first:
            ok = yield from self._authenticate(msg)
            if not ok:
                return self._reply(hdr, final=True, finished=True, authenticated=False)
        else:
            self._status_for_header(hdr, OK)
        yield from self._commands(msg)
        if msg.final:
            yield from self._end_of_package()
        return (yield from self._compose(hdr, msg.final))

    def _status_for_header(self, hdr: Header, code: int, chal: Chal | None = None) -> None:
        self.statuses.appendleft(
            Status(
                cmd_id=0,
                msg_ref=hdr.msg_id,
                cmd_ref=0,
                cmd="SyncHdr",
                code=code,
                target_refs=[hdr.target] if hdr.target else [],
                source_refs=[hdr.source],
                chal=chal,
            )
        )

    # -- authentication -----------------------------------------------------------------------

    def _authenticate(self, msg: Message) -> Generator[Request, Any, bool]:
        hdr = msg.header
        cred = hdr.cred
        if cred is None:  # SyncML 1.0 phones (Sony Ericsson) put it on their first command
            cred = next(
                (
                    c.cred
                    for c in msg.commands
                    if isinstance(c, Alert | Sync | Put | Get | Map | Change) and c.cred
                ),
                None,
            )
        assert self.device is not None
        verdict = auth.Verdict(False, reason="no credentials")
        account: Account | None = None
        nonce = None
        if cred is not None:
            if cred.type == auth.MD5:
                nonce = yield LoadNonce(self.device)
            for candidate in self._candidates(cred.type, cred.data, hdr.source_name):
                if not candidate.allows(cred.type):
                    continue
                devices: list[tuple[str, str]] = (yield LoadAppPasswords(candidate.name)) or []
                for device, password in [(None, candidate.password), *devices]:
                    verdict = auth.check(
                        cred.type,
                        cred.format,
                        cred.data,
                        user=candidate.name,
                        password=password,
                        nonce=nonce,
                        version=hdr.ver_dtd,
                    )
                    if verdict.ok:
                        account, self.app_password = candidate, device
                        break
                if account is not None:
                    break
        next_nonce = auth.new_nonce()
        if account is not None and nonce is not None:
            if not (yield ConsumeNonce(self.device, nonce, next_nonce)):
                account = None
                verdict = auth.Verdict(False, reason="the nonce was used meanwhile (a replay?)")
        elif account is not None:
            yield SaveNonce(self.device, next_nonce)
        if account is None:
            next_nonce = yield IssueNonce(self.device, next_nonce)
        chal = Chal(type=auth.MD5, format="b64", next_nonce=next_nonce)
        if account is None:
            self.guessed = cred is not None and not (cred.type == auth.MD5 and nonce is None)
            code = MISSING_CREDENTIALS if cred is None else INVALID_CREDENTIALS
            first_contact = cred is not None and cred.type == auth.MD5 and not verdict.user
            (log.info if "no nonce" in verdict.reason and first_contact else log.warning)(
                "device %s (user %s): authentication failed: %s",
                self.device,
                hdr.source_name or "?",
                verdict.reason,
            )
            self.phase = "failed"
            self._status_for_header(hdr, code, chal)
            for cmd in msg.commands:
                self._answer(cmd, code)
            return False
        self.account = account
        log.info("device %s authenticated as %s", self.device, account.name)
        self._status_for_header(hdr, AUTH_ACCEPTED, chal)
        self.devinf = yield LoadDevInf(account.name, self.device)
        return True

    def _candidates(self, cred_type: str, data: str, loc_name: str | None) -> list[Account]:
        accounts = self.config.accounts
        if cred_type == auth.BASIC:
            parsed = auth.parse_basic(data)
            found = accounts.get(parsed[0]) if parsed else None
            return [found] if found else []
        if loc_name:
            found = accounts.get(loc_name)
            return [found] if found else []
        return list(accounts.values())

    # -- commands ----------------------------------------------------------------------------

    def _commands(self, msg: Message) -> Generator[Request, Any, None]:
        progress: dict[str, Progress] = {}
        for cmd in msg.commands:
            if isinstance(cmd, Status):
                self._device_status(cmd, msg.header.msg_id, progress)
            elif isinstance(cmd, Alert):
                yield from self._alert(cmd, msg)
            elif isinstance(cmd, Put):
                yield from self._put(cmd)
            elif isinstance(cmd, Get):
                self._get(cmd, msg)
            elif isinstance(cmd, Results):
                yield from self._results(cmd)
            elif isinstance(cmd, Sync):
                yield from self._sync(cmd)
            elif isinstance(cmd, Map):
                self._map(cmd, progress)
            elif isinstance(cmd, Change):
                self._answer(cmd, COMMAND_NOT_ALLOWED)  # changes belong inside a Sync
            else:
                self._answer(cmd, OPTIONAL_FEATURE_NOT_SUPPORTED)
        yield from progress.values()

    def _answer(
        self,
        cmd: BodyCommand,
        code: int,
        *,
        refs: tuple[str | None, str | None] = (None, None),
        items: list[Item] | None = None,
    ) -> Status:
        """Queue the status of ``cmd`` (and, for a refused Sync, of its changes).

        ``refs``: the (target, source) URIs the status refers to.
        """
        target, source = refs
        name = cmd.kind if isinstance(cmd, Change) else cmd.name if isinstance(cmd, Unknown) else ""
        st = Status(
            cmd_id=0,
            msg_ref=self.last_msg_id,
            cmd_ref=cmd.cmd_id,
            cmd=name or type(cmd).__name__,
            code=code,
            target_refs=[target] if target else [],
            source_refs=[source] if source else [],
            items=items or [],
        )
        self.statuses.append(st)
        if isinstance(cmd, Sync) and code != OK:
            for change in cmd.changes:
                self.statuses.append(self._change_status(change, code))
        return st

    def _change_status(self, cmd: Change | Unknown, code: int) -> Status:
        name = cmd.kind if isinstance(cmd, Change) else cmd.name
        refs: list[str] = []
        if isinstance(cmd, Change) and cmd.items:
            ref = cmd.items[0].source or cmd.items[0].target
            refs = [ref] if ref else []
        return Status(0, self.last_msg_id, cmd.cmd_id, name, code, source_refs=refs)

    def _device_status(self, st: Status, msg_id: int, progress: dict[str, Progress]) -> None:
        sent = self.sent.pop((st.msg_ref, st.cmd_ref), None)
        if sent is not None:
            if sent.chunk and st.code == CHUNK_ACCEPTED:
                return
            ds = self.datastores.get(sent.datastore)
            if ds is None or self.account is None or self.device is None:
                return
            p = progress.setdefault(ds.name, Progress(self.account.name, self.device, ds.name))
            code = OK if st.code == ALREADY_EXISTS and sent.change.op == "Add" else st.code
            p.results.append((sent.change, code))
            if not is_success(code):
                log.warning(
                    "device %s rejected %s of %s in %s: status %d",
                    self.device,
                    sent.change.op,
                    sent.change.guid,
                    ds.name,
                    st.code,
                )
            return
        if st.cmd in ("Alert", "Sync") and not is_success(st.code):
            for ds in self.datastores.values():
                if ds.client_uri in st.target_refs or ds.server_uri in st.source_refs:
                    ds.ok = False
                    log.warning(
                        "device %s refused %s for %s: status %d",
                        self.device,
                        st.cmd,
                        ds.name,
                        st.code,
                    )

    # -- package 1 ------------------------------------------------------------------------------

    def _alert(self, alert: Alert, msg: Message) -> Generator[Request, Any, None]:
        code = SERVER_ALERTED.get(alert.code, alert.code)
        resume = code == RESUME
        if resume:
            code = SLOW_SYNC  # nothing to resume here: a slow sync (508, see below)
        if alert.code == NEXT_MESSAGE:
            self._answer(alert, OK, refs=self._refs(alert))
            return
        if code not in SYNC_ALERTS:
            self._answer(alert, OPTIONAL_FEATURE_NOT_SUPPORTED, refs=self._refs(alert))
            return
        if self.phase != "init":
            self._answer(alert, COMMAND_NOT_ALLOWED, refs=self._refs(alert))
            return
        if not alert.items:
            self._answer(alert, INCOMPLETE_COMMAND)
            return
        item = alert.items[0]
        assert self.account is not None and self.device is not None
        name = self.account.resolve(item.target, self.config.aliases)
        refs = self._refs(alert)
        if name is None:
            log.warning(
                "device %s alerted unknown datastore %r", self.device, (item.target or "")[:80]
            )
            self._answer(alert, NOT_FOUND, refs=refs)
            return
        if name in self.datastores:
            self._answer(alert, BAD_REQUEST, refs=refs)
            return
        state = yield OpenDatastore(self.account.name, self.device, name)
        anchor = item.meta.anchor if item.meta and item.meta.anchor else Anchor()
        status_code = OK
        mode = code
        if resume:
            status_code = REFRESH_REQUIRED
            log.info(
                "device %s, %s: resuming a session we do not keep: slow sync", self.device, name
            )
        elif code in (TWO_WAY, ONE_WAY_FROM_CLIENT, ONE_WAY_FROM_SERVER):
            last = anchor.last or None
            if state.needs_slow or state.device_anchor is None or last != state.device_anchor:
                status_code = REFRESH_REQUIRED
                mode = SLOW_SYNC
                log.info(
                    "device %s, %s: anchors do not match (or a slow sync is due): slow sync",
                    self.device,
                    name,
                )
        ds = _Datastore(
            name=name,
            server_uri=item.target or name,
            client_uri=item.source or item.target or name,
            mode=mode,
            device_next=anchor.next,
            server_last=state.server_anchor,
            server_next=self._server_anchor(state.server_anchor),
        )
        self.datastores[name] = ds
        echo = Node("Anchor")
        echo.add("Next", anchor.next or "")
        ds.alert_status = self._answer(alert, status_code, items=[Item(data_node=echo)], refs=refs)
        meta = Meta(
            anchor=Anchor(ds.server_last, ds.server_next),
            max_obj_size=self.config.max_obj_size,
        )
        self.commands.append(
            Alert(
                cmd_id=0,
                code=mode,
                items=[Item(target=ds.client_uri, source=ds.server_uri, meta=meta)],
            )
        )

    @staticmethod
    def _refs(alert: Alert) -> tuple[str | None, str | None]:
        if not alert.items:
            return None, None
        return alert.items[0].target, alert.items[0].source

    def _server_anchor(self, previous: str | None) -> str:
        now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        if previous and previous >= now:  # two sessions in one second
            return previous + "1"
        return now

    def _devinf_uri(self) -> str:
        return "./devinf" + self.version.replace(".", "")

    def _put(self, put: Put) -> Generator[Request, Any, None]:
        item = put.items[0] if put.items else None
        uri = item.source if item else None
        if item is None or uri is None or "devinf" not in uri.lower():
            self._answer(put, NOT_FOUND, refs=(None, uri))
            return
        info = self._parse_devinf(item)
        if info is None:
            self._answer(put, BAD_REQUEST, refs=(None, uri))
            return
        yield from self._remember_devinf(info)
        self._answer(put, OK, refs=(None, uri))

    def _results(self, results: Results) -> Generator[Request, Any, None]:
        item = results.items[0] if results.items else None
        info = self._parse_devinf(item) if item is not None else None
        if info is not None:
            yield from self._remember_devinf(info)
        self._answer(results, OK, refs=(None, item.source if item else None))

    def _remember_devinf(self, info: di.DeviceInfo) -> Generator[Request, Any, None]:
        self.devinf = info
        if self.account is not None and self.device is not None:
            yield SaveDevInf(self.account.name, self.device, info)

    def _parse_devinf(self, item: Item) -> di.DeviceInfo | None:
        node = item.data_node
        if node is None and item.data:
            try:
                from calsync.syncml import wbxml, xml_codec

                if item.data[:1] in (b"\x01", b"\x02", b"\x03"):
                    node = wbxml.decode(item.data, self.config.limits, _nested=True).root
                else:
                    node = xml_codec.decode(item.data, self.config.limits)
            except DecodeError:
                return None
        if node is None or node.name != "DevInf":
            return None
        return di.parse(node)

    def _get(self, get: Get, msg: Message) -> None:
        item = get.items[0] if get.items else None
        uri = item.target if item else None
        if uri is None or "devinf" not in uri.lower() or self.account is None:
            self._answer(get, NOT_FOUND, refs=(uri, None))
            return
        self._answer(get, OK, refs=(uri, None))
        stores = []
        seen = set()
        alerted = [
            c.items[0].target
            for c in msg.commands
            if isinstance(c, Alert) and c.items and c.items[0].target
        ]
        for uri_ in [*alerted, *self.account.datastores]:
            if uri_ is None or uri_ in seen:
                continue
            if self.account.resolve(uri_, self.config.aliases) is None:
                continue
            seen.add(uri_)
            types = [di.ICAL] + ([di.VCAL] if VCAL_TYPE in self.config.formats else [])
            stores.append(di.ServerDataStore(uri_, di.normalize_uri(uri_), types))
        node = di.build(
            self.url,
            stores,
            ver_dtd=self.version,
            large_objects=self.version != "1.0",
        )
        assert self.encoding is not None
        mtype = codec.DEVINF_WBXML if self.encoding == "wbxml" else codec.DEVINF_XML
        self.commands.append(
            Results(
                cmd_id=0,
                msg_ref=self.last_msg_id,
                cmd_ref=get.cmd_id,
                meta=Meta(type=mtype),
                items=[Item(source=uri, data_node=node)],
            )
        )

    # -- package 3 -------------------------------------------------------------------------------

    def _find(self, uri: str | None) -> _Datastore | None:
        if self.account is None:
            return None
        name = self.account.resolve(uri, self.config.aliases)
        return self.datastores.get(name) if name else None

    def _sync(self, sync: Sync) -> Generator[Request, Any, None]:
        ds = self._find(sync.target)
        refs = (sync.target, sync.source)
        if ds is None:
            self._answer(sync, NOT_FOUND, refs=refs)
            return
        if self.phase != "sync" or not ds.ok:
            self._answer(sync, COMMAND_NOT_ALLOWED, refs=refs)
            return
        assert self.account is not None and self.device is not None
        ds.got_sync = True
        ds.sync_status = self._answer(sync, OK, refs=refs)
        if not ds.began:
            yield BeginSync(self.account.name, self.device, ds.name, ds.mode)
            ds.began = True
        batch: list[tuple[Status, IncomingChange]] = []
        for change in sync.changes:
            if isinstance(change, Unknown) or change.kind not in ("Add", "Replace", "Delete"):
                self.statuses.append(self._change_status(change, OPTIONAL_FEATURE_NOT_SUPPORTED))
                continue
            for item in change.items or [Item()]:
                self._incoming(ds, change, item, batch)
        if batch:
            codes = yield ApplyChanges(
                self.account.name, self.device, ds.name, ds.mode, [c for _, c in batch]
            )
            for (status, _), code in zip(batch, codes, strict=True):
                status.code = code

    def _incoming(
        self,
        ds: _Datastore,
        change: Change,
        item: Item,
        batch: list[tuple[Status, IncomingChange]],
    ) -> None:
        op = change.kind
        luid = item.source or item.target
        status = Status(0, self.last_msg_id, change.cmd_id, op, OK, source_refs=[luid or ""])
        if not luid:
            status.source_refs = []
            status.code = INCOMPLETE_COMMAND
            self.statuses.append(status)
            return
        self.statuses.append(status)
        if ds.mode in (ONE_WAY_FROM_SERVER, REFRESH_FROM_SERVER):
            status.code = COMMAND_NOT_ALLOWED  # the device was to receive only
            return
        meta = item.meta or Meta()
        cmeta = change.meta or Meta()
        ctype = meta.type or cmeta.type
        data = item.data
        if data is not None and (meta.format or cmeta.format) == "b64":
            try:
                data = base64.b64decode(data, validate=False)
            except (binascii.Error, ValueError):
                status.code = BAD_REQUEST
                return
        if ds.in_chunk is not None and (ds.in_chunk.luid != luid or ds.in_chunk.op != op):
            log.warning("device %s abandoned the large object %s", self.device, ds.in_chunk.luid)
            ds.in_chunk = None
        if item.more_data or ds.in_chunk is not None:
            if ds.in_chunk is None:
                declared = meta.size or cmeta.size
                if declared is not None and declared > self.config.max_obj_size:
                    status.code = REQUEST_ENTITY_TOO_LARGE
                    return
                ds.in_chunk = _InChunk(op, luid, ctype, declared, [])
            chunk = ds.in_chunk
            chunk.parts.append(data or b"")
            total = sum(len(p) for p in chunk.parts)
            if total > self.config.max_obj_size:
                ds.in_chunk = None
                status.code = REQUEST_ENTITY_TOO_LARGE
                return
            if item.more_data:
                status.code = CHUNK_ACCEPTED
                return
            ds.in_chunk = None
            data = b"".join(chunk.parts)
            ctype = ctype or chunk.content_type
            if chunk.declared is not None and not size_matches(
                len(data), chunk.declared, data, self.encoding == "xml"
            ):
                status.code = SIZE_MISMATCH
                return
        if op != "Delete" and data is None:
            status.code = INCOMPLETE_COMMAND
            return
        if ctype:
            ds.seen_types.append(ctype.lower())
        batch.append((status, IncomingChange(op, luid, data, ctype, soft=change.soft_delete)))

    def _map(self, m: Map, progress: dict[str, Progress]) -> None:
        ds = self._find(m.target)
        refs = (m.target, m.source)
        if ds is None:
            self._answer(m, NOT_FOUND, refs=refs)
            return
        if self.phase == "init":
            self._answer(m, COMMAND_NOT_ALLOWED, refs=refs)
            return
        assert self.account is not None and self.device is not None
        p = progress.setdefault(ds.name, Progress(self.account.name, self.device, ds.name))
        p.maps.extend(m.items)
        self._answer(m, OK, refs=refs)

    # -- package ends --------------------------------------------------------------------------

    def _end_of_package(self) -> Generator[Request, Any, None]:
        if self.phase == "init":
            self.phase = "sync"
            if self.devinf is None and not self.asked_devinf:
                self.asked_devinf = True
                self.commands.append(
                    Get(
                        cmd_id=0,
                        meta=Meta(
                            type=codec.DEVINF_WBXML
                            if self.encoding == "wbxml"
                            else codec.DEVINF_XML
                        ),
                        items=[Item(target=self._devinf_uri())],
                    )
                )
            if not self.datastores:
                self.phase = "done"
            return
        if self.phase == "sync":
            assert self.account is not None and self.device is not None
            for ds in self.datastores.values():
                if ds.in_chunk is not None:
                    log.warning(
                        "device %s: large object %s never completed", self.device, ds.in_chunk.luid
                    )
                    ds.in_chunk = None
                if not ds.ok or not (
                    ds.got_sync or ds.mode in (ONE_WAY_FROM_SERVER, REFRESH_FROM_SERVER)
                ):
                    ds.ok = False
                    continue
                if not ds.began:
                    yield BeginSync(self.account.name, self.device, ds.name, ds.mode)
                    ds.began = True
                ds.content_type = self._content_type(ds)
                outcome = yield RunSync(
                    self.account.name, self.device, ds.name, ds.mode, ds.content_type
                )
                ds.synced = True
                if outcome.error:
                    ds.ok = False
                    log.error("device %s, %s: %s", self.device, ds.name, outcome.error)
                    if any(st is ds.sync_status for st in self.statuses):
                        assert ds.sync_status is not None
                        ds.sync_status.code = DATASTORE_FAILURE
                    continue
                ds.outgoing.extend(outcome.changes)
                ds.total = len(outcome.changes)
            self.phase = "sending"
            return
        if self.phase == "map":
            yield from self._finish_all()

    def _finish_all(self) -> Generator[Request, Any, None]:
        assert self.account is not None and self.device is not None
        for ds in self.datastores.values():
            ok = ds.ok and ds.synced
            yield Finish(
                self.account.name, self.device, ds.name, ds.device_next, ds.server_next, ok
            )
            self.summary.append(
                f"{ds.name} ({ENGINE_MODES.get(ds.mode, ds.mode)}, {ds.total} sent): "
                + ("ok" if ok else "failed")
            )
        self.phase = "done"
        log.info("device %s: session done: %s", self.device, "; ".join(self.summary))

    def _content_type(self, ds: _Datastore) -> str:
        supported = list(self.config.formats)
        pref = di.preferred_type(self.devinf, ds.client_uri, supported)
        if pref:
            return pref
        for seen in ds.seen_types:
            if seen in supported:
                return seen
        return ICAL_TYPE

    # -- composing replies ----------------------------------------------------------------------

    def _next_id(self) -> int:
        self._cmd_id += 1
        return self._cmd_id

    def _header(self, hdr: Header) -> Header:
        return Header(
            ver_dtd=self.version,
            ver_proto=f"SyncML/{self.version}",
            session_id=hdr.session_id,
            msg_id=self.out_msg_id,
            target=hdr.source,
            target_name=hdr.source_name,
            source=hdr.target or self.url,
            resp_uri=self.resp_uri if not self.done else None,
            max_msg_size=self.config.max_msg_size,
            max_obj_size=self.config.max_obj_size if self.version != "1.0" else None,
        )

    def _reply(self, hdr: Header, *, final: bool, finished: bool, authenticated: bool) -> Reply:
        """A reply of statuses (and queued commands) only, all of them."""
        self.out_msg_id += 1
        out = Message(self._header(hdr), final=final)
        while self.statuses:
            st = self.statuses.popleft()
            st.cmd_id = self._next_id()
            out.commands.append(st)
        while self.commands:
            c = self.commands.popleft()
            c.cmd_id = self._next_id()
            out.commands.append(c)
        assert self.encoding is not None
        return Reply(
            codec.encode(out, self.encoding),
            codec.content_type(self.encoding),
            finished=finished,
            authenticated=authenticated,
            guessed=self.guessed,
        )

    def _compose(self, hdr: Header, incoming_final: bool) -> Generator[Request, Any, Reply]:
        assert self.encoding is not None and self.account is not None
        assert self.device is not None
        enc = self.encoding
        self.out_msg_id += 1
        out = Message(self._header(hdr))
        budget = max(int(self.peer_max_msg * 0.95) - 256, MIN_MESSAGE)
        used = codec.size_of(build_header(out.header), enc) + 64  # SyncML, SyncBody, Final
        empty = used
        # statuses first (the SyncHdr status always), then queued commands
        for queue in (self.statuses, self.commands):
            while queue and (queue is self.statuses or not self.statuses):
                cmd = queue[0]
                cmd.cmd_id = self._cmd_id + 1
                size = codec.size_of(build_command(cmd), enc)
                # at least one status and one other command per message: always progress
                room_taken = (
                    out.commands
                    if queue is self.statuses
                    else [c for c in out.commands if not isinstance(c, Status)]
                )
                if used + size > budget and room_taken:
                    break
                queue.popleft()
                self._next_id()
                out.commands.append(cmd)
                used += size
        progress: dict[str, Progress] = {}
        if self.phase == "sending" and not self.statuses and not self.commands:
            self._place_changes(out, used, budget, budget - empty - 1024, progress)
        pending = bool(self.statuses or self.commands) or any(
            ds.outgoing or ds.out_chunk or (ds.synced and ds.ok and not ds.sync_sent)
            for ds in self.datastores.values()
        )
        # our package ends (Final) once the device's ended and all of ours is out;
        # until then the device asks for the rest with Alert 222
        if incoming_final:
            self.replying = True
        final = False
        if self.replying and not pending:
            final = True
            self.replying = False
            if self.phase == "sending":
                self.phase = "map"
        if not incoming_final and not final and all(isinstance(c, Status) for c in out.commands):
            first = next(iter(self.datastores.values()), None)
            items = [Item(target=first.client_uri, source=first.server_uri)] if first else []
            out.commands.append(Alert(cmd_id=self._next_id(), code=NEXT_MESSAGE, items=items))
        out.final = final
        if self.phase in ("done", "failed"):
            out.header.resp_uri = None
        yield from progress.values()
        return Reply(
            codec.encode(out, enc),
            codec.content_type(enc),
            finished=self.phase in ("done", "failed"),
        )

    def _progress(self, progress: dict[str, Progress], ds: _Datastore) -> Progress:
        assert self.account is not None and self.device is not None
        return progress.setdefault(ds.name, Progress(self.account.name, self.device, ds.name))

    def _place_changes(
        self,
        out: Message,
        used: int,
        budget: int,
        capacity: int,
        progress: dict[str, Progress],
    ) -> None:
        """Add Sync commands with as many outgoing changes as fit under ``budget``.

        ``capacity`` is what a change may take in an otherwise empty message;
        a bigger one goes as a large object in chunks.
        """
        assert self.encoding is not None
        enc = self.encoding
        for ds in self.datastores.values():
            if not ds.synced or not ds.ok:
                continue
            if ds.sync_sent and not ds.outgoing and ds.out_chunk is None:
                continue
            sync = Sync(
                cmd_id=self._cmd_id + 1,
                target=ds.client_uri,
                source=ds.server_uri,
                number_of_changes=(
                    ds.total if not ds.sync_sent and self.version != "1.0" else None
                ),
            )
            wrapper = codec.size_of(build_command(sync), enc)
            if used + wrapper > budget and len(out.commands) > 1:
                return
            self._next_id()
            used += wrapper
            out.commands.append(sync)
            ds.sync_sent = True
            while ds.out_chunk is not None or ds.outgoing:
                if ds.out_chunk is not None:
                    used, done = self._place_chunk(ds, sync, used, budget)
                    if not done:
                        return
                    continue
                change = ds.outgoing[0]
                cmd = self._change_command(change, self._cmd_id + 1)
                size = codec.size_of(build_command(cmd), enc)
                if used + size <= budget:
                    self._next_id()
                    ds.outgoing.popleft()
                    sync.changes.append(cmd)
                    self.sent[(self.out_msg_id, cmd.cmd_id)] = _Sent(ds.name, change)
                    if change.op == "Add":
                        self._progress(progress, ds).sent.append(change.guid)
                    used += size
                    continue
                if size <= capacity:
                    return  # fits in the next message
                ds.outgoing.popleft()
                data = wire_data(change.data, self.encoding)
                why = None
                if change.op == "Delete":
                    why = "a Delete larger than a message"
                elif self.version == "1.0" or not (self.devinf and self.devinf.large_objects):
                    why = "larger than the device's MaxMsgSize, and it takes no large objects"
                elif self.peer_max_obj is not None and len(data) > self.peer_max_obj:
                    why = "larger than the device's MaxObjSize"
                if why is not None:
                    log.error(
                        "device %s, %s: cannot send %s: %s", self.device, ds.name, change.guid, why
                    )
                    self._progress(progress, ds).results.append((change, REQUEST_ENTITY_TOO_LARGE))
                    continue
                ds.out_chunk = _OutChunk(change, data, 0)
                if change.op == "Add":
                    self._progress(progress, ds).sent.append(change.guid)

    def _place_chunk(self, ds: _Datastore, sync: Sync, used: int, budget: int) -> tuple[int, bool]:
        """Put the next piece of a large object in; (used, whether it was the last)."""
        assert self.encoding is not None and ds.out_chunk is not None
        chunk = ds.out_chunk
        probe = self._change_command(
            chunk.change, self._cmd_id + 1, data=b"", more=True, size=len(chunk.data)
        )
        overhead = codec.size_of(build_command(probe), self.encoding) + 16
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
        self.sent[(self.out_msg_id, cmd.cmd_id)] = _Sent(ds.name, chunk.change, chunk=not last)
        chunk.offset += len(piece)
        used += codec.size_of(build_command(cmd), self.encoding)
        if last:
            ds.out_chunk = None
            return used, True
        return used, False

    def _change_command(
        self,
        change: OutgoingChange,
        cmd_id: int,
        *,
        data: bytes | None = None,
        more: bool = False,
        size: int | None = None,
    ) -> Change:
        meta = Meta(type=change.content_type)
        item = Item(source=change.guid) if change.op == "Add" else Item(target=change.luid)
        if change.op != "Delete":
            item.data = wire_data(change.data, self.encoding) if data is None else data
            item.more_data = more
        if size is not None:
            meta.size = size
        return Change(cmd_id=cmd_id, kind=change.op, meta=meta, items=[item])
