"""SyncML messages: a neutral element tree, and typed commands built from it.

Two levels, because they serve different needs:

- ``Node`` is what both codecs (XML and WBXML) read and write: element name,
  namespace (``syncml``, ``metinf`` or ``devinf``, which is also the WBXML code
  page), and either text, opaque bytes or children.  It is lossless, so a
  captured message re-encodes byte for byte.
- ``Message`` and the command classes are what a session works with: typed,
  with the few SyncML details that matter (Meta, Items, anchors, credentials).
  ``parse_message`` builds them from a tree, ``build_message`` goes back.

Nothing here knows about roles: a client and a server share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# -- the element tree -------------------------------------------------------------

SYNCML = "syncml"
METINF = "metinf"
DEVINF = "devinf"

# element names of the MetInf code page (none of them exists in the SyncML page)
METINF_NAMES = frozenset(
    {
        "Anchor",
        "EMI",
        "Format",
        "FreeID",
        "FreeMem",
        "Last",
        "Mark",
        "MaxMsgSize",
        "Mem",
        "MetInf",
        "Next",
        "NextNonce",
        "SharedMem",
        "Size",
        "Type",
        "Version",
        "MaxObjSize",
        "FieldLevel",
    }
)

NAMESPACE_URIS = {METINF: "syncml:metinf", DEVINF: "syncml:devinf"}


def infer_ns(name: str, parent_ns: str | None) -> str:
    """The namespace of an element written without one (many devices omit them)."""
    if parent_ns == DEVINF or name == "DevInf":
        return DEVINF
    if name in METINF_NAMES:
        return METINF
    return SYNCML


class Node:
    """One element: name, namespace, and text (str), opaque bytes, or children."""

    __slots__ = ("children", "name", "ns", "text")

    def __init__(
        self,
        name: str,
        text: str | bytes | None = None,
        children: list[Node] | None = None,
        ns: str | None = None,
    ) -> None:
        self.name = name
        self.text = text
        self.children: list[Node] = children if children is not None else []
        self.ns = ns or infer_ns(name, None)

    def __repr__(self) -> str:
        if self.children:
            return f"<{self.name} [{len(self.children)}]>"
        return f"<{self.name} {self.text!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return (
            self.name == other.name
            and self.ns == other.ns
            and self.text == other.text
            and self.children == other.children
        )

    __hash__ = None  # type: ignore[assignment]

    def add(self, name: str, text: str | bytes | None = None, ns: str | None = None) -> Node:
        """Append a child and return it."""
        child = Node(name, text, ns=ns or infer_ns(name, self.ns))
        self.children.append(child)
        return child

    def find(self, name: str) -> Node | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    def findall(self, name: str) -> list[Node]:
        return [c for c in self.children if c.name == name]

    def path(self, *names: str) -> Node | None:
        node: Node | None = self
        for name in names:
            if node is None:
                return None
            node = node.find(name)
        return node

    def value(self, *names: str) -> str | None:
        """Text of the descendant at ``names`` (stripped), or None."""
        node = self.path(*names)
        if node is None:
            return None
        return node.string().strip()

    def string(self) -> str:
        """The element's text as str (opaque bytes decoded as UTF-8)."""
        if isinstance(self.text, bytes):
            return self.text.decode("utf-8", "replace")
        return self.text or ""

    def walk(self) -> Iterator[Node]:
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


class DecodeError(ValueError):
    """A message that cannot be decoded (malformed, too big, too deep)."""


# -- status and alert codes ----------------------------------------------------------

