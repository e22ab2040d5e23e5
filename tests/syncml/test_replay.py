"""Recorded messages of real phones and device clients, replayed to calsync's server.

Whole conversations (Sony Ericsson P900 with SyncML 1.0 and vCalendar items
labelled text/calendar; Funambol clients with SIF payloads) are sent message
by message to a real session + backend + vdir store; single first messages
(Motorola A780, Sony Ericsson K500i and Z600, Palm, Funambol for Windows)
must each get a complete, sensible answer.  Where the recording has the
original server's answer (Horde), the status codes are compared.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from calsync.config import parse as parse_config
from calsync.items import Item
from calsync.syncml import codec
from calsync.syncml.backend import Backend
from calsync.syncml.config import load
from calsync.syncml.model import Alert, Message, Status
from calsync.syncml.session import ServerSession, drive
from tests.syncml.traces import DEVICES

HORDE = "http://horde.example/rpc.php"


def setup(tmp: Path, user: str, password: str, extra: str = "") -> tuple[object, Path]:
    store = tmp / "store"
    store.mkdir()
    cfg, errors = parse_config(
        f"""
[general]
state_dir = "{tmp / "state"}"
[stores.laptop]
type = "vdir"
path = "{store}"
create = true
[syncml]
aliases = {{ horde = "calendar" }}
[syncml.accounts.{user}]
password = "{password}"
calendar = "laptop"
max_delete = 10
{extra}
"""
    )
    assert not errors, errors
    settings = load(cfg)
    return (settings.server, Backend(cfg, settings.accounts)), store


def creds(data: bytes) -> tuple[str, str]:
    """The user and password of a message's basic credentials."""
    msg = codec.decode(data, codec.encoding_of(None, data))
    cred = msg.header.cred or next((c.cred for c in msg.commands if getattr(c, "cred", None)), None)
    assert cred is not None and cred.type == "syncml:auth-basic", "no basic credentials"
    user, _, password = base64.b64decode(cred.data).decode().partition(":")
    return user, password


def reply_of(session: ServerSession, backend: Backend, data: bytes) -> Message:
    enc = codec.encoding_of(None, data)
    reply = drive(session.receive(data, codec.content_type(enc), 0.0), backend)
    return codec.decode(reply.body, codec.encoding_of(reply.content_type, reply.body))


def codes(msg: Message, cmd: str) -> list[int]:
    return [c.code for c in msg.commands if isinstance(c, Status) and c.cmd == cmd]


def every_command_answered(request: bytes, reply: Message) -> None:
    """SyncML wants one Status per command (the SyncHdr's first)."""
    msg = codec.decode(request, codec.encoding_of(None, request))
    refs = {(s.cmd_ref) for s in reply.commands if isinstance(s, Status)}
    assert isinstance(reply.commands[0], Status) and reply.commands[0].cmd == "SyncHdr"
    for cmd in msg.commands:
        if not isinstance(cmd, Status):
            assert cmd.cmd_id in refs, f"{type(cmd).__name__} {cmd.cmd_id} has no status"


def conversation(folder: str) -> dict[int, list[Path]]:
    sessions: dict[int, list[Path]] = {}
    for p in sorted((DEVICES / folder).glob("syncml_client_*.xml")):
        s, m = int(p.stem[-2]), int(p.stem[-1])
        sessions.setdefault(s, []).insert(m, p)
    return sessions


def store_items(store: Path) -> dict[str, str]:
    out = {}
    for p in store.glob("*.ics"):
        item = Item.from_bytes(p.read_bytes())
        m = item.master()
        out[item.uid] = (m.value("SUMMARY") if m else "") or ""
    return out


@pytest.fixture
def vcal_available() -> None:
    from calsync.syncml import content

    assert "text/x-vcalendar" in content.formats(), (
        "the vCalendar 1.0 converter (calsync.items.vcal, issue #7) is not installed"
    )


def test_sony_ericsson_p900_six_sessions(tmp_path: Path, vcal_available: None) -> None:
    sessions = conversation("sonyericsson-p900-horde")
    first = sessions[1][0].read_bytes()
    (server, backend), store = setup(tmp_path, *creds(first))
    expected_after = {
        1: {"667", "678", "679"},
        2: {"667", "678", "679", "680", "681", "682"},
        5: {"667", "678", "679", "680"},
    }
    for n, messages in sorted(sessions.items()):
        session = ServerSession(server, url=HORDE, token=f"s{n}", now=0.0)  # type: ignore[arg-type]
        for i, path in enumerate(messages):
            data = path.read_bytes()
            reply = reply_of(session, backend, data)  # type: ignore[arg-type]
            every_command_answered(data, reply)
            horde = codec.decode(
                (path.parent / path.name.replace("client", "server")).read_bytes(), "xml"
            )
            if i == 0:
                assert codes(reply, "SyncHdr") == [212]
                # the same decision as Horde's: slow sync first, two-way afterwards
                assert codes(reply, "Alert") == codes(horde, "Alert")
                ours = [c.code for c in reply.commands if isinstance(c, Alert)]
                assert ours == ([201] if n == 1 else [200])
            else:
                for kind in ("Replace", "Delete"):
                    got = codes(reply, kind)
                    assert all(200 <= c < 300 for c in got), (path.name, kind, got)
            assert reply.final
        if n in expected_after:
            assert set(store_items(store)) == expected_after[n], n
    # every item holds what the phone last sent for it
    last: dict[str, str] = {}
    for messages in sessions.values():
        for path in messages:
            text = path.read_bytes().decode("utf-8", "replace")
            for luid, body in re.findall(
                r"<Source><LocURI>([^<]+)</LocURI></Source><Data><!\[CDATA\[(.*?)\]\]>", text, re.S
            ):
                summary = re.search(r"(?m)^SUMMARY[^:\n]*:(.*?)\r?$", body)
                last[luid] = summary.group(1) if summary else ""
    items = store_items(store)
    assert items == {luid: last[luid] for luid in items}
    assert len(items) == 4
    # the QUOTED-PRINTABLE umlaut made it through
    data = next(p for p in store.glob("*.ics") if "678" in p.name).read_bytes()
    assert "ü".encode() in data


