"""XML and WBXML codecs against every captured message, and libwbxml as the referee."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from calsync.syncml import codec, wbxml, xml_codec
from calsync.syncml.model import DecodeError, build_message, parse_message
from tests.adversarial.bombs import XML_EXTERNAL, XML_LAUGHS, nested_devinf_bomb, str_t_bomb
from tests.syncml.traces import (
    all_messages,
    assert_exists,
    canon,
    device_wbxml,
    device_xml,
    label,
    trace_wbxml,
    trace_xml_bodies,
)


def _wbxml2xml(data: bytes, tmp: Path) -> bytes:
    tool = shutil.which("wbxml2xml")
    assert tool, "wbxml2xml missing: run ../shared/peers/install.sh syncevolution"
    src = tmp / "in.wbxml"
    src.write_bytes(data)
    out = tmp / "out.xml"
    subprocess.run([tool, "-k", "-o", str(out), str(src)], check=True, capture_output=True)
    return out.read_bytes()


def _xml2wbxml(data: bytes, tmp: Path) -> bytes:
    tool = shutil.which("xml2wbxml")
    assert tool, "xml2wbxml missing: run ../shared/peers/install.sh syncevolution"
    src = tmp / "in.xml"
    src.write_bytes(data)
    out = tmp / "out.wbxml"
    # without -k: with it, libwbxml puts the whitespace before a nested DevInf into the
    # opaque run, which no device does
    subprocess.run([tool, "-o", str(out), str(src)], check=True, capture_output=True)
    return out.read_bytes()


def test_the_captures_are_there() -> None:
    assert_exists(trace_wbxml())
    assert_exists(trace_xml_bodies())
    assert_exists(device_wbxml())
    assert_exists(device_xml())
    assert len(trace_wbxml()) == 42 and len(trace_xml_bodies()) == 32


@pytest.mark.peer
@pytest.mark.parametrize("path", trace_wbxml() + device_wbxml(), ids=label)
def test_wbxml_decode_agrees_with_libwbxml(path: Path, tmp_path: Path) -> None:
    ours = wbxml.decode(path.read_bytes()).root
    theirs = xml_codec.decode(_wbxml2xml(path.read_bytes(), tmp_path))
    assert canon(ours) == canon(theirs)


@pytest.mark.parametrize("path", trace_wbxml(), ids=label)
def test_syncevolution_wbxml_reencodes_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    doc = wbxml.decode(data)
    assert wbxml.encode(doc.root, doc.doc_version, doc.version) == data


@pytest.mark.peer
@pytest.mark.parametrize("path", device_wbxml(), ids=label)
def test_device_wbxml_reencodes_to_what_libwbxml_reads_the_same(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    doc = wbxml.decode(data)
    if doc.doc_type == "DevInf":
        ours = wbxml.encode_devinf(doc.root, doc.version)
    else:
        ours = wbxml.encode(doc.root, doc.doc_version, doc.version)
    assert canon(xml_codec.decode(_wbxml2xml(ours, tmp_path))) == canon(
        xml_codec.decode(_wbxml2xml(data, tmp_path))
    )


@pytest.mark.peer
@pytest.mark.parametrize("path", trace_xml_bodies() + device_xml(), ids=label)
def test_xml_messages_through_libwbxml_decode_to_the_same_tree(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    ours = xml_codec.decode(data)
    binary = _xml2wbxml(data, tmp_path)  # libwbxml's encoding (string table and all)
    assert canon(wbxml.decode(binary).root) == canon(ours)
    # and our own WBXML of it says the same to libwbxml
    assert canon(xml_codec.decode(_wbxml2xml(wbxml.encode(ours), tmp_path))) == canon(ours)


@pytest.mark.parametrize("path", [p for p in all_messages() if p.name != "devinf.wbxml"], ids=label)
def test_typed_model_round_trip(path: Path) -> None:
    """Parse -> Message -> tree -> both encodings -> parse again: nothing lost."""
    data = path.read_bytes()
    enc = codec.encoding_of(None, data)
    root = codec.decode_tree(data, enc)
    msg = parse_message(root)
    assert msg.commands or msg.final
    rebuilt = build_message(msg)
    for target in ("xml", "wbxml"):
        again = parse_message(codec.decode_tree(codec.encode(msg, target), target))
        assert canon(build_message(again)) == canon(rebuilt), target
    assert _multiset(canon(rebuilt)) == _multiset(canon(root))


def _multiset(t: tuple[object, ...]) -> object:
    """Order-insensitive form (the model writes children in DTD order)."""
    name, ns, text, children = t
    assert isinstance(children, tuple)
    return (name, ns, text, tuple(sorted(repr(_multiset(c)) for c in children)))  # type: ignore[arg-type]


@pytest.mark.parametrize("path", trace_xml_bodies(), ids=label)
def test_xml_reencodes_to_the_same_tree(path: Path) -> None:
    tree = xml_codec.decode(path.read_bytes())
    assert canon(xml_codec.decode(xml_codec.encode(tree))) == canon(tree)


# -- hostile and broken input ---------------------------------------------------------------

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE SyncML SYSTEM "http://127.0.0.1:9/evil.dtd">
<SyncML><SyncHdr><VerDTD>1.2</VerDTD></SyncHdr></SyncML>"""


@pytest.mark.parametrize(
    "data", [XML_LAUGHS, XML_EXTERNAL], ids=["billion-laughs", "external-entity"]
)
def test_xml_entities_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError, match="refused"):
        xml_codec.decode(data)