OK = 200
ITEM_ADDED = 201
ACCEPTED_FOR_PROCESSING = 202
NO_CONTENT = 204
AUTH_ACCEPTED = 212
CHUNK_ACCEPTED = 213
OPERATION_CANCELLED = 214
ITEM_NOT_DELETED = 211
CONFLICT_RESOLVED_WITH_MERGE = 207
CONFLICT_CLIENT_WON = 208
CONFLICT_SERVER_WON = 209
BAD_REQUEST = 400
INVALID_CREDENTIALS = 401
FORBIDDEN = 403
NOT_FOUND = 404
COMMAND_NOT_ALLOWED = 405
OPTIONAL_FEATURE_NOT_SUPPORTED = 406
MISSING_CREDENTIALS = 407
INCOMPLETE_COMMAND = 412
REQUEST_ENTITY_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415
ALREADY_EXISTS = 418
DEVICE_FULL = 420
SIZE_MISMATCH = 424
COMMAND_FAILED = 500
SERVICE_UNAVAILABLE = 503
REFRESH_REQUIRED = 508
DATASTORE_FAILURE = 510
SERVER_FAILURE = 511
PROTOCOL_VERSION_NOT_SUPPORTED = 513
OPERATION_CANCELLED_ERR = 514

TWO_WAY = 200
SLOW_SYNC = 201
ONE_WAY_FROM_CLIENT = 202
REFRESH_FROM_CLIENT = 203
ONE_WAY_FROM_SERVER = 204
REFRESH_FROM_SERVER = 205
NEXT_MESSAGE = 222
RESUME = 225
SYNC_ALERTS = frozenset(range(200, 206))
SERVER_ALERTED = {206: 200, 207: 201, 208: 202, 209: 203, 210: 204}


def is_success(code: int) -> bool:
    return 200 <= code < 300


# -- typed commands ------------------------------------------------------------------


@dataclass
class Anchor:
    last: str | None = None
    next: str | None = None


@dataclass
class Meta:
    """The MetInf values SyncML uses (other elements are kept in ``extra``)."""

    type: str | None = None
    format: str | None = None
    size: int | None = None
    max_msg_size: int | None = None
    max_obj_size: int | None = None
    anchor: Anchor | None = None
    next_nonce: str | None = None
    version: str | None = None
    mark: str | None = None
    extra: list[Node] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            v is not None
            for v in (
                self.type,
                self.format,
                self.size,
                self.max_msg_size,
                self.max_obj_size,
                self.anchor,
                self.next_nonce,
                self.version,
                self.mark,
            )
        ) or bool(self.extra)


@dataclass
class Item:
    target: str | None = None
    source: str | None = None
    target_name: str | None = None
    source_name: str | None = None
    source_parent: str | None = None
    target_parent: str | None = None
    meta: Meta | None = None
    data: bytes | None = None  # text or opaque content
    data_node: Node | None = None  # structured content (a DevInf, an Anchor)
    more_data: bool = False


@dataclass
class Cred:
    type: str  # syncml:auth-basic | syncml:auth-md5
    format: str | None
    data: str


@dataclass
class Chal:
    type: str
    format: str | None = "b64"
    next_nonce: str | None = None


@dataclass
class Header:
    ver_dtd: str
    ver_proto: str
    session_id: str
    msg_id: int
    target: str
    source: str
    target_name: str | None = None
    source_name: str | None = None
    resp_uri: str | None = None
    cred: Cred | None = None
    max_msg_size: int | None = None
    max_obj_size: int | None = None
    no_resp: bool = False
    meta_extra: list[Node] = field(default_factory=list)


@dataclass
class Command:
    """Base of body commands: every command has a CmdID."""

    cmd_id: int


@dataclass
class Status(Command):
    msg_ref: int
    cmd_ref: int
    cmd: str
    code: int
    target_refs: list[str] = field(default_factory=list)
    source_refs: list[str] = field(default_factory=list)
    chal: Chal | None = None
    items: list[Item] = field(default_factory=list)


@dataclass
class Alert(Command):
    code: int
    items: list[Item] = field(default_factory=list)
    no_resp: bool = False
    correlator: str | None = None
    cred: Cred | None = None


@dataclass
class Change(Command):
    """Add, Replace, Delete (also Copy and Move, which servers rarely get)."""

    kind: str
    items: list[Item] = field(default_factory=list)
    meta: Meta | None = None
    no_resp: bool = False
    archive: bool = False
    soft_delete: bool = False
    cred: Cred | None = None


@dataclass
class Sync(Command):
    target: str | None = None
    source: str | None = None
    meta: Meta | None = None
    number_of_changes: int | None = None
    changes: list[Change | Unknown] = field(default_factory=list)
    no_resp: bool = False
    cred: Cred | None = None


