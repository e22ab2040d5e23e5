"""WBXML (WAP Binary XML 1.1-1.3) for SyncML, MetInf and DevInf.

A SyncML message in WBXML is a token stream: one byte per element start
(code page + tag number, with a "has content" bit), ``END`` per element end,
strings inline (``STR_I``) or from a string table (``STR_T``), and ``OPAQUE``
byte runs.  Item data travels as opaque bytes; a DevInf inside ``Data`` is a
whole nested WBXML document in an opaque run.  Token values are the ones of
the SyncML and DevInf representation specifications (the same as libwbxml's
tables, which the tests use as an independent check).

The decoder is iterative with hard limits (input size, depth, element count,
and decoded text), so a hostile message costs bounded time and memory.  The
text limit matters because of the string table: every ``STR_T`` (or
``LITERAL``) reference copies a table entry, so a 120 KB message of
references to one 60 KB entry would decode into gigabytes.  Each message gets
a ``Budget`` of decoded text proportional to its size (``Limits.expansion``
per input byte, never more than ``Limits.max_text``), drawn on *while*
decoding, before a copy is made; a nested DevInf document draws on the budget
of the message it travels in.
"""

from __future__ import annotations

from dataclasses import dataclass

from calsync.syncml.model import DEVINF, METINF, SYNCML, DecodeError, Node

# -- tables ---------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    """Tag names in token order, starting at token 0x05."""
    return text.split()


_SYNCML_TAGS = _names(
    "Add Alert Archive Atomic Chal Cmd CmdID CmdRef Copy Cred Data Delete Exec Final Get "
    "Item Lang LocName LocURI Map MapItem Meta MsgID MsgRef NoResp NoResults Put Replace "
    "RespURI Results Search Sequence SessionID SftDel Source SourceRef Status Sync SyncBody "
    "SyncHdr SyncML Target TargetRef Reserved VerDTD VerProto NumberOfChanges MoreData "
    "Field Filter Record FilterType SourceParent TargetParent Move Correlator"
)
_METINF_TAGS = _names(
    "Anchor EMI Format FreeID FreeMem Last Mark MaxMsgSize Mem MetInf Next NextNonce "
    "SharedMem Size Type Version MaxObjSize FieldLevel"
)
_DEVINF_TAGS = _names(
    "CTCap CTType DataStore DataType DevID DevInf DevTyp DisplayName DSMem Ext FwV HwV "
    "Man MaxGUIDSize MaxID MaxMem Mod OEM ParamName PropName Rx Rx-Pref SharedMem MaxSize "
    "SourceRef SwV SyncCap SyncType Tx Tx-Pref ValEnum VerCT VerDTD XNam XVal UTC "
    "SupportNumberOfChanges SupportLargeObjs Property PropParam MaxOccur NoTruncate - "
    "Filter-Rx FilterCap FilterKeyword FieldLevel SupportHierarchicalSync"
)

# (namespace, page) -> token -> name
_DECODE: dict[tuple[str, int], dict[int, str]] = {
    (SYNCML, 0): {i + 5: n for i, n in enumerate(_SYNCML_TAGS) if n != "Reserved"},
    (SYNCML, 1): {i + 5: n for i, n in enumerate(_METINF_TAGS)},
    (DEVINF, 0): {i + 5: n for i, n in enumerate(_DEVINF_TAGS) if n != "-"},
}
# namespace -> name -> (page, token)
_ENCODE: dict[str, dict[str, tuple[int, int]]] = {
    SYNCML: {n: (0, t) for t, n in _DECODE[(SYNCML, 0)].items()},
    METINF: {n: (1, t) for t, n in _DECODE[(SYNCML, 1)].items()},
    DEVINF: {n: (0, t) for t, n in _DECODE[(DEVINF, 0)].items()},
}
_ENCODE[DEVINF]["Size"] = _ENCODE[DEVINF]["MaxSize"]  # DevInf 1.0/1.1 name of 0x1C

# WBXML public identifiers
PUBLIC_IDS = {
    0x0FD1: ("SyncML", "1.0"),
    0x0FD2: ("DevInf", "1.0"),
    0x0FD3: ("SyncML", "1.1"),
    0x0FD4: ("DevInf", "1.1"),
    0x1201: ("SyncML", "1.2"),
    0x1202: ("MetInf", "1.2"),
    0x1203: ("DevInf", "1.2"),
}
PUBLIC_ID_OF = {v: k for k, v in PUBLIC_IDS.items()}


def public_text(doc: str, version: str) -> str:
    return f"-//SYNCML//DTD {doc} {version}//EN"


