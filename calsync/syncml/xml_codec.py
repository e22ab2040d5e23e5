"""SyncML as XML: a safe parser and a plain writer.

Parsing goes through ``defusedxml`` (expat): entity declarations are refused
(no billion laughs, no external entities), DTDs are never fetched, and the
input size, nesting depth, element count and decoded text are bounded while
the parser reads: it builds our ``Node`` tree directly (no ElementTree first),
and the text budget is the WBXML decoder's (``wbxml.Budget``; without entities
XML text cannot outgrow its message, but the limit holds for both encodings
alike).  Devices write namespaces in every style (none at all, lower case, per
element); elements are recognised by local name and their namespace is
inferred where missing.

The writer emits what SyncEvolution's server emits: no DOCTYPE, the SyncML
namespace on the root, ``xmlns="syncml:metinf"`` on MetInf elements, and item
data in CDATA sections.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

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
from calsync.syncml.wbxml import (
    DEFAULT_LIMITS,
    DEVINF_WBXML_TYPE,
    DEVINF_XML_TYPE,
    Budget,
    Limits,
)

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
    builder = _Builder(limits, Budget(limits, len(data)))
    parser = DefusedXMLParser(target=builder, forbid_dtd=False, forbid_entities=True)
    try:
        parser.feed(data)
        parser.close()
    except DefusedXmlException as e:
        raise DecodeError(f"refused XML construct: {type(e).__name__}") from None
    except ParseError as e:
        raise DecodeError(f"malformed XML: {e}") from None
    except (ValueError, UnicodeError, LookupError) as e:  # LookupError: unknown encoding
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(f"undecodable XML: {e}") from None
    if builder.root is None:
        raise DecodeError("no root element")
    return builder.root


class _Builder:
    """The parser's target: our ``Node`` tree built as expat reads, so the limits
    hold while parsing (no ElementTree is built first).  Comments and processing
    instructions are dropped (the target has no handlers for them)."""

    def __init__(self, limits: Limits, budget: Budget) -> None:
        self.limits = limits
        self.budget = budget
        self.stack: list[Node] = []
        self.parts: list[list[str]] = []  # text pieces per open element
        self.root: Node | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if len(self.stack) >= self.limits.max_depth:
            raise DecodeError(f"elements nested deeper than {self.limits.max_depth}")
        self.budget.spend_element()
        parent = self.stack[-1] if self.stack else None
        name, ns = _ns_of(tag, parent.ns if parent else None)
        node = Node(name, ns=ns)
        if parent is not None:
            parent.children.append(node)
        else:
            self.root = node
        self.stack.append(node)
        self.parts.append([])

    def data(self, text: str) -> None:
        if self.stack:  # whitespace around the root element is not ours
            self.budget.spend_text(len(text))
            self.parts[-1].append(text)

    def end(self, tag: str) -> None:
        node = self.stack.pop()
        pieces = self.parts.pop()
        if not pieces:
            return
        text = pieces[0] if len(pieces) == 1 else "".join(pieces)
        if node.children:
            if text.strip():
                raise DecodeError(f"{node.name} mixes elements and text")
        else:
            node.text = text

    def close(self) -> None:
        return None


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
