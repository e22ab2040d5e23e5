"""The sans-I/O server session, driven by a scripted device against a fake world."""

from __future__ import annotations

from typing import Any

import pytest

from calsync.syncml import auth
from calsync.syncml.model import (
    Alert,
    Change,
    DecodeError,
    Item,
    Meta,
    ProtocolError,
    Status,
    Sync,
    Unknown,
)
from calsync.syncml.session import (
    Account,
    ApplyChanges,
    DatastoreState,
    Finish,
    ForeignSession,
    LoadNonce,
    OpenDatastore,
    OutgoingChange,
    Progress,
    ServerSession,
)
from tests.syncml.scripted import (
    URL,
    Device,
    FakeWorld,
    add,
    alert,
    config,
    devinf_put,
    login,
    mapping,
    parse,
    send,
    status_for,
    statuses,
    sync,
)

EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTART:20250101T100000Z\r\n"
    b"SUMMARY:One\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["xml", "wbxml"])
def test_md5_first_contact_gets_a_nonce_then_succeeds(encoding: str) -> None:
    world, dev = FakeWorld(), Device(encoding=encoding)
    s1 = ServerSession(config(), url=URL, token="a", now=0)
    reply = send(s1, world, dev, dev.encode(dev.header("md5"), [alert(201)]))
    msg = parse(reply)
    hdr = next(s for s in statuses(msg) if s.cmd == "SyncHdr")
    assert hdr.code == 401 and hdr.chal is not None and hdr.chal.type == auth.MD5
    assert hdr.chal.next_nonce == world.nonces["phone-1"]
    assert status_for(msg, "Alert") == [401]
    assert reply.finished and not reply.authenticated and msg.final
    assert world.writes == []
    # the retry with the nonce, in a new session as real clients do
    dev.new_session()
    dev.nonce = hdr.chal.next_nonce
    s2 = ServerSession(config(), url=URL, token="b", now=0)
    msg2 = parse(send(s2, world, dev, dev.encode(dev.header("md5"), [alert(201)])))
    hdr2 = statuses(msg2)[0]
    assert (hdr2.cmd, hdr2.code) == ("SyncHdr", 212)
    assert hdr2.chal is not None and hdr2.chal.next_nonce != dev.nonce  # rotated
    assert msg2.header.resp_uri == f"{URL}?sessionid=b"


def test_a_nonce_is_single_use() -> None:
    world, dev = FakeWorld(), Device()
    login(world, dev, [alert(201)])
    dev.new_session()  # replay the same credential (old nonce)
    s = ServerSession(config(), url=URL, token="c", now=0)
    msg = parse(send(s, world, dev, dev.encode(dev.header("md5"), [alert(201)])))
    assert status_for(msg, "SyncHdr") == [401]


@pytest.mark.parametrize(
    ("cred", "password", "code"),
    [("md5", "wrong", 401), ("basic", "wrong", 401), (None, "secret", 407)],
)
def test_bad_credentials_change_nothing(cred: str | None, password: str, code: int) -> None:
    world = FakeWorld(nonces={"phone-1": auth.new_nonce()})
    dev = Device(password=password)
    dev.nonce = world.nonces["phone-1"]
    s = ServerSession(config(), url=URL, token="a", now=0)
    commands = [devinf_put(), alert(200, last="x"), sync([add("1", EVENT)])]
    msg = parse(send(s, world, dev, dev.encode(dev.header(cred), commands)))
    codes = [st.code for st in statuses(msg)]
    assert codes and set(codes) == {code}
    assert world.writes == [] and world.devinf is None
    assert s.done