# global tokens
SWITCH_PAGE = 0x00
END = 0x01
ENTITY = 0x02
STR_I = 0x03
LITERAL = 0x04
STR_T = 0x83
OPAQUE = 0xC3
_LITERALS = (0x04, 0x44, 0x84, 0xC4)
_UNSUPPORTED = {0x40, 0x41, 0x42, 0x43, 0x80, 0x81, 0x82, 0xC0, 0xC1, 0xC2}

DEVINF_XML_TYPE = "application/vnd.syncml-devinf+xml"
DEVINF_WBXML_TYPE = "application/vnd.syncml-devinf+wbxml"

CHARSETS = {106: "utf-8", 4: "latin-1", 3: "ascii", 1015: "utf-16", 0: "utf-8"}
UTF8 = 106


@dataclass
class Limits:
    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 48
    max_elements: int = 500_000
    # decoded text (strings, opaque data, tag names) per input byte, and in all: only
    # string-table references make a WBXML message decode into more than its size
    expansion: int = 4
    max_text: int = 32 * 1024 * 1024


DEFAULT_LIMITS = Limits()


class Budget:
    """What one message may still decode into: text bytes and elements.

    Spent while decoding, before anything is copied; nested documents (a DevInf
    in an opaque run) spend from the budget of the message around them.
    """

    __slots__ = ("elements", "limit", "text")

    def __init__(self, limits: Limits, size: int) -> None:
        self.limit = min(limits.max_text, limits.expansion * size + 4096)
        self.text = self.limit
        self.elements = limits.max_elements

    def spend_text(self, n: int) -> None:
        self.text -= n
        if self.text < 0:
            raise DecodeError(
                f"message decodes into more than {self.limit} bytes of text "
                "(string-table references?)"
            )

    def spend_element(self) -> None:
        self.elements -= 1
        if self.elements < 0:
            raise DecodeError("too many elements")


@dataclass
class Document:
    """A decoded WBXML document: the tree plus its header facts."""

    root: Node
    version: int  # 1 = WBXML 1.1, 2 = 1.2, 3 = 1.3
    doc_type: str  # SyncML | DevInf
    doc_version: str  # 1.0 | 1.1 | 1.2
    public_id: int  # 0 when given as a string
    charset: int


# -- decoding -----------------------------------------------------------------------


def _mb_uint(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    for n in range(5):
        if i >= len(data):
            raise DecodeError("truncated multi-byte integer")
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, i
        if n == 4:
            break
    raise DecodeError("multi-byte integer longer than 32 bits")


def _table_string(table: bytes, index: int, budget: Budget | None = None) -> bytes:
    """The string-table entry at ``index`` (its length spent from ``budget`` first)."""
    if index >= len(table):
        raise DecodeError(f"string table reference {index} beyond the table")
    end = table.find(b"\0", index)
    if end < 0:
        end = len(table)
    if budget is not None:
        budget.spend_text(end - index)
    return table[index:end]


def looks_like_devinf(data: bytes) -> bool:
    """Does an opaque run hold a nested WBXML DevInf document?"""
    if len(data) < 5 or data[0] not in (1, 2, 3):
        return False
    try:
        pid, i = _mb_uint(data, 1)
        if pid in PUBLIC_IDS:
            return PUBLIC_IDS[pid][0] == "DevInf"
        if pid == 0:
            index, i = _mb_uint(data, i)
            _, i = _mb_uint(data, i)  # charset
            length, i = _mb_uint(data, i)
            return b"DevInf" in _table_string(data[i : i + length], index)
    except DecodeError:
        return False
    return False


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS, _nested: bool = False) -> Document:
    """Decode a WBXML SyncML or DevInf document; DecodeError when it is not one."""
    return _decode(data, limits, Budget(limits, len(data)), _nested)