@dataclass
class Put(Command):
    items: list[Item] = field(default_factory=list)
    meta: Meta | None = None
    no_resp: bool = False
    cred: Cred | None = None


@dataclass
class Get(Command):
    items: list[Item] = field(default_factory=list)
    meta: Meta | None = None
    no_resp: bool = False
    cred: Cred | None = None


@dataclass
class Results(Command):
    msg_ref: int | None
    cmd_ref: int
    items: list[Item] = field(default_factory=list)
    meta: Meta | None = None
    target_ref: str | None = None
    source_ref: str | None = None


@dataclass
class MapItem:
    target: str  # the server's id (GUID)
    source: str  # the client's id (LUID)


@dataclass
class Map(Command):
    target: str | None = None
    source: str | None = None
    items: list[MapItem] = field(default_factory=list)
    meta: Meta | None = None
    cred: Cred | None = None


@dataclass
class Unknown(Command):
    """A command we do not implement (Exec, Search, Atomic, Sequence, Copy...)."""

    name: str = ""
    node: Node | None = None


BodyCommand = Status | Alert | Sync | Put | Get | Results | Map | Change | Unknown


@dataclass
class Message:
    header: Header
    commands: list[BodyCommand] = field(default_factory=list)
    final: bool = False

    @property
    def version(self) -> str:
        return self.header.ver_dtd


# -- tree -> commands ------------------------------------------------------------------


class ProtocolError(ValueError):
    """A message that decodes but is not valid SyncML (missing SyncHdr, bad MsgID...)."""

    def __init__(self, message: str, status: int = BAD_REQUEST) -> None:
        self.status = status
        super().__init__(message)


def _int(node: Node | None, what: str, default: int | None = None) -> int:
    if node is None:
        if default is not None:
            return default
        raise ProtocolError(f"{what} is missing")
    text = node.string().strip()
    try:
        value = int(text)
    except ValueError:
        raise ProtocolError(f"{what} is not a number: {text[:40]!r}") from None
    if value < 0 or value > 2**31:
        raise ProtocolError(f"{what} out of range: {value}")
    return value


def _opt_int(node: Node | None) -> int | None:
    if node is None:
        return None
    try:
        return int(node.string().strip())
    except ValueError:
        return None


def parse_meta(node: Node | None) -> Meta | None:
    if node is None:
        return None
    meta = Meta()
    children = list(node.children)
    # a MetInf wrapper (some 1.0 devices) is flattened
    for c in list(children):
        if c.name == "MetInf":
            children.remove(c)
            children.extend(c.children)
    for c in children:
        if c.name == "Type":
            meta.type = c.string().strip()
        elif c.name == "Format":
            meta.format = c.string().strip()
        elif c.name == "Size":
            meta.size = _opt_int(c)
        elif c.name == "MaxMsgSize":
            meta.max_msg_size = _opt_int(c)
        elif c.name == "MaxObjSize":
            meta.max_obj_size = _opt_int(c)
        elif c.name == "Anchor":
            last = c.find("Last")
            nxt = c.find("Next")
            meta.anchor = Anchor(
                last.string().strip() if last is not None else None,
                nxt.string().strip() if nxt is not None else None,
            )
        elif c.name == "NextNonce":
            meta.next_nonce = c.string().strip()
        elif c.name == "Version":
            meta.version = c.string().strip()
        elif c.name == "Mark":
            meta.mark = c.string().strip()
        else:
            meta.extra.append(c)
    return meta


def _loc(node: Node | None) -> tuple[str | None, str | None]:
    if node is None:
        return None, None
    return node.value("LocURI"), node.value("LocName")


def parse_item(node: Node) -> Item:
    item = Item()
    item.target, item.target_name = _loc(node.find("Target"))
    item.source, item.source_name = _loc(node.find("Source"))
    item.source_parent = node.value("SourceParent", "LocURI")
    item.target_parent = node.value("TargetParent", "LocURI")
    item.meta = parse_meta(node.find("Meta"))
    data = node.find("Data")
    if data is not None:
        if data.children:
            item.data_node = data.children[0]
        elif isinstance(data.text, bytes):
            item.data = data.text
        else:
            item.data = (data.text or "").encode("utf-8")
    item.more_data = node.find("MoreData") is not None
    return item


