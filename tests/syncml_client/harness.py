"""Test helpers for the SyncML client: configs, item files, and calsync's own
server core reached in-process (``Loopback``), with faults on request.

``Loopback`` routes messages the way the gateway does (a new ``ServerSession``
for a post to the base URL, later ones by the ``sessionid`` of its RespURI)
but without sockets, so a sync runs in milliseconds and a connection can be
cut exactly before or after the server handled message N.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from calsync.config import Config
from calsync.config import parse as parse_config
from calsync.syncml import codec
from calsync.syncml.backend import Backend
from calsync.syncml.client_http import Transport, TransportError
from calsync.syncml.config import load
from calsync.syncml.model import Alert
from calsync.syncml.session import ServerSession, drive
from tests.conftest import event

LOOP_URL = "http://loopback.test/sync"


def unfold(data: bytes) -> str:
    return re.sub(r"\r?\n[ \t]", "", data.decode("utf-8", "replace"))


def items_in(folder: Path) -> dict[str, str]:
    """UID -> SUMMARY of the one-item files in ``folder``; fails on a duplicate UID."""
    out: dict[str, str] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        text = unfold(p.read_bytes())
        uid = re.search(r"(?m)^UID:(.*?)\r?$", text)
        summary = re.search(r"(?m)^SUMMARY[^:\n]*:(.*?)\r?$", text)
        key = uid.group(1) if uid else f"<no uid: {p.name}>"
        assert key not in out, f"duplicate UID {key} in {folder}"
        text = summary.group(1) if summary else ""
        out[key] = re.sub(r"\\([,;\\])", r"\1", text)  # escaped or not: the same text
    return out


def file_of(folder: Path, uid: str) -> Path:
    for p in folder.iterdir():
        if p.is_file() and re.search(rf"(?m)^UID:{re.escape(uid)}\r?$", unfold(p.read_bytes())):
            return p
    raise AssertionError(f"no item {uid} in {folder}")


def put(folder: Path, name: str, uid: str, summary: str, **kw: str) -> Path:
    """Write (or rewrite, with a later mtime) one event file."""
    path = folder / name
    existed = path.exists()
    path.write_bytes(event(uid, summary, **kw))
    if existed:  # file backends see changes by mtime in whole seconds
        later = time.time() + 2
        import os

        os.utime(path, (later, later))
    return path


def edit(folder: Path, uid: str, summary: str) -> None:
    p = file_of(folder, uid)
    text = p.read_bytes()
    new = re.sub(rb"(?m)^SUMMARY[^:\r\n]*:.*?(\r?)$", b"SUMMARY:" + summary.encode() + rb"\1", text)
    assert new != text
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()).encode()
    new = re.sub(rb"(?m)^LAST-MODIFIED:.*?(\r?)$", b"LAST-MODIFIED:" + now + rb"\1", new)
    p.write_bytes(new)
    later = time.time() + 2
    import os

    os.utime(p, (later, later))


def client_section(
    url: str,
    *,
    device: str = "calsync-client-1",
    datastore: str = "calendar",
    fmt: str = "ical20",
    encoding: str = "wbxml",
    auth: str = "md5",
    user: str = "test",
    password: str = "test",
) -> str:
    return f"""
type = "syncml"
url = "{url}"
username = "{user}"
password = "{password}"
device_id = "{device}"
datastore = "{datastore}"
format = "{fmt}"
encoding = "{encoding}"
auth = "{auth}"
"""


def pair_config(tmp: Path, section: str, *, syncml_side: str = "b", extra: str = "") -> Config:
    """A pair between a vdir (``tmp/local``) and the syncml store ``section``."""
    local = tmp / "local"
    local.mkdir(parents=True, exist_ok=True)
    a, b = ("local", "server") if syncml_side == "b" else ("server", "local")
    text = f"""
[general]
state_dir = "{tmp / "state"}"
[stores.local]
type = "vdir"
path = "{local}"
create = true
[stores.server]
{section}
[pairs.p]
a = "{a}"
b = "{b}"
{extra}
"""
    cfg, errors = parse_config(text)
    assert not errors, errors
    return cfg


# -- calsync's server core, in-process ------------------------------------------------


@dataclass
class Loopback:
    """A calsync SyncML server (account ``test``) whose store is ``tmp/srv``."""

    tmp: Path
    password: str = "test"
    server_extra: str = ""
    account_extra: str = ""
    faults: dict[int, str] = field(default_factory=dict)  # request number -> before|after
    requests: int = 0
    alerts: list[int] = field(default_factory=list)  # sync types clients asked for
    sessions: dict[str, ServerSession] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = self.tmp / "srv"
        self.store.mkdir(exist_ok=True)
        text = f"""
[general]
state_dir = "{self.tmp / "srvstate"}"
[stores.laptop]
type = "vdir"
path = "{self.store}"
create = true
[syncml]
{self.server_extra}
[syncml.accounts.test]
password = "{self.password}"
calendar = "laptop"
{self.account_extra}
"""
        cfg, errors = parse_config(text)
        assert not errors, errors
        settings = load(cfg)
        self.server = settings.server
        self.backend = Backend(cfg, settings.accounts)

    def transport(self) -> Transport:
        return _LoopTransport(self)

    def post(self, url: str, body: bytes, content_type: str) -> tuple[bytes, str]:
        self.requests += 1
        fault = self.faults.pop(self.requests, None)
        if fault == "before":
            raise TransportError("the connection broke (test, before delivery)")
        token = parse_qs(urlsplit(url).query).get("sessionid", [None])[0]
        if token is None:
            token = secrets.token_hex(8)
            session = ServerSession(self.server, url=LOOP_URL, token=token, now=time.monotonic())
            msg = codec.decode(body, codec.encoding_of(content_type, body))
            self.alerts += [c.code for c in msg.commands if isinstance(c, Alert)]
        else:
            found = self.sessions.get(token)
            if found is None:
                raise TransportError("HTTP 404 (test: unknown session)", status=404)
            session = found
        reply = drive(session.receive(body, content_type, time.monotonic()), self.backend)
        if reply.finished:
            self.sessions.pop(token, None)
        else:
            self.sessions[token] = session
        if fault == "after":
            raise TransportError("the connection broke (test, after delivery)")
        return reply.body, reply.content_type


class _LoopTransport:
    def __init__(self, loop: Loopback) -> None:
        self.loop = loop

    def post(self, url: str, body: bytes, content_type: str, *, first: bool) -> tuple[bytes, str]:
        return self.loop.post(url, body, content_type)

    def close(self) -> None:
        return None
