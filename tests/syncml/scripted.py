"""Test helpers: a scripted SyncML client (also over HTTP) and a fake world for the
sans-I/O session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from calsync.syncml import auth, codec
from calsync.syncml import devinf as di
from calsync.syncml.model import (
    Alert,
    Anchor,
    BodyCommand,
    Change,
    Cred,
    Header,
    Item,
    Map,
    MapItem,
    Message,
    Meta,
    Node,
    Put,
    Status,
    Sync,
)
from calsync.syncml.session import (
    Account,
    ApplyChanges,
    ConsumeNonce,
    DatastoreState,
    Finish,
    IssueNonce,
    LoadDevInf,
    LoadNonce,
    OpenDatastore,
    OutgoingChange,
    Progress,
    Reply,
    RunSync,
    SaveDevInf,
    SaveNonce,
    ServerConfig,
    ServerSession,
    SyncOutcome,
    drive,
)

URL = "http://127.0.0.1:8765/sync"


@dataclass
class FakeWorld:
    """Answers session requests from dictionaries, and records what was asked."""

    nonces: dict[str, str] = field(default_factory=dict)
    states: dict[str, DatastoreState] = field(default_factory=dict)
    outgoing: dict[str, list[OutgoingChange]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)  # luid -> status to answer
    devinf: di.DeviceInfo | None = None
    log: list[Any] = field(default_factory=list)

    def __call__(self, req: Any) -> Any:
        self.log.append(req)
        if isinstance(req, LoadNonce):
            return self.nonces.get(req.device)
        if isinstance(req, SaveNonce):
            self.nonces[req.device] = req.nonce
            return None
        if isinstance(req, ConsumeNonce):
            if self.nonces.get(req.device) != req.used:
                return False
            self.nonces[req.device] = req.next
            return True
        if isinstance(req, IssueNonce):
            return self.nonces.setdefault(req.device, req.nonce)
        if isinstance(req, OpenDatastore):
            return self.states.get(req.datastore, DatastoreState())
        if isinstance(req, LoadDevInf):
            return self.devinf
        if isinstance(req, SaveDevInf):
            self.devinf = req.info
            return None
        if isinstance(req, ApplyChanges):
            return [self.statuses.get(c.luid, 201 if c.op == "Add" else 200) for c in req.changes]
        if isinstance(req, RunSync):
            if req.datastore in self.errors:
                return SyncOutcome(error=self.errors[req.datastore])
            return SyncOutcome(list(self.outgoing.get(req.datastore, [])))
        return None

    def of(self, kind: type) -> list[Any]:
        return [r for r in self.log if isinstance(r, kind)]

    @property
    def writes(self) -> list[Any]:
        """Requests that change stored data (beyond nonces)."""
        return [r for r in self.log if isinstance(r, ApplyChanges | RunSync | Progress | Finish)]


def config(**accounts: Any) -> ServerConfig:
    accts = {
        "alice": Account("alice", "secret", {"calendar": "laptop", "tasks": "laptop"}),
        **accounts,
    }
    return ServerConfig(accounts=accts)


class Device:
    """A scripted SyncML client (just enough to drive a server session)."""

    def __init__(
        self,
        device: str = "phone-1",
        user: str = "alice",
        password: str = "secret",
        *,
        encoding: str = "xml",
        version: str = "1.2",
        max_msg_size: int | None = 100_000,
    ) -> None:
        self.device = device
        self.user = user
        self.password = password
        self.encoding = encoding
        self.version = version
        self.max_msg_size = max_msg_size
        self.session_id = 1
        self.msg_id = 0
        self.nonce: str | None = None
        self.target = URL

    def header(self, cred: str | None = None) -> Header:
        self.msg_id += 1
        h = Header(
            ver_dtd=self.version,
            ver_proto=f"SyncML/{self.version}",
            session_id=str(self.session_id),
            msg_id=self.msg_id,
            target=self.target,
            source=self.device,
            source_name=self.user,
            max_msg_size=self.max_msg_size,
        )
        if cred == "md5":
            nonce = auth.decode_nonce(self.nonce) if self.nonce else b""
            h.cred = Cred(auth.MD5, "b64", auth.md5_credential(self.user, self.password, nonce))
        elif cred == "basic":
            h.cred = Cred(auth.BASIC, "b64", auth.basic_credential(self.user, self.password))
        return h

    def encode(self, header: Header, commands: list[BodyCommand], final: bool = True) -> bytes:
        for n, cmd in enumerate(commands, 1):
            cmd.cmd_id = n
            if isinstance(cmd, Sync):
                for m, ch in enumerate(cmd.changes, 100 * n):
                    ch.cmd_id = m
        return codec.encode(Message(header, commands, final), self.encoding)

    @property
    def content_type(self) -> str:
        return codec.content_type(self.encoding)

    def new_session(self) -> None:
        self.session_id += 1
        self.msg_id = 0
        self.target = URL


def alert(
    code: int,
    target: str = "calendar",
    source: str = "./calendar",
    *,
    last: str | None = None,
    nxt: str = "n1",
) -> Alert:
    meta = Meta(anchor=Anchor(last, nxt))
    return Alert(0, code, items=[Item(target=target, source=source, meta=meta)])


def devinf_put(version: str = "1.2", pref: str = "text/calendar", large: bool = True) -> Put:
    root = Node("DevInf")
    root.add("VerDTD", version)
    root.add("DevID", "phone-1")
    if large:
        root.add("SupportLargeObjs")
    ds = root.add("DataStore")
    ds.add("SourceRef", "./calendar")
    rx = ds.add("Rx-Pref")
    rx.add("CTType", pref)
    rx.add("VerCT", "2.0" if pref == "text/calendar" else "1.0")
    return Put(0, items=[Item(source=f"./devinf{version.replace('.', '')}", data_node=root)])


def add(luid: str, data: bytes, ctype: str = "text/calendar") -> Change:
    return Change(0, "Add", meta=Meta(type=ctype), items=[Item(source=luid, data=data)])


def sync(changes: list[Change], target: str = "calendar", source: str = "./calendar") -> Sync:
    return Sync(0, target=target, source=source, changes=list(changes))


def mapping(pairs: list[tuple[str, str]], target: str = "calendar") -> Map:
    return Map(
        0, target=target, source="./calendar", items=[MapItem(guid, luid) for guid, luid in pairs]
    )


def send(
    session: ServerSession, world: FakeWorld, dev: Device, data: bytes, now: float = 0.0
) -> Reply:
    return drive(session.receive(data, dev.content_type, now), world)


def parse(reply: Reply) -> Message:
    enc = codec.encoding_of(reply.content_type, reply.body)
    return codec.decode(reply.body, enc)


def statuses(msg: Message) -> list[Status]:
    return [c for c in msg.commands if isinstance(c, Status)]


def status_for(msg: Message, cmd: str) -> list[int]:
    return [s.code for s in statuses(msg) if s.cmd == cmd]


def login(
    world: FakeWorld, dev: Device, commands: list[BodyCommand], cfg: ServerConfig | None = None
) -> tuple[ServerSession, Message]:
    """Package 1 with md5 (getting a nonce first when the device has none)."""
    cfg = cfg or config()
    if dev.device not in world.nonces:
        first = ServerSession(cfg, url=URL, token="t0", now=0.0)
        reply = send(first, world, dev, dev.encode(dev.header("md5"), list(commands)))
        msg = parse(reply)
        assert status_for(msg, "SyncHdr") == [401]
        dev.new_session()
    dev.nonce = world.nonces[dev.device]
    session = ServerSession(cfg, url=URL, token="tok", now=0.0)
    reply = send(session, world, dev, dev.encode(dev.header("md5"), list(commands)))
    msg = parse(reply)
    assert status_for(msg, "SyncHdr") == [212], statuses(msg)
    dev.target = msg.header.resp_uri or URL
    return session, msg


class HttpDevice(Device):
    """The scripted device speaking HTTP to a running gateway."""

    def __init__(self, url: str, *, password: str = "s3cret-Pa55", **kw: object) -> None:
        super().__init__(password=password, **kw)  # type: ignore[arg-type]
        self.base = url
        self.target = url
        self.http = httpx.Client(timeout=30)

    def new_session(self) -> None:
        super().new_session()
        self.target = self.base

    def post(self, body: bytes, url: str | None = None) -> httpx.Response:
        return self.http.post(
            url or self.target, content=body, headers={"Content-Type": self.content_type}
        )

    def message(self, response: httpx.Response) -> Message:
        assert response.status_code == 200, response.text
        enc = codec.encoding_of(response.headers["content-type"], response.content)
        return codec.decode(response.content, enc)

    def login(self, commands: list) -> Message:  # type: ignore[type-arg]
        for _ in range(2):
            self.new_session()
            self.target = self.base
            msg = self.message(self.post(self.encode(self.header("md5"), list(commands))))
            hdr = next(c for c in msg.commands if isinstance(c, Status) and c.cmd == "SyncHdr")
            assert hdr.chal is not None
            self.nonce = hdr.chal.next_nonce
            if hdr.code == 212:
                assert msg.header.resp_uri
                self.target = msg.header.resp_uri
                return msg
        raise AssertionError("login failed")
