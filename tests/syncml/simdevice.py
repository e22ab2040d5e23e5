"""A simulated phone for failure tests: real session + real backend, no HTTP.

It holds items by LUID, keeps its own anchors and change log like a SyncML
client, and can misbehave on request: reject some Adds, lose our package 4,
die before sending its Map, forget its anchors, drop UIDs.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from calsync.syncml.model import (
    Alert,
    Change,
    Item,
    Map,
    MapItem,
    Message,
    Meta,
    Status,
    Sync,
)
from calsync.syncml.session import ServerConfig, ServerSession, drive
from tests.syncml.scripted import URL, Device, devinf_put, parse

_luids = itertools.count(1000)


@dataclass
class SessionLog:
    alert_status: int = 0
    our_alert: int = 0
    received: list[tuple[str, str]] = field(default_factory=list)  # (op, luid or guid)
    sync_status: int = 0
    item_status: dict[str, int] = field(default_factory=dict)  # our statuses of its changes
    finished: bool = False


class SimPhone:
    def __init__(
        self,
        cfg: ServerConfig,
        backend: Any,
        name: str = "sim-1",
        *,
        encoding: str = "wbxml",
        datastore: str = "calendar",
        content_type: str = "text/calendar",
    ) -> None:
        self.cfg = cfg
        self.backend = backend
        self.dev = Device(name, encoding=encoding)
        self.datastore = datastore
        self.content_type = content_type  # what it prefers (DevInf) and sends
        self.items: dict[str, bytes] = {}
        self.changed: set[str] = set()  # LUIDs added/replaced since the last good sync
        self.deleted: set[str] = set()
        self.soft: set[str] = set()
        self.anchor: str | None = None
        self.counter = itertools.count(1)
        self.pending_maps: list[MapItem] = []
        # misbehaviour switches
        self.reject: set[str] = set()  # UIDs whose Add we answer with 500
        self.strip_uids = False

    # -- the user's edits -------------------------------------------------------------

    def add(self, data: bytes) -> str:
        luid = str(next(_luids))
        self.items[luid] = data
        self.changed.add(luid)
        return luid

    def edit(self, luid: str, data: bytes) -> None:
        self.items[luid] = data
        self.changed.add(luid)

    def delete(self, luid: str, *, soft: bool = False) -> None:
        del self.items[luid]
        self.changed.discard(luid)
        (self.soft if soft else self.deleted).add(luid)

    def find(self, text: str) -> list[str]:
        return [luid for luid, d in self.items.items() if text.encode() in d]

    def uids(self) -> list[str]:
        out = []
        for d in self.items.values():
            m = re.search(rb"\nUID:([^\r\n]*)", d)
            out.append(m.group(1).decode() if m else "")
        return sorted(out)

    # -- a session ------------------------------------------------------------------------

    def _first(self, token: str, data: bytes) -> tuple[Any, Message]:
        """A new session and the answer to its first message (``_send`` the others)."""
        session = ServerSession(self.cfg, url=URL, token=token, now=0.0)
        return session, parse(
            drive(session.receive(data, self.dev.content_type, 0.0), self.backend)
        )

    def _send(self, session: Any, commands: list[Any], final: bool = True) -> Message:
        data = self.dev.encode(self.dev.header(), commands, final)
        return parse(drive(session.receive(data, self.dev.content_type, 0.0), self.backend))

    def sync(
        self,
        mode: int = 200,
        *,
        lose_package_4: bool = False,
        die_before_map: bool = False,
        keep_maps: bool = False,
    ) -> SessionLog:
        log = SessionLog()
        dev = self.dev
        # package 1 (md5; a first contact takes one 401 to learn the nonce)
        for _ in range(2):
            dev.new_session()
            token = f"t{next(self.counter)}"
            nxt = f"a{next(self.counter)}"
            al = Alert(
                0,
                mode if not (mode == 200 and self.anchor is None) else 201,
                items=[
                    Item(
                        target=self.datastore,
                        source=f"./{self.datastore}",
                        meta=Meta(anchor=_anchor(self.anchor, nxt)),
                    )
                ],
            )
            data = dev.encode(dev.header("md5"), [devinf_put(pref=self.content_type), al])
            session, msg = self._first(token, data)
            hdr = next(s for s in msg.commands if isinstance(s, Status) and s.cmd == "SyncHdr")
            if hdr.chal is not None and hdr.chal.next_nonce:
                dev.nonce = hdr.chal.next_nonce
            if hdr.code == 212:
                break
        else:
            raise AssertionError("could not log in")
        dev.target = msg.header.resp_uri or URL
        log.alert_status = next(
            s.code for s in msg.commands if isinstance(s, Status) and s.cmd == "Alert"
        )
        log.our_alert = next(c.code for c in msg.commands if isinstance(c, Alert))
        slow = log.our_alert in (201, 203)
        if log.our_alert == 205:
            self.items.clear()
        # package 3
        changes: list[Change] = []
        if log.our_alert in (201, 203):
            sendable = sorted(self.items)
            kind = "Replace" if log.our_alert == 201 else "Add"
        elif log.our_alert in (200, 202):
            sendable = sorted(self.changed)
            kind = "Replace"
        else:
            sendable, kind = [], "Replace"
        for luid in sendable:
            data = self.items[luid]
            if self.strip_uids:
                data = re.sub(rb"UID:[^\r\n]*\r?\n", b"", data)
            changes.append(
                Change(
                    0, kind, meta=Meta(type=self.content_type), items=[Item(source=luid, data=data)]
                )
            )
        if not slow and log.our_alert in (200, 202):
            for luid in sorted(self.deleted | self.soft):
                changes.append(
                    Change(0, "Delete", soft_delete=luid in self.soft, items=[Item(source=luid)])
                )
        commands: list[Any] = []
        if self.pending_maps:
            commands.append(
                Map(0, target=self.datastore, source=f"./{self.datastore}", items=self.pending_maps)
            )
        commands.append(
            Sync(0, target=self.datastore, source=f"./{self.datastore}", changes=changes)
        )
        msg = self._send(session, commands)
        log.sync_status = next(
            (s.code for s in msg.commands if isinstance(s, Status) and s.cmd == "Sync"), 0
        )
        for s in msg.commands:
            if isinstance(s, Status) and s.cmd in ("Add", "Replace", "Delete"):
                for ref in s.source_refs:
                    log.item_status[ref] = s.code
        if lose_package_4:
            return log  # the reply never arrived: nothing applied, nothing committed
        self.pending_maps = []
        # apply package 4
        statuses: list[Any] = []
        maps: list[MapItem] = []
        for s in (c for c in msg.commands if isinstance(c, Sync)):
            for ch in s.changes:
                assert isinstance(ch, Change)
                item = ch.items[0]
                code = 200
                if ch.kind == "Add":
                    text = item.data or b""
                    if any(f"UID:{u}".encode() in text for u in self.reject):
                        code = 500
                    else:
                        luid = str(next(_luids))
                        self.items[luid] = text
                        maps.append(MapItem(item.source or "", luid))
                        code = 201
                    log.received.append(("Add", item.source or ""))
                elif ch.kind == "Replace":
                    assert item.target in self.items, item.target
                    self.items[item.target or ""] = item.data or b""
                    log.received.append(("Replace", item.target or ""))
                elif ch.kind == "Delete":
                    code = 200 if self.items.pop(item.target or "", None) is not None else 211
                    log.received.append(("Delete", item.target or ""))
                statuses.append(Status(0, msg.header.msg_id, ch.cmd_id, ch.kind, code))
        if die_before_map:
            self.pending_maps = maps if keep_maps else []  # a good client keeps them
            return log
        commands = list(statuses)
        if maps:
            commands.append(Map(0, target=self.datastore, source=f"./{self.datastore}", items=maps))
        final = self._send(session, commands)
        log.finished = final.final
        self.anchor = nxt
        self.changed.clear()
        self.deleted.clear()
        self.soft.clear()
        return log


def _anchor(last: str | None, nxt: str) -> Any:
    from calsync.syncml.model import Anchor

    return Anchor(last, nxt)