def test_an_external_dtd_is_never_fetched() -> None:
    # parses (the DTD is ignored, nothing listens on port 9 anyway) without network
    tree = xml_codec.decode(EXTERNAL_DTD)
    assert tree.value("SyncHdr", "VerDTD") == "1.2"


def test_xml_limits() -> None:
    limits = wbxml.Limits(max_bytes=1000, max_depth=10, max_elements=50)
    with pytest.raises(DecodeError, match="larger"):
        xml_codec.decode(b"<SyncML>" + b" " * 2000 + b"</SyncML>", limits)
    with pytest.raises(DecodeError, match="deeper"):
        xml_codec.decode(b"<a>" * 20 + b"</a>" * 20, limits)
    with pytest.raises(DecodeError, match="too many"):
        xml_codec.decode(b"<a>" + b"<b/>" * 60 + b"</a>", limits)
    with pytest.raises(DecodeError, match="malformed"):
        xml_codec.decode(b"<SyncML><SyncHdr></SyncML>")


def test_wbxml_limits_and_malformations() -> None:
    good = trace_wbxml()[0].read_bytes()
    for bad, why in [
        (b"", "too short"),
        (b"\x09\x01\x6a\x00\x6d\x01", "version"),
        (good[:100], "ends inside"),
        (good[:8] + b"\x3f\x01", "unknown tag"),
        (b"\x02\xa4\x01\x6a\x00\x6d\xc3\x8f\xff\xff\xff\x7f", "runs past"),
        (b"\x02\xa4\x01\x6a\x00\x6d\x03abc", "unterminated"),
        (b"\x02\xa4\x01\x6a\x00\xed\x01", "attributes"),
        (b"\x02\xa4\x01\x6a\x00\x6d\x01\x01", "outside"),
        (b"\x02\xa4\x01\x6a\x05abc\x00\x6d\x83\x09\x01", "string table"),
        (b"\x02\xff\xff\xff\xff\xff\x01", "longer than 32"),
    ]:
        with pytest.raises(DecodeError):
            wbxml.decode(bad)
        del why
    deep = b"\x02\xa4\x01\x6a\x00" + b"\x6d" * 100 + b"\x01" * 100
    with pytest.raises(DecodeError, match="deeper"):
        wbxml.decode(deep)
    with pytest.raises(DecodeError, match="larger"):
        wbxml.decode(good, wbxml.Limits(max_bytes=100))


def test_content_types() -> None:
    assert codec.encoding_of("application/vnd.syncml+wbxml", b"") == "wbxml"
    assert codec.encoding_of("application/vnd.syncml+xml; charset=UTF-8", b"") == "xml"
    assert codec.encoding_of(None, b"\x02\xa4") == "wbxml"
    assert codec.encoding_of("", b"<?xml") == "xml"
    with pytest.raises(DecodeError):
        codec.encoding_of("image/png", b"\x89PNG")
    # a server takes the SyncML media types only, never a sniffed body
    assert codec.syncml_encoding("application/vnd.syncml+wbxml") == "wbxml"
    assert codec.syncml_encoding("Application/Vnd.SyncML+XML; charset=UTF-8") == "xml"
    for other in (None, "", "text/xml", "application/xml", "text/plain", "image/png"):
        with pytest.raises(DecodeError, match="not a SyncML content type"):
            codec.syncml_encoding(other)


# -- decoding bombs ------------------------------------------------------------------------


def _peak_while(fn: object) -> tuple[int, BaseException | None]:
    """Peak Python memory (bytes) while ``fn()`` runs, and what it raised."""
    assert callable(fn)
    tracemalloc.start()
    try:
        fn()
        err = None
    except Exception as e:  # the caller checks which
        err = e
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, err


@pytest.mark.parametrize("nested", [False, True], ids=["message", "nested-devinf"])
def test_a_string_table_bomb_is_refused_while_decoding(nested: bool) -> None:
    """Finding 1 of issue 19: every STR_T copied the table entry with no overall cap
    (a 120 KB message took the daemon to 2 GB).  Here 30 KB that would decode into
    100 MB are refused while decoding, holding a few MB at most."""
    bomb = nested_devinf_bomb(20_000, 5_000) if nested else str_t_bomb(20_000, 5_000)
    assert len(bomb) < 31_000
    peak, err = _peak_while(lambda: wbxml.decode(bomb))
    assert isinstance(err, DecodeError) and "more than" in str(err), err
    assert peak < 4 * len(bomb) + 2_000_000, f"{peak} bytes held while decoding"
    # the budget is proportional to the message: a few references still decode
    small = str_t_bomb(100, 20)
    root = wbxml.decode(small).root
    assert root.value("SyncHdr", "VerDTD") == "A" * 2000


def test_the_text_budget_covers_the_captures_and_xml() -> None:
    """Real messages stay far below the budget (it is 4 bytes of text per input
    byte; the captures use under 2, a nested DevInf counting twice), and an XML
    message's text is held to the same absolute limit."""
    for path in trace_wbxml() + device_wbxml():
        data = path.read_bytes()
        wbxml.decode(data, wbxml.Limits(expansion=2))
    limits = wbxml.Limits(max_text=1000)
    text = b"<SyncML><SyncHdr><VerDTD>" + b"x" * 2000 + b"</VerDTD></SyncHdr></SyncML>"
    with pytest.raises(DecodeError, match="more than 1000 bytes of text"):
        xml_codec.decode(text, limits)
    assert xml_codec.decode(text).value("SyncHdr", "VerDTD") == "x" * 2000