def _cred(node: Node | None) -> Cred | None:
    if node is None:
        return None
    meta = parse_meta(node.find("Meta")) or Meta()
    return Cred(
        type=meta.type or "syncml:auth-basic",
        format=meta.format,
        data=node.value("Data") or "",
    )


def parse_header(node: Node) -> Header:
    meta = parse_meta(node.find("Meta")) or Meta()
    target, target_name = _loc(node.find("Target"))
    source, source_name = _loc(node.find("Source"))
    ver_dtd = node.value("VerDTD")
    ver_proto = node.value("VerProto")
    if not ver_dtd or not ver_proto:
        raise ProtocolError("SyncHdr lacks VerDTD or VerProto")
    session_id = node.value("SessionID")
    if session_id is None:
        raise ProtocolError("SyncHdr lacks SessionID")
    if not source:
        raise ProtocolError("SyncHdr lacks Source/LocURI")
    return Header(
        ver_dtd=ver_dtd,
        ver_proto=ver_proto,
        session_id=session_id,
        msg_id=_int(node.find("MsgID"), "MsgID"),
        target=target or "",
        source=source,
        target_name=target_name,
        source_name=source_name,
        resp_uri=node.value("RespURI"),
        cred=_cred(node.find("Cred")),
        max_msg_size=meta.max_msg_size,
        max_obj_size=meta.max_obj_size,
        no_resp=node.find("NoResp") is not None,
        meta_extra=meta.extra,
    )


CHANGE_NAMES = ("Add", "Replace", "Delete", "Copy", "Move")


def parse_command(node: Node) -> BodyCommand:
    name = node.name
    cmd_id = _int(node.find("CmdID"), f"{name}/CmdID")
    items = [parse_item(i) for i in node.findall("Item")]
    meta = parse_meta(node.find("Meta"))
    no_resp = node.find("NoResp") is not None
    cred = _cred(node.find("Cred"))
    if name == "Status":
        chal_node = node.find("Chal")
        chal = None
        if chal_node is not None:
            m = parse_meta(chal_node.find("Meta")) or Meta()
            chal = Chal(m.type or "", m.format, m.next_nonce)
        return Status(
            cmd_id=cmd_id,
            msg_ref=_int(node.find("MsgRef"), "Status/MsgRef", default=0),
            cmd_ref=_int(node.find("CmdRef"), "Status/CmdRef"),
            cmd=node.value("Cmd") or "",
            code=_int(node.find("Data"), "Status/Data"),
            target_refs=[n.string().strip() for n in node.findall("TargetRef")],
            source_refs=[n.string().strip() for n in node.findall("SourceRef")],
            chal=chal,
            items=items,
        )
    if name == "Alert":
        return Alert(
            cmd_id=cmd_id,
            code=_int(node.find("Data"), "Alert/Data"),
            items=items,
            no_resp=no_resp,
            correlator=node.value("Correlator"),
            cred=cred,
        )
    if name in CHANGE_NAMES:
        return Change(
            cmd_id=cmd_id,
            kind=name,
            items=items,
            meta=meta,
            no_resp=no_resp,
            archive=node.find("Archive") is not None,
            soft_delete=node.find("SftDel") is not None,
            cred=cred,
        )
    if name == "Sync":
        changes: list[Change | Unknown] = []
        for c in node.children:
            if c.name in CHANGE_NAMES:
                cmd = parse_command(c)
                assert isinstance(cmd, Change)
                changes.append(cmd)
            elif c.name in ("Atomic", "Sequence"):
                changes.append(
                    Unknown(cmd_id=_int(c.find("CmdID"), f"{c.name}/CmdID"), name=c.name, node=c)
                )
        return Sync(
            cmd_id=cmd_id,
            target=node.value("Target", "LocURI"),
            source=node.value("Source", "LocURI"),
            meta=meta,
            number_of_changes=_opt_int(node.find("NumberOfChanges")),
            changes=changes,
            no_resp=no_resp,
            cred=cred,
        )
    if name == "Put":
        return Put(cmd_id=cmd_id, items=items, meta=meta, no_resp=no_resp, cred=cred)
    if name == "Get":
        return Get(cmd_id=cmd_id, items=items, meta=meta, no_resp=no_resp, cred=cred)
    if name == "Results":
        return Results(
            cmd_id=cmd_id,
            msg_ref=_opt_int(node.find("MsgRef")),
            cmd_ref=_int(node.find("CmdRef"), "Results/CmdRef"),
            items=items,
            meta=meta,
            target_ref=node.value("TargetRef"),
            source_ref=node.value("SourceRef"),
        )
    if name == "Map":
        map_items = []
        for mi in node.findall("MapItem"):
            t = mi.value("Target", "LocURI")
            s = mi.value("Source", "LocURI")
            if t is None or s is None:
                raise ProtocolError("MapItem lacks Target or Source")
            map_items.append(MapItem(t, s))
        return Map(
            cmd_id=cmd_id,
            target=node.value("Target", "LocURI"),
            source=node.value("Source", "LocURI"),
            items=map_items,
            meta=meta,
            cred=cred,
        )
    return Unknown(cmd_id=cmd_id, name=name, node=node)