@pytest.mark.parametrize("cred", ["md5", "basic", None])
def test_a_failed_login_leaves_the_nonce_alone(cred: str | None) -> None:
    """Finding 6 of issue 19: every failed first message rotated the device's nonce,
    so anyone knowing a device ID locked it out.  Now the challenge repeats the
    nonce the device holds, and the device logs in with it."""
    nonce = auth.new_nonce()
    world = FakeWorld(nonces={"phone-1": nonce})
    attacker = Device(password="guess")
    for n in range(3):
        s = ServerSession(config(), url=URL, token=f"x{n}", now=0)
        msg = parse(send(s, world, attacker, attacker.encode(attacker.header(cred), [alert(201)])))
        hdr = next(st for st in statuses(msg) if st.cmd == "SyncHdr")
        assert hdr.code == (407 if cred is None else 401)
        assert hdr.chal is not None and hdr.chal.next_nonce == nonce
        attacker.new_session()
    assert world.nonces == {"phone-1": nonce}
    dev = Device()
    _, msg = login(world, dev, [alert(201)])  # no lock-out
    assert world.nonces["phone-1"] != nonce  # rotated by the success


def test_a_nonce_used_by_a_simultaneous_login_does_not_let_a_replay_in() -> None:
    """Check and rotate are one step (``ConsumeNonce``): when another login consumed
    the nonce between our loading and rotating it (a replay racing the device),
    this login fails."""

    class Racing(FakeWorld):
        racing = False

        def __call__(self, req: Any) -> Any:
            answer = super().__call__(req)
            if self.racing and isinstance(req, LoadNonce):  # the other login wins meanwhile
                self.nonces[req.device] = auth.new_nonce()
            return answer

    world, dev = Racing(), Device()
    login(world, dev, [alert(201)])
    world.racing = True
    dev.new_session()
    dev.nonce = world.nonces["phone-1"]
    session = ServerSession(config(), url=URL, token="r", now=0)
    before = len(world.log)
    reply = send(session, world, dev, dev.encode(dev.header("md5"), [alert(201)]))
    assert status_for(parse(reply), "SyncHdr") == [401]
    assert reply.finished and not reply.authenticated
    assert not [r for r in world.log[before:] if isinstance(r, OpenDatastore)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", "d" * 129),
        ("source_name", "u" * 257),
        ("session_id", "1" * 257),
        ("target", "http://x/" + "t" * 300),
        ("cred", "c" * 1025),
    ],
)
def test_oversized_header_fields_are_refused_before_anything_is_stored(
    field: str, value: str
) -> None:
    """Finding 6: 200 requests with 500 KB device IDs grew syncml.sqlite by 201 MB
    and the log by 100 MB.  Header fields are bounded (device ID 128, others 256,
    credentials 1024 characters); the error names the length, not the value."""
    world, dev = FakeWorld(), Device()
    hdr = dev.header("basic")
    if field == "cred":
        assert hdr.cred is not None
        hdr.cred.data = value
    else:
        setattr(hdr, field, value)
    s = ServerSession(config(), url=URL, token="a", now=0)
    with pytest.raises(ProtocolError) as err:
        send(s, world, dev, dev.encode(hdr, [alert(201)]))
    text = str(err.value)  # what the gateway logs: the length and a short start
    assert str(len(value)) in text and len(text) < 100
    assert (value[:24] in text) == (field != "cred")  # never a credential
    assert world.log == [] and s.device is None


def test_a_message_before_login_is_a_small_tree() -> None:
    """Decoding comes before anyone is known: until the login succeeded a message may
    hold 50,000 elements (package 1 of real devices has under 1,000), after it the
    configured limit (500,000)."""
    world, dev = FakeWorld(), Device()

    def padded(hdr: Any, n: int) -> bytes:
        body = dev.encode(hdr, [alert(201)])
        return body.replace(b"</SyncHdr>", b"<Pad>" + b"<x/>" * n + b"</Pad></SyncHdr>")

    s = ServerSession(config(), url=URL, token="a", now=0)
    with pytest.raises(DecodeError, match="too many elements"):
        send(s, world, dev, padded(dev.header("basic"), 60_000))
    assert world.log == []
    dev.new_session()
    session, _ = login(world, dev, [alert(201)])
    reply = send(session, world, dev, padded(dev.header(), 60_000))
    assert status_for(parse(reply), "SyncHdr") == [200]