def _decode(data: bytes, limits: Limits, budget: Budget, nested: bool) -> Document:
    if len(data) > limits.max_bytes:
        raise DecodeError(f"message of {len(data)} bytes is larger than {limits.max_bytes}")
    if len(data) < 4:
        raise DecodeError("too short for WBXML")
    version = data[0]
    if version not in (1, 2, 3):
        raise DecodeError(f"unknown WBXML version byte 0x{version:02x}")
    pid, i = _mb_uint(data, 1)
    pid_index = None
    if pid == 0:
        pid_index, i = _mb_uint(data, i)
    charset, i = _mb_uint(data, i)
    encoding = CHARSETS.get(charset)
    if encoding is None:
        raise DecodeError(f"unsupported charset MIBenum {charset}")
    length, i = _mb_uint(data, i)
    if i + length > len(data):
        raise DecodeError("string table runs past the end")
    table = data[i : i + length]
    i += length
    doc_type, doc_version = PUBLIC_IDS.get(pid, ("", ""))
    if pid_index is not None:
        text = _table_string(table, pid_index).decode("latin-1")
        for (dt, dv), _ in PUBLIC_ID_OF.items():
            if text.lower() == public_text(dt, dv).lower():
                doc_type, doc_version = dt, dv
    if not doc_type:  # unknown id: look at the root tag
        first = data[i] if i < len(data) else 0
        doc_type = "DevInf" if first & 0x3F == 0x0A else "SyncML"
    ns = DEVINF if doc_type == "DevInf" else SYNCML
    if doc_type == "MetInf":
        raise DecodeError("a bare MetInf document is not a SyncML message")
    root = _body(data, i, table, ns, encoding, limits, budget, doc_version, nested)
    return Document(root, version, doc_type, doc_version, pid, charset)


def _body(
    data: bytes,
    i: int,
    table: bytes,
    ns: str,
    encoding: str,
    limits: Limits,
    budget: Budget,
    doc_version: str,
    nested: bool,
) -> Node:
    page = 0
    stack: list[Node] = []
    parts: list[list[str | bytes]] = []  # text pieces per open element
    root: Node | None = None
    n = len(data)
    size_name = "MaxSize" if doc_version == "1.2" else "Size"
    while i < n:
        tok = data[i]
        i += 1
        if tok == SWITCH_PAGE:
            if i >= n:
                raise DecodeError("truncated SWITCH_PAGE")
            page = data[i]
            i += 1
            continue
        if tok == END:
            if not stack:
                raise DecodeError("END without an open element")
            node = stack.pop()
            _close(node, parts.pop(), encoding, limits, budget, nested)
            if not stack:
                root = node
                break
            continue
        if tok == STR_I:
            end = data.find(b"\0", i)
            if end < 0:
                raise DecodeError("unterminated inline string")
            if not stack:
                raise DecodeError("text outside the root element")
            budget.spend_text(end - i)
            parts[-1].append(data[i:end].decode(encoding, "replace"))
            i = end + 1
            continue
        if tok == STR_T:
            index, i = _mb_uint(data, i)
            if not stack:
                raise DecodeError("text outside the root element")
            parts[-1].append(_table_string(table, index, budget).decode(encoding, "replace"))
            continue
        if tok == OPAQUE:
            length, i = _mb_uint(data, i)
            if i + length > n:
                raise DecodeError("opaque data runs past the end")
            if not stack:
                raise DecodeError("opaque data outside the root element")
            budget.spend_text(length)
            parts[-1].append(data[i : i + length])
            i += length
            continue
        if tok == ENTITY:
            code, i = _mb_uint(data, i)
            if not stack:
                raise DecodeError("entity outside the root element")
            budget.spend_text(1)
            try:
                parts[-1].append(chr(code))
            except ValueError:
                raise DecodeError(f"bad character entity {code}") from None
            continue
        if tok in _UNSUPPORTED:
            raise DecodeError(f"unsupported WBXML token 0x{tok:02x}")
        # an element
        if tok & 0x80:
            raise DecodeError("attributes are not used in SyncML")
        if tok & 0x3F == LITERAL:
            index, i = _mb_uint(data, i)
            name = _table_string(table, index, budget).decode(encoding, "replace")
            node_ns = stack[-1].ns if stack else ns
        else:
            key = (ns, page) if ns == SYNCML else (DEVINF, page)
            names = _DECODE.get(key)
            tag = tok & 0x3F
            found = names.get(tag) if names else None
            if found is None:
                raise DecodeError(f"unknown tag 0x{tag:02x} in code page {page}")
            name = size_name if (ns == DEVINF and tag == 0x1C) else found
            node_ns = METINF if (ns == SYNCML and page == 1) else ns
        budget.spend_element()
        node = Node(name, ns=node_ns)
        if stack:
            stack[-1].children.append(node)
        elif root is not None:
            raise DecodeError("more than one root element")
        if tok & 0x40:
            if len(stack) >= limits.max_depth:
                raise DecodeError(f"elements nested deeper than {limits.max_depth}")
            stack.append(node)
            parts.append([])
        elif not stack:
            root = node
            break
    if stack or root is None:
        raise DecodeError("document ends inside an element")
    if data[i:].strip(b"\0"):
        raise DecodeError("data after the root element")
    return root