def parse_message(root: Node) -> Message:
    """The typed message of a decoded tree; ProtocolError when it is not SyncML."""
    if root.name != "SyncML":
        raise ProtocolError(f"root element is {root.name[:40]!r}, not SyncML")
    hdr = root.find("SyncHdr")
    body = root.find("SyncBody")
    if hdr is None or body is None:
        raise ProtocolError("SyncHdr or SyncBody missing")
    msg = Message(parse_header(hdr))
    for c in body.children:
        if c.name == "Final":
            msg.final = True
            continue
        msg.commands.append(parse_command(c))
    return msg


# -- commands -> tree ------------------------------------------------------------------


def _text(parent: Node, name: str, value: str | int | bytes | None) -> None:
    if value is None:
        return
    parent.add(name, value if isinstance(value, str | bytes) else str(value))


def build_meta(meta: Meta | None, parent: Node, name: str = "Meta") -> None:
    if not meta:
        return
    assert meta is not None
    node = parent.add(name)
    _text(node, "Format", meta.format)
    _text(node, "Type", meta.type)
    _text(node, "Mark", meta.mark)
    _text(node, "Size", meta.size)
    if meta.anchor is not None:
        anchor = node.add("Anchor")
        _text(anchor, "Last", meta.anchor.last)
        _text(anchor, "Next", meta.anchor.next)
    _text(node, "Version", meta.version)
    _text(node, "NextNonce", meta.next_nonce)
    _text(node, "MaxMsgSize", meta.max_msg_size)
    _text(node, "MaxObjSize", meta.max_obj_size)
    node.children.extend(meta.extra)


def _build_loc(parent: Node, name: str, uri: str | None, locname: str | None = None) -> None:
    if uri is None:
        return
    node = parent.add(name)
    node.add("LocURI", uri)
    _text(node, "LocName", locname)


def build_item(item: Item, parent: Node) -> None:
    node = parent.add("Item")
    _build_loc(node, "Target", item.target, item.target_name)
    _build_loc(node, "Source", item.source, item.source_name)
    _build_loc(node, "SourceParent", item.source_parent)
    _build_loc(node, "TargetParent", item.target_parent)
    build_meta(item.meta, node)
    if item.data_node is not None:
        node.add("Data").children.append(item.data_node)
    elif item.data is not None:
        node.add("Data", item.data)
    if item.more_data:
        node.add("MoreData")


def _build_cred(parent: Node, cred: Cred | None) -> None:
    if cred is not None:
        node = parent.add("Cred")
        build_meta(Meta(type=cred.type, format=cred.format), node)
        node.add("Data", cred.data)