def test_basic_auth_and_account_restrictions() -> None:
    world, dev = FakeWorld(), Device()
    s = ServerSession(config(), url=URL, token="a", now=0)
    msg = parse(send(s, world, dev, dev.encode(dev.header("basic"), [alert(201)])))
    assert status_for(msg, "SyncHdr") == [212]
    md5_only = config(alice=Account("alice", "secret", {"calendar": "x"}, auth="md5"))
    dev.new_session()
    s = ServerSession(md5_only, url=URL, token="b", now=0)
    msg = parse(send(s, world, dev, dev.encode(dev.header("basic"), [alert(201)])))
    assert status_for(msg, "SyncHdr") == [401]


# -- package 1 ---------------------------------------------------------------------------------


def test_alerts_anchors_and_slow_sync_forcing() -> None:
    world = FakeWorld(
        states={
            "calendar": DatastoreState(device_anchor="n0", server_anchor="s0"),
            "tasks": DatastoreState(device_anchor="n0", needs_slow=True),
        }
    )
    dev = Device()
    _, msg = login(
        world,
        dev,
        [
            alert(200, last="n0", nxt="n1"),
            alert(200, "todo", "./todo", last="n0"),
            alert(200, "./Contacts", "./contacts"),
        ],
    )
    assert status_for(msg, "Alert") == [200, 508, 404]
    ours = [c for c in msg.commands if isinstance(c, Alert)]
    assert [a.code for a in ours] == [200, 201]
    cal = ours[0].items[0]
    assert (cal.target, cal.source) == ("./calendar", "calendar")
    assert cal.meta is not None and cal.meta.anchor is not None
    assert cal.meta.anchor.last == "s0" and cal.meta.anchor.next
    echo = next(s for s in statuses(msg) if s.cmd == "Alert").items[0].data_node
    assert echo is not None and echo.value("Next") == "n1"
    assert msg.final


def test_anchor_mismatch_means_slow_sync() -> None:
    world = FakeWorld(states={"calendar": DatastoreState(device_anchor="n0")})
    _, msg = login(world, Device(), [alert(200, last="other")])
    assert status_for(msg, "Alert") == [508]
    assert [c.code for c in msg.commands if isinstance(c, Alert)] == [201]


def test_a_resume_we_cannot_honour_becomes_a_slow_sync() -> None:
    """Finding 10 of issue 19: after a daemon crash SyncEvolution resumes with Alert
    225, which got 406 and failed the session.  We keep no suspended sessions, so
    a resume is answered the way OMA DS specifies for a sync the server cannot
    continue: status 508 (refresh required) and our Alert 201; the slow sync
    then matches what both sides hold, and the session runs to its end."""
    world = FakeWorld(states={"calendar": DatastoreState(device_anchor="n0", server_anchor="s0")})
    dev = Device()
    session, msg = login(world, dev, [alert(225, last="n0", nxt="n1")])
    assert status_for(msg, "Alert") == [508]
    ours = [c for c in msg.commands if isinstance(c, Alert)]
    assert [a.code for a in ours] == [201]
    echo = next(s for s in statuses(msg) if s.cmd == "Alert").items[0].data_node
    assert echo is not None and echo.value("Next") == "n1"
    msg = parse(send(session, world, dev, dev.encode(dev.header(), [sync([add("1", EVENT)])])))
    assert status_for(msg, "Add") == [201]
    assert [(r.datastore, r.mode) for r in world.of(ApplyChanges)] == [("calendar", 201)]
    reply = send(session, world, dev, dev.encode(dev.header(), []))
    assert reply.finished
    assert [(f.datastore, f.ok, f.device_anchor) for f in world.of(Finish)] == [
        ("calendar", True, "n1")
    ]


@pytest.mark.parametrize("code", [201, 202, 203, 204, 205])
def test_each_sync_mode_is_accepted(code: int) -> None:
    world = FakeWorld(states={"calendar": DatastoreState(device_anchor="n0")})
    _, msg = login(world, Device(), [alert(code, last="n0")])
    assert status_for(msg, "Alert") == [200]
    assert [c.code for c in msg.commands if isinstance(c, Alert)] == [code]