def _close(
    node: Node,
    pieces: list[str | bytes],
    encoding: str,
    limits: Limits,
    budget: Budget,
    nested: bool,
) -> None:
    if not pieces:
        return
    if len(pieces) == 1:
        piece = pieces[0]
    elif all(isinstance(p, str) for p in pieces):
        piece = "".join(p for p in pieces if isinstance(p, str))
    else:
        piece = b"".join(p if isinstance(p, bytes) else p.encode(encoding) for p in pieces)
    if node.children:
        if isinstance(piece, str) and not piece.strip():
            return  # whitespace between child elements
        raise DecodeError(f"{node.name} mixes elements and text")
    if (
        isinstance(piece, bytes)
        and node.name == "Data"
        and node.ns == SYNCML
        and not nested
        and looks_like_devinf(piece)
    ):
        node.children.append(_decode(piece, limits, budget, nested=True).root)
        return
    node.text = piece


# -- encoding -----------------------------------------------------------------------


class EncodeError(ValueError):
    pass


def mb_bytes(value: int) -> bytes:
    """A WBXML multi-byte integer."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


class _Encoder:
    def __init__(self, doc_ns: str, doc_version: str) -> None:
        self.doc_ns = doc_ns
        self.doc_version = doc_version
        self.out = bytearray()
        self.page = 0
        self.table = bytearray()
        self.literals: dict[str, int] = {}

    def literal(self, name: str) -> int:
        if name not in self.literals:
            self.literals[name] = len(self.table)
            self.table += name.encode("utf-8") + b"\0"
        return self.literals[name]

    def element(self, node: Node) -> None:
        out = self.out
        ns = DEVINF if self.doc_ns == DEVINF else (METINF if node.ns == METINF else SYNCML)
        code = _ENCODE[ns].get(node.name)
        has_content = bool(node.children) or node.text is not None
        if code is None:
            out.append(LITERAL | (0x40 if has_content else 0))
            out += mb_bytes(self.literal(node.name))
        else:
            page, token = code
            if page != self.page:
                out.append(SWITCH_PAGE)
                out.append(page)
                self.page = page
            out.append(token | (0x40 if has_content else 0))
        if not has_content:
            return
        if node.children:
            if node.name == "Data" and self.doc_ns == SYNCML and node.children[0].ns == DEVINF:
                nested = encode_devinf(node.children[0])
                out.append(OPAQUE)
                out += mb_bytes(len(nested))
                out += nested
            else:
                for child in node.children:
                    self.element(child)
        elif isinstance(node.text, bytes):
            out.append(OPAQUE)
            out += mb_bytes(len(node.text))
            out += node.text
        else:
            assert node.text is not None
            text = node.text
            if node.name == "Type" and text == DEVINF_XML_TYPE:
                text = DEVINF_WBXML_TYPE  # a DevInf travels as nested WBXML here
            raw = text.encode("utf-8")
            if b"\0" in raw:
                out.append(OPAQUE)
                out += mb_bytes(len(raw))
                out += raw
            else:
                out.append(STR_I)
                out += raw
                out.append(0)
        out.append(END)


def _document(root: Node, doc: str, doc_version: str, version: int = 2) -> bytes:
    enc = _Encoder(DEVINF if doc == "DevInf" else SYNCML, doc_version)
    head = bytearray([version])
    pid = PUBLIC_ID_OF.get((doc, doc_version))
    if pid is not None:
        head += mb_bytes(pid)
    else:  # no binary id assigned: the public id text goes first in the string table
        enc.table += public_text(doc, doc_version).encode("latin-1") + b"\0"
        head += b"\0\0"
    enc.element(root)
    head += mb_bytes(UTF8)
    head += mb_bytes(len(enc.table))
    head += enc.table
    return bytes(head) + bytes(enc.out)


def encode(root: Node, doc_version: str | None = None, version: int = 2) -> bytes:
    """Encode a SyncML message tree (DevInf inside Data becomes a nested document)."""
    if root.name == "DevInf":
        return encode_devinf(root, version=version)
    dv = doc_version or root.value("SyncHdr", "VerDTD") or "1.2"
    if dv not in ("1.0", "1.1", "1.2"):
        dv = "1.2"
    return _document(root, "SyncML", dv, version)


def encode_devinf(root: Node, version: int = 2) -> bytes:
    dv = root.value("VerDTD") or "1.2"
    if dv not in ("1.0", "1.1", "1.2"):
        dv = "1.2"
    return _document(root, "DevInf", dv, version)


def decode_tree(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Node:
    return decode(data, limits).root


def element_size(node: Node) -> int:
    """Bytes ``node`` takes inside a SyncML document (+4 for code page switches)."""
    enc = _Encoder(SYNCML, "1.2")
    enc.element(node)
    return len(enc.out) + 4
