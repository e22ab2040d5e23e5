"""SyncML as XML: a safe parser and a plain writer.

Parsing goes through ``defusedxml`` (expat): entity declarations are refused
(no billion laughs, no external entities), DTDs are never fetched, and the
input size, nesting depth and element count are bounded before anything else
looks at the message.  Devices write namespaces in every style (none at all,
lower case, per element); elements are recognised by local name and their
namespace is inferred where missing.

The writer emits what SyncEvolution's server emits: no DOCTYPE, the SyncML
namespace on the root, ``xmlns="syncml:metinf"`` on MetInf elements, and item
data in CDATA sections.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from calsync.syncml.model import (
    DEVINF,
    METINF,
    NAMESPACE_URIS,
    SYNCML,
    DecodeError,
    Node,
    infer_ns,
    syncml_namespace,
)
from calsync.syncml.wbxml import DEFAULT_LIMITS, DEVINF_WBXML_TYPE, DEVINF_XML_TYPE, Limits

_NS_BY_URI = {"syncml:metinf": METINF, "syncml:devinf": DEVINF}


def _ns_of(tag: str, parent_ns: str | None) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, _, name = tag[1:].partition("}")
        uri = uri.lower()
        if uri in _NS_BY_URI:
            return name, _NS_BY_URI[uri]
        if uri.startswith("syncml:syncml"):
            return name, DEVINF if parent_ns == DEVINF else infer_ns(name, parent_ns)
        return name, infer_ns(name, parent_ns)
    return tag, infer_ns(tag, parent_ns)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Node:
    """Parse an XML SyncML message (or DevInf document); DecodeError when unusable."""
    if len(data) > limits.max_bytes:
        raise DecodeError(f"message of {len(data)} bytes is larger than {limits.max_bytes}")
    try:
        root = safe_et.fromstring(data, forbid_dtd=False, forbid_entities=True)
    except DefusedXmlException as e:
        raise DecodeError(f"refused XML construct: {type(e).__name__}") from None
    except ParseError as e:
        raise DecodeError(f"malformed XML: {e}") from None
    except (ValueError, UnicodeError, LookupError) as e:  # LookupError: unknown encoding
        raise DecodeError(f"undecodable XML: {e}") from None
    counter = [0]
    return _convert(root, None, 1, limits, counter)


def _convert(el: Element, parent_ns: str | None, depth: int, limits: Limits, n: list[int]) -> Node:
    if depth > limits.max_depth:
        raise DecodeError(f"elements nested deeper than {limits.max_depth}")
    n[0] += 1
    if n[0] > limits.max_elements:
        raise DecodeError("too many elements")
    name, ns = _ns_of(el.tag, parent_ns)
    node = Node(name, ns=ns)
    children = list(el)
    if children:
        if el.text and el.text.strip():
            raise DecodeError(f"{name} mixes elements and text")
        for child in children:
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions
            node.children.append(_convert(child, ns, depth + 1, limits, n))
            if child.tail and child.tail.strip():
                raise DecodeError(f"{name} mixes elements and text")
    elif el.text is not None:
        node.text = el.text
    return node


# -- writing ------------------------------------------------------------------------

# characters XML 1.0 cannot carry at all
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _escape(text: str) -> str:
    if _INVALID.search(text):
        text = _INVALID.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cdata(text: str) -> str:
    if _INVALID.search(text):
        text = _INVALID.sub("\ufffd", text)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _write(node: Node, out: list[str], parent_ns: str | None, root_ns: str | None) -> None:
    if node.ns != parent_ns and node.ns in NAMESPACE_URIS:
        out.append(f'<{node.name} xmlns="{NAMESPACE_URIS[node.ns]}"')
    elif root_ns is not None:
        out.append(f'<{node.name} xmlns="{root_ns}"')
    else:
        out.append(f"<{node.name}")
    if node.children:
        out.append(">")
        for child in node.children:
            _write(child, out, node.ns, None)
        out.append(f"</{node.name}>")
    elif node.text is None:
        out.append("/>")
    elif isinstance(node.text, bytes):
        out.append(">")
        out.append(_cdata(node.text.decode("utf-8", "replace")))
        out.append(f"</{node.name}>")
    else:
        text = node.text
        if node.name == "Type" and text == DEVINF_WBXML_TYPE:
            text = DEVINF_XML_TYPE  # a DevInf travels as XML here
        out.append(">")
        out.append(_escape(text))
        out.append(f"</{node.name}>")


def encode(root: Node) -> bytes:
    """The XML bytes of a SyncML message tree (or of a bare DevInf)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    if root.name == "SyncML":
        version = root.value("SyncHdr", "VerDTD") or "1.2"
        _write(root, out, SYNCML, syncml_namespace(version))
    else:
        _write(root, out, None, None)
    return "".join(out).encode("utf-8")


def element_size(node: Node) -> int:
    """Bytes ``node`` takes inside a SyncML XML document."""
    out: list[str] = []
    _write(node, out, SYNCML, None)
    return len("".join(out).encode("utf-8"))