def test_devinf_put_get_and_results() -> None:
    world, dev = FakeWorld(), Device(encoding="wbxml")
    get = devinf_put()
    from calsync.syncml.model import Get

    _, msg = login(
        world,
        dev,
        [get, Get(0, items=[Item(target="./devinf12")]), alert(201), alert(201, "task", "./t")],
    )
    assert status_for(msg, "Put") == [200] and status_for(msg, "Get") == [200]
    assert world.devinf is not None and world.devinf.datastores[0].source_ref == "./calendar"
    from calsync.syncml.model import Results

    results = [c for c in msg.commands if isinstance(c, Results)]
    assert len(results) == 1
    node = results[0].items[0].data_node
    assert node is not None and node.name == "DevInf"
    refs = [ds.value("SourceRef") for ds in node.findall("DataStore")]
    assert refs[:2] == ["calendar", "task"]
    assert results[0].meta is not None
    assert results[0].meta.type == "application/vnd.syncml-devinf+wbxml"


def test_no_devinf_known_means_we_ask_for_it() -> None:
    world, dev = FakeWorld(), Device()
    _, msg = login(world, dev, [alert(201)])
    from calsync.syncml.model import Get

    gets = [c for c in msg.commands if isinstance(c, Get)]
    assert gets and gets[0].items[0].target == "./devinf12"


# -- packages 3 to 6 ----------------------------------------------------------------------------


def _through_package_3(world: FakeWorld, dev: Device, changes: list[Change]) -> tuple:
    session, _ = login(world, dev, [devinf_put(), alert(201)])
    reply = send(session, world, dev, dev.encode(dev.header(), [sync(changes)]))
    return session, parse(reply)


def test_a_whole_session() -> None:
    world = FakeWorld(
        outgoing={"calendar": [OutgoingChange("Add", "7", None, EVENT, "text/calendar")]}
    )
    dev = Device()
    session, msg = _through_package_3(world, dev, [add("L1", EVENT)])
    assert status_for(msg, "Sync") == [200] and status_for(msg, "Add") == [201]
    applied = world.of(ApplyChanges)
    assert applied[0].changes[0].luid == "L1"
    assert applied[0].changes[0].data == EVENT.replace(b"\r\n", b"\n")  # XML line ends
    ours = [c for c in msg.commands if isinstance(c, Sync)]
    assert len(ours) == 1 and ours[0].number_of_changes == 1
    sent = ours[0].changes[0]
    assert isinstance(sent, Change) and sent.kind == "Add" and sent.items[0].source == "7"
    assert msg.final
    assert world.of(Progress)[-1].sent == ["7"]  # in flight before the reply left
    # package 5: status for our Add and the Map
    st = Status(0, msg.header.msg_id, sent.cmd_id, "Add", 201)
    reply = send(session, world, dev, dev.encode(dev.header(), [st, mapping([("7", "L9")])]))
    final = parse(reply)
    assert status_for(final, "Map") == [200] and final.final and reply.finished
    progress = world.of(Progress)[-1]
    assert progress.results[0][1] == 201 and progress.maps[0].source == "L9"
    done = world.of(Finish)
    assert [(f.datastore, f.ok, f.device_anchor) for f in done] == [("calendar", True, "n1")]
    with pytest.raises(ProtocolError):  # the session is over
        send(session, world, dev, dev.encode(dev.header(), []))


def test_sync_for_a_datastore_never_alerted_writes_nothing() -> None:
    world, dev = FakeWorld(), Device()
    session, _ = login(world, dev, [alert(201)])
    reply = send(session, world, dev, dev.encode(dev.header(), [sync([add("1", EVENT)], "tasks")]))
    msg = parse(reply)
    assert status_for(msg, "Sync") == [404] and status_for(msg, "Add") == [404]
    assert world.of(ApplyChanges) == []