def build_header(h: Header) -> Node:
    node = Node("SyncHdr")
    node.add("VerDTD", h.ver_dtd)
    node.add("VerProto", h.ver_proto)
    node.add("SessionID", h.session_id)
    node.add("MsgID", str(h.msg_id))
    _build_loc(node, "Target", h.target, h.target_name)
    _build_loc(node, "Source", h.source, h.source_name)
    _text(node, "RespURI", h.resp_uri)
    if h.no_resp:
        node.add("NoResp")
    _build_cred(node, h.cred)
    build_meta(
        Meta(max_msg_size=h.max_msg_size, max_obj_size=h.max_obj_size, extra=h.meta_extra), node
    )
    return node


def build_command(cmd: BodyCommand) -> Node:
    if isinstance(cmd, Unknown):
        assert cmd.node is not None
        return cmd.node
    name = cmd.kind if isinstance(cmd, Change) else type(cmd).__name__
    node = Node(name)
    node.add("CmdID", str(cmd.cmd_id))
    if isinstance(cmd, Status):
        node.add("MsgRef", str(cmd.msg_ref))
        node.add("CmdRef", str(cmd.cmd_ref))
        node.add("Cmd", cmd.cmd)
        for ref in cmd.target_refs:
            node.add("TargetRef", ref)
        for ref in cmd.source_refs:
            node.add("SourceRef", ref)
        if cmd.chal is not None:
            chal = node.add("Chal")
            build_meta(
                Meta(type=cmd.chal.type, format=cmd.chal.format, next_nonce=cmd.chal.next_nonce),
                chal,
            )
        node.add("Data", str(cmd.code))
        for item in cmd.items:
            build_item(item, node)
    elif isinstance(cmd, Alert):
        if cmd.no_resp:
            node.add("NoResp")
        _build_cred(node, cmd.cred)
        node.add("Data", str(cmd.code))
        _text(node, "Correlator", cmd.correlator)
        for item in cmd.items:
            build_item(item, node)
    elif isinstance(cmd, Change):
        if cmd.no_resp:
            node.add("NoResp")
        if cmd.archive:
            node.add("Archive")
        if cmd.soft_delete:
            node.add("SftDel")
        _build_cred(node, cmd.cred)
        build_meta(cmd.meta, node)
        for item in cmd.items:
            build_item(item, node)
    elif isinstance(cmd, Sync):
        if cmd.no_resp:
            node.add("NoResp")
        _build_cred(node, cmd.cred)
        _build_loc(node, "Target", cmd.target)
        _build_loc(node, "Source", cmd.source)
        build_meta(cmd.meta, node)
        _text(node, "NumberOfChanges", cmd.number_of_changes)
        for change in cmd.changes:
            node.children.append(build_command(change))
    elif isinstance(cmd, Put | Get):
        if cmd.no_resp:
            node.add("NoResp")
        _build_cred(node, cmd.cred)
        build_meta(cmd.meta, node)
        for item in cmd.items:
            build_item(item, node)
    elif isinstance(cmd, Results):
        _text(node, "MsgRef", cmd.msg_ref)
        node.add("CmdRef", str(cmd.cmd_ref))
        build_meta(cmd.meta, node)
        _text(node, "TargetRef", cmd.target_ref)
        _text(node, "SourceRef", cmd.source_ref)
        for item in cmd.items:
            build_item(item, node)
    elif isinstance(cmd, Map):
        _build_loc(node, "Target", cmd.target)
        _build_loc(node, "Source", cmd.source)
        _build_cred(node, cmd.cred)
        build_meta(cmd.meta, node)
        for mi in cmd.items:
            m = node.add("MapItem")
            _build_loc(m, "Target", mi.target)
            _build_loc(m, "Source", mi.source)
    return node


def syncml_namespace(ver_dtd: str) -> str:
    return f"SYNCML:SYNCML{ver_dtd}"


def build_message(msg: Message) -> Node:
    root = Node("SyncML")
    root.children.append(build_header(msg.header))
    body = root.add("SyncBody")
    for cmd in msg.commands:
        body.children.append(build_command(cmd))
    if msg.final:
        body.add("Final")
    return root
