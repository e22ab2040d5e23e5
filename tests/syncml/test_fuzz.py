"""Bounded fuzzing: mutated captured messages through the decoders and the session.

Whatever the bytes, the decoders return a tree or raise DecodeError, and a
session answers with a SyncML reply or refuses the message with one of its
three documented exceptions; nothing else escapes, and an unauthenticated
session never asks the world to write.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calsync.syncml import codec, wbxml, xml_codec
from calsync.syncml.model import DecodeError, ProtocolError, Status
from calsync.syncml.session import ForeignSession, ServerSession
from tests.syncml.scripted import URL, Device, FakeWorld, alert, config, login, parse, send
from tests.syncml.traces import trace_wbxml, trace_xml_bodies

WBXML = [p.read_bytes() for p in trace_wbxml()]
XML = [p.read_bytes() for p in trace_xml_bodies()]
CLIENT_MESSAGES = [p.read_bytes() for p in trace_wbxml() + trace_xml_bodies() if "-c2s" in p.name]
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup", "zero"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 200))]
        elif kind == "zero" and data:
            data[pos] = 0
    return bytes(data)


@FUZZ
@given(mutated(WBXML))
def test_wbxml_decoder(data: bytes) -> None:
    try:
        doc = wbxml.decode(data)
    except DecodeError:
        return
    wbxml.encode(doc.root)  # whatever decodes can be written again


@FUZZ
@given(mutated(XML))
def test_xml_decoder(data: bytes) -> None:
    try:
        tree = xml_codec.decode(data)
    except DecodeError:
        return
    xml_codec.encode(tree)


@FUZZ
@given(mutated(CLIENT_MESSAGES))
def test_a_new_session_with_mutated_messages(data: bytes) -> None:
    world = FakeWorld()
    session = ServerSession(config(), url=URL, token="f", now=0.0)
    ctype = codec.WBXML_TYPE if data[:1] in (b"\x01", b"\x02", b"\x03") else codec.XML_TYPE
    from calsync.syncml.session import drive

    try:
        reply = drive(session.receive(data, ctype, 0.0), world)
    except (DecodeError, ProtocolError, ForeignSession):
        return
    msg = parse(reply)
    assert isinstance(msg.commands[0], Status) and msg.commands[0].cmd == "SyncHdr"
    assert world.writes == []  # the captured credentials are not valid here


@FUZZ
@given(st.data())
def test_an_established_session_with_mutated_messages(data: st.DataObject) -> None:
    world, dev = FakeWorld(), Device(encoding="wbxml")
    session, _ = login(world, dev, [alert(201)])
    for _ in range(data.draw(st.integers(1, 3))):
        raw = data.draw(mutated([p for p in WBXML if len(p) < 2000]))
        # graft a valid header of this session onto the mutated body
        try:
            tree = wbxml.decode(raw).root
        except DecodeError:
            tree = None
        body = raw
        if tree is not None and tree.find("SyncHdr") is not None:
            hdr = codec.decode_tree(dev.encode(dev.header(), []), "wbxml").find("SyncHdr")
            assert hdr is not None
            tree.children = [hdr if c.name == "SyncHdr" else c for c in tree.children]
            body = wbxml.encode(tree)
        try:
            reply = send(session, world, dev, body)
        except (DecodeError, ProtocolError, ForeignSession):
            continue
        parse(reply)
        if reply.finished:
            break


def test_the_corpus_is_not_empty(tmp_path: Path) -> None:
    assert WBXML and XML and CLIENT_MESSAGES