def test_out_of_order_commands_are_refused() -> None:
    world, dev = FakeWorld(), Device()
    # a Sync and a Map inside package 1
    _, msg = login(world, dev, [alert(201), sync([add("1", EVENT)]), mapping([("1", "2")])])
    assert status_for(msg, "Sync") == [405] and status_for(msg, "Add") == [405]
    assert status_for(msg, "Map") == [405]
    assert world.of(ApplyChanges) == [] and world.of(Progress) == []


def test_a_second_sync_alert_later_is_refused() -> None:
    world, dev = FakeWorld(), Device()
    session, _ = login(world, dev, [alert(201)])
    msg = parse(send(session, world, dev, dev.encode(dev.header(), [alert(201), sync([])])))
    assert status_for(msg, "Alert") == [405]


def test_unknown_commands_get_406() -> None:
    world, dev = FakeWorld(), Device()
    session, _ = login(world, dev, [alert(201)])
    from calsync.syncml.model import Node

    exec_node = Node("Exec")
    exec_node.add("CmdID", "9")
    copy = Change(0, "Copy", items=[Item(source="x", data=b"y")])
    atomic = Node("Atomic")
    atomic.add("CmdID", "5")
    s = sync([copy])
    s.changes.append(Unknown(5, "Atomic", atomic))
    msg = parse(
        send(session, world, dev, dev.encode(dev.header(), [Unknown(0, "Exec", exec_node), s]))
    )
    assert status_for(msg, "Exec") == [406]
    assert status_for(msg, "Copy") == [406] and status_for(msg, "Atomic") == [406]


def test_foreign_and_repeated_messages() -> None:
    world, dev = FakeWorld(), Device()
    session, _ = login(world, dev, [alert(201)])
    other = Device("phone-2")
    other.session_id = dev.session_id
    with pytest.raises(ForeignSession):
        send(session, world, other, other.encode(other.header(), [sync([])]))
    wrong_session = Device()
    wrong_session.session_id = 99
    with pytest.raises(ForeignSession):
        send(session, world, wrong_session, wrong_session.encode(wrong_session.header(), []))
    data = dev.encode(dev.header(), [sync([add("1", EVENT)])])
    first = send(session, world, dev, data)
    again = send(session, world, dev, data)  # a resend after a lost reply
    assert again.body == first.body
    assert len(world.of(ApplyChanges)) == 1
    dev.msg_id -= 1
    with pytest.raises(ProtocolError):  # same MsgID, other content
        send(session, world, dev, dev.encode(dev.header(), [sync([add("2", EVENT)])]))
    dev.msg_id -= 5
    with pytest.raises(ProtocolError):
        send(session, world, dev, dev.encode(dev.header(), []))


def test_a_failing_datastore_is_reported_and_not_committed() -> None:
    world = FakeWorld(errors={"calendar": "guard: too many deletions"})
    dev = Device()
    session, msg = _through_package_3(world, dev, [add("1", EVENT)])
    assert status_for(msg, "Sync") == [510]
    assert not [c for c in msg.commands if isinstance(c, Sync)]
    reply = send(session, world, dev, dev.encode(dev.header(), []))
    assert reply.finished
    assert [(f.datastore, f.ok) for f in world.of(Finish)] == [("calendar", False)]


def test_changes_refused_when_the_device_was_to_receive_only() -> None:
    world = FakeWorld()
    dev = Device()
    session, _ = login(world, dev, [alert(205)])
    msg = parse(send(session, world, dev, dev.encode(dev.header(), [sync([add("1", EVENT)])])))
    assert status_for(msg, "Add") == [405]
    assert world.of(ApplyChanges) == []