@pytest.mark.parametrize(
    "folder", ["funambol-pocketpc-calendar-horde", "funambol-outlook-3.0.15-calendar-horde"]
)
def test_funambol_sif_items_are_refused_not_lost(tmp_path: Path, folder: str) -> None:
    sessions = conversation(folder)
    (server, backend), store = setup(tmp_path, *creds(sessions[1][0].read_bytes()))
    for n, messages in sorted(sessions.items()):
        session = ServerSession(server, url=HORDE, token=f"s{n}", now=0.0)  # type: ignore[arg-type]
        for path in messages:
            if session.done:
                break  # Horde answered differently; the client would have followed us
            data = path.read_bytes()
            reply = reply_of(session, backend, data)  # type: ignore[arg-type]
            every_command_answered(data, reply)
            for kind in ("Add", "Replace"):
                # SIF (text/x-s4j-sife) is a format calsync does not convert
                assert set(codes(reply, kind)) <= {415}, (path.name, codes(reply, kind))
    assert list(store.iterdir()) == []


def test_funambol_contacts_datastore_is_not_found(tmp_path: Path) -> None:
    path = conversation("funambol-pocketpc-contacts-horde")[1][0]
    (server, backend), _ = setup(tmp_path, *creds(path.read_bytes()))
    session = ServerSession(server, url=HORDE, token="c", now=0.0)  # type: ignore[arg-type]
    reply = reply_of(session, backend, path.read_bytes())  # type: ignore[arg-type]
    assert codes(reply, "SyncHdr") == [212] and codes(reply, "Alert") == [404]


FIRST_MESSAGES = {
    # file: (Alert statuses, our Alerts); contacts datastores are not calsync's
    "motorola-a780/MotorolaA780.wbxml": ([404, 200, 200], [201, 201]),
    "sonyericsson-k500i/k500i_client_0.wbxml": ([404], []),
    "sonyericsson-z600/z600_client_0.wbxml": ([200], [201]),  # "horde": an alias here
    "funambol-windows-10.1.6/funambol_sample.xml": ([404], []),
    "funambol-windows-10.1.6/sample.wbxml": ([404], []),
}


@pytest.mark.parametrize("name", sorted(FIRST_MESSAGES))
def test_first_messages_of_devices(tmp_path: Path, name: str) -> None:
    data = (DEVICES / name).read_bytes()
    (server, backend), _ = setup(tmp_path, *creds(data), extra='tasks = "laptop"')
    session = ServerSession(server, url=HORDE, token="d", now=0.0)  # type: ignore[arg-type]
    reply = reply_of(session, backend, data)  # type: ignore[arg-type]
    every_command_answered(data, reply)
    assert codes(reply, "SyncHdr") == [212]
    statuses, alerts = FIRST_MESSAGES[name]
    assert codes(reply, "Alert") == statuses
    assert [c.code for c in reply.commands if isinstance(c, Alert)] == alerts
    assert reply.final


@pytest.mark.parametrize("packet", [3, 4, 5])
def test_palm_without_credentials_gets_407(tmp_path: Path, packet: int) -> None:
    data = (DEVICES / "synthesis-palm-2.1" / f"syncml_client_packet_{packet}.wbxml").read_bytes()
    (server, backend), store = setup(tmp_path, "palm", "pw", extra='tasks = "laptop"')
    session = ServerSession(server, url=HORDE, token="p", now=0.0)  # type: ignore[arg-type]
    reply = reply_of(session, backend, data)  # type: ignore[arg-type]
    every_command_answered(data, reply)
    assert set(c.code for c in reply.commands if isinstance(c, Status)) == {407}
    assert list(store.iterdir()) == []


def test_palm_datastore_names_with_filters_resolve(tmp_path: Path) -> None:
    """``events?/dr(-30,90)`` is the calendar: the CGI-style filter is ignored."""
    from calsync.syncml.session import DEFAULT_ALIASES, Account

    acct = Account("palm", "pw", {"calendar": "laptop", "tasks": "laptop"})
    assert acct.resolve("events?/dr(-30,90)", DEFAULT_ALIASES) == "calendar"
    assert acct.resolve("./Calendar", DEFAULT_ALIASES) == "calendar"
    assert acct.resolve("./stask", DEFAULT_ALIASES) == "tasks"
    assert acct.resolve("notes", DEFAULT_ALIASES) is None
