"""Choosing XML or WBXML by HTTP content type, and measuring encoded sizes."""

from __future__ import annotations

from calsync.syncml import wbxml, xml_codec
from calsync.syncml.model import DecodeError, Message, Node, build_message, parse_message
from calsync.syncml.wbxml import DEFAULT_LIMITS, Limits

WBXML_TYPE = "application/vnd.syncml+wbxml"
XML_TYPE = "application/vnd.syncml+xml"
DEVINF_WBXML = "application/vnd.syncml-devinf+wbxml"
DEVINF_XML = "application/vnd.syncml-devinf+xml"


def syncml_encoding(content_type: str | None) -> str:
    """``wbxml`` or ``xml`` for the two SyncML media types only (the server's rule).

    Parameters (``; charset=UTF-8``) may follow; any other type, or none, is a
    DecodeError.  A server never sniffs: a web page can post a body without a
    type (or as text/plain) across sites, and that must not count as SyncML.
    """
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if ct == WBXML_TYPE:
        return "wbxml"
    if ct == XML_TYPE:
        return "xml"
    raise DecodeError(f"not a SyncML content type: {(content_type or '')[:80]!r}")


def encoding_of(content_type: str | None, body: bytes = b"") -> str:
    """``wbxml`` or ``xml``: from the content type, else by sniffing the body.

    Lenient, for what a client receives from servers (and for captures);
    a server takes ``syncml_encoding`` instead.
    """
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if ct == WBXML_TYPE:
        return "wbxml"
    if ct in (XML_TYPE, "text/xml", "application/xml"):
        return "xml"
    head = body[:1]
    if head in (b"\x01", b"\x02", b"\x03"):
        return "wbxml"
    if head in (b"<", b"\xef", b" ", b"\n", b"\r", b"\t"):
        return "xml"
    raise DecodeError(f"not a SyncML content type: {content_type!r}")


def content_type(encoding: str) -> str:
    return WBXML_TYPE if encoding == "wbxml" else XML_TYPE


def decode_tree(body: bytes, encoding: str, limits: Limits = DEFAULT_LIMITS) -> Node:
    if encoding == "wbxml":
        return wbxml.decode(body, limits).root
    return xml_codec.decode(body, limits)


def decode(body: bytes, encoding: str, limits: Limits = DEFAULT_LIMITS) -> Message:
    """The typed message (DecodeError: undecodable; ProtocolError: not SyncML)."""
    return parse_message(decode_tree(body, encoding, limits))


def encode_tree(root: Node, encoding: str) -> bytes:
    if encoding == "wbxml":
        return wbxml.encode(root)
    return xml_codec.encode(root)


def encode(msg: Message, encoding: str) -> bytes:
    return encode_tree(build_message(msg), encoding)


def size_of(node: Node, encoding: str) -> int:
    """Bytes ``node`` adds to a message (an upper bound for WBXML page switches)."""
    if encoding == "wbxml":
        return wbxml.element_size(node)
    return xml_codec.element_size(node)