# -- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["xml", "wbxml"])
def test_our_package_is_split_under_the_device_max_msg_size(encoding: str) -> None:
    body = EVENT.replace(b"SUMMARY:One", b"SUMMARY:" + b"x" * 900)
    changes = [OutgoingChange("Add", str(n), None, body, "text/calendar") for n in range(40)]
    world = FakeWorld(outgoing={"calendar": changes})
    dev = Device(encoding=encoding, max_msg_size=8000)
    session, msg = _through_package_3(world, dev, [])
    got: list[Change] = []
    rounds = 0
    reply_size = []
    while True:
        rounds += 1
        assert rounds < 100, "no progress"
        syncs = [c for c in msg.commands if isinstance(c, Sync)]
        for s in syncs:
            got += [c for c in s.changes if isinstance(c, Change)]
        if msg.final:
            break
        assert rounds == 1 or syncs[0].number_of_changes is None
        st = [Status(0, msg.header.msg_id, c.cmd_id, "Add", 201) for c in syncs[0].changes]
        nxt = Alert(0, 222, items=[Item(target="calendar", source="./calendar")])
        reply = send(session, world, dev, dev.encode(dev.header(), [*st, nxt], final=False))
        reply_size.append(len(reply.body))
        msg = parse(reply)
    assert rounds > 4
    assert max(reply_size) <= 8000
    assert sorted(int(c.items[0].source or "") for c in got) == list(range(40))


@pytest.mark.parametrize("encoding", ["xml", "wbxml"])
def test_large_object_from_the_device(encoding: str) -> None:
    world, dev = FakeWorld(), Device(encoding=encoding)
    session, _ = login(world, dev, [devinf_put(), alert(201)])
    big = EVENT.replace(b"SUMMARY:One", b"SUMMARY:" + b"y" * 3000)
    parts = [big[:1000], big[1000:2000], big[2000:]]

    def chunk(data: bytes, more: bool, size: int | None = None) -> Change:
        item = Item(source="BIG", data=data, more_data=more)
        return Change(0, "Add", meta=Meta(type="text/calendar", size=size), items=[item])

    m1 = parse(
        send(
            session,
            world,
            dev,
            dev.encode(dev.header(), [sync([chunk(parts[0], True, len(big))])], final=False),
        )
    )
    assert status_for(m1, "Add") == [213]
    assert any(isinstance(c, Alert) and c.code == 222 for c in m1.commands)
    m2 = parse(
        send(
            session,
            world,
            dev,
            dev.encode(dev.header(), [sync([chunk(parts[1], True)])], final=False),
        )
    )
    assert status_for(m2, "Add") == [213]
    assert world.of(ApplyChanges) == []
    m3 = parse(
        send(session, world, dev, dev.encode(dev.header(), [sync([chunk(parts[2], False)])]))
    )
    assert status_for(m3, "Add") == [201]
    applied = world.of(ApplyChanges)
    expected = big if encoding == "wbxml" else big.replace(b"\r\n", b"\n")
    assert len(applied) == 1 and applied[0].changes[0].data == expected


def test_large_object_size_mismatch_and_limit() -> None:
    world, dev = FakeWorld(), Device(encoding="wbxml")
    session, _ = login(world, dev, [alert(201)])
    first = Change(
        0, "Add", meta=Meta(size=50), items=[Item(source="X", data=b"abc", more_data=True)]
    )
    send(session, world, dev, dev.encode(dev.header(), [sync([first])], final=False))
    last = Change(0, "Add", items=[Item(source="X", data=b"def")])
    msg = parse(send(session, world, dev, dev.encode(dev.header(), [sync([last])], final=False)))
    assert status_for(msg, "Add") == [424]
    huge = Change(
        0, "Add", meta=Meta(size=10**9), items=[Item(source="Y", data=b"a", more_data=True)]
    )
    msg = parse(send(session, world, dev, dev.encode(dev.header(), [sync([huge])], final=False)))
    assert status_for(msg, "Add") == [413]
    assert world.of(ApplyChanges) == []


@pytest.mark.parametrize("encoding", ["xml", "wbxml"])
def test_large_object_to_the_device(encoding: str) -> None:
    big = EVENT.replace(b"SUMMARY:One", b"SUMMARY:" + "é".encode() * 9000)
    world = FakeWorld(
        outgoing={"calendar": [OutgoingChange("Replace", "3", "L3", big, "text/calendar")]}
    )
    dev = Device(encoding=encoding, max_msg_size=6000)
    session, msg = _through_package_3(world, dev, [])
    pieces: list[bytes] = []
    declared = None
    while True:
        syncs = [c for c in msg.commands if isinstance(c, Sync)]
        change = syncs[0].changes[0] if syncs and syncs[0].changes else None
        assert isinstance(change, Change)
        assert change.items[0].target == "L3"
        if declared is None:
            assert change.meta is not None
            declared = change.meta.size
        pieces.append(change.items[0].data or b"")
        if not change.items[0].more_data:
            break
        st = Status(0, msg.header.msg_id, change.cmd_id, "Replace", 213)
        nxt = Alert(0, 222, items=[Item(target="calendar", source="./calendar")])
        msg = parse(send(session, world, dev, dev.encode(dev.header(), [st, nxt], final=False)))
    joined = b"".join(pieces)
    expected = big if encoding == "wbxml" else big.replace(b"\r\n", b"\n")
    assert joined == expected and declared == len(expected) and len(pieces) > 3
    assert msg.final


def test_a_device_without_large_objects_gets_a_413_for_a_huge_item() -> None:
    big = EVENT.replace(b"SUMMARY:One", b"SUMMARY:" + b"z" * 20000)
    world = FakeWorld(
        outgoing={"calendar": [OutgoingChange("Add", "3", None, big, "text/calendar")]}
    )
    dev = Device(max_msg_size=6000)
    session, _ = login(world, dev, [devinf_put(large=False), alert(201)])
    msg = parse(send(session, world, dev, dev.encode(dev.header(), [sync([])])))
    assert msg.final
    results = [r for p in world.of(Progress) for r in p.results]
    assert [(c.guid, code) for c, code in results] == [("3", 413)]


def test_package_2_split_for_a_small_max_msg_size() -> None:
    """A phone with a 2.7 KB limit (K500i, Z600) gets our DevInf in a later message."""
    from calsync.syncml.model import Get, Results

    world = FakeWorld()
    get = Get(0, items=[Item(target="./devinf12")])
    dev2 = Device("phone-2", max_msg_size=2100)
    session, msg = login(world, dev2, [devinf_put(), get, alert(201), alert(201, "task", "./t")])
    seen = list(msg.commands)
    rounds = 1
    while not msg.final:
        rounds += 1
        assert rounds < 20, "no progress"
        nxt = Alert(0, 222, items=[Item(target="calendar", source="./calendar")])
        reply = send(session, world, dev2, dev2.encode(dev2.header(), [nxt], final=False))
        assert len(reply.body) <= 2100
        msg = parse(reply)
        seen += msg.commands
    assert rounds > 1
    assert sum(isinstance(c, Results) for c in seen) == 1
    assert sorted(c.code for c in seen if isinstance(c, Alert) and c.code != 222) == [201, 201]


def test_the_device_preferred_format_is_remembered() -> None:
    """DevInf says vCalendar: used now, and in a later session without a DevInf."""
    from dataclasses import replace

    from calsync.syncml.model import Get, Results
    from calsync.syncml.session import RunSync

    cfg = replace(config(), formats=("text/calendar", "text/x-vcalendar"))
    world, dev = FakeWorld(), Device()
    get = Get(0, items=[Item(target="./devinf12")])
    session, msg = login(world, dev, [devinf_put(pref="text/x-vcalendar"), get, alert(201)], cfg)
    ours = next(c for c in msg.commands if isinstance(c, Results)).items[0].data_node
    assert ours is not None
    store = ours.findall("DataStore")[0]
    assert [t.value("CTType") for t in store.findall("Rx-Pref") + store.findall("Rx")] == [
        "text/calendar",
        "text/x-vcalendar",
    ]
    send(session, world, dev, dev.encode(dev.header(), [sync([])]))
    assert world.of(RunSync)[-1].content_type == "text/x-vcalendar"
    dev.new_session()  # no DevInf this time
    session, _ = login(world, dev, [alert(201)], cfg)
    send(session, world, dev, dev.encode(dev.header(), [sync([])]))
    assert world.of(RunSync)[-1].content_type == "text/x-vcalendar"
