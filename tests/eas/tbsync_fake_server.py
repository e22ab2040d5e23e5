"""A scratch ActiveSync endpoint for the Thunderbird harness's probe test: not calsync code.

It exists to show that ``tbsync.TbSyncPeer`` drives the real EAS provider all the way to the
wire before calsync has an ActiveSync server: it answers just enough of EAS 14.1 for the
provider to connect and sync, and records every request, decoded, for the test to check.

- ``OPTIONS`` advertises versions and commands; every request must carry HTTP Basic for the
  one user (401 otherwise).
- ``Provision`` in two phases (temporary key, then final key); ``FolderSync`` answers 449
  until the final policy key is sent, then lists one calendar and one task folder.
- ``Sync``: SyncKey 0 → 1 with nothing; after that each request gets the next key, a
  ``Responses/Add`` (ClientId → ServerId) for every client Add, and once, the appointments or
  tasks seeded with ``seed``.

Encoding and decoding go through libwbxml's ``xml2wbxml``/``wbxml2xml`` (Debian
libwbxml2-utils), an independent codec, so nothing of calsync's is involved; parsing the
decoded XML goes through defusedxml. Passwords are never recorded: a request keeps the user
name and whether the password matched.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import fromstring

HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">\n'
)
TEMP_POLICY_KEY = "1001"
FINAL_POLICY_KEY = "2002"
FOLDERS = (("cal1", "Calendar", "8"), ("task1", "Tasks", "7"))
AIRSYNC = "{AirSync:}"


def decode(wbxml: bytes) -> str:
    """WBXML → XML text with ``wbxml2xml -l ACTIVESYNC``."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.wbxml", Path(tmp) / "out.xml"
        src.write_bytes(wbxml)
        done = subprocess.run(
            ["wbxml2xml", "-l", "ACTIVESYNC", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out.exists():
            raise ValueError(f"wbxml2xml failed: {done.stdout}{done.stderr}")
        return out.read_text(encoding="utf-8")


def encode(xml: str) -> bytes:
    """XML text (with the ActiveSync DOCTYPE) → WBXML 1.3, no string table, anonymous
    public id: ``03 01 6a 00`` as the provider checks."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.xml", Path(tmp) / "out.wbxml"
        src.write_text(HEADER + xml, encoding="utf-8")
        done = subprocess.run(
            ["xml2wbxml", "-v", "1.3", "-n", "-a", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out.exists():
            raise ValueError(f"xml2wbxml failed: {done.stdout}{done.stderr}")
        return out.read_bytes()


def appointment(uid: str, subject: str, start: str, end: str) -> str:
    """ApplicationData of a timed EAS 14.1 appointment (UTC ``YYYYMMDDTHHMMSSZ``) with no
    TimeZone blob, so the provider places it in Thunderbird's default zone. Tag names as
    libwbxml spells them (it names Calendar 0x11 ``DTStamp``)."""
    return (
        '<AllDayEvent xmlns="Calendar:">0</AllDayEvent>'
        f'<StartTime xmlns="Calendar:">{start}</StartTime>'
        f'<EndTime xmlns="Calendar:">{end}</EndTime>'
        f'<Subject xmlns="Calendar:">{subject}</Subject>'
        f'<UID xmlns="Calendar:">{uid}</UID>'
        '<BusyStatus xmlns="Calendar:">2</BusyStatus>'
        f'<DTStamp xmlns="Calendar:">{start}</DTStamp>'
    )


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def child_text(node: Element, name: str) -> str | None:
    for c in node:
        if local(c.tag) == name:
            return c.text or ""
    return None


@dataclass
class Request:
    """One request as the fake saw it (no password)."""

    method: str
    command: str | None
    user: str | None
    auth_ok: bool
    query: dict[str, str]
    headers: dict[str, str]
    xml: str | None = None
    status: int = 0

    @property
    def root(self) -> Element | None:
        return fromstring(self.xml) if self.xml else None


@dataclass
class Collection:
    server_id: str
    key: int = 0
    seeded: list[str] = field(default_factory=list)  # ApplicationData XML, sent once
    next_item: int = 1
    adds: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)


class FakeEas:
    """The scratch endpoint, on 127.0.0.1 over TLS (``cert``/``key`` from tests.pki)."""

    def __init__(self, user: str, password: str, cert: Path, key: Path) -> None:
        self.user = user
        self.password = password
        self.requests: list[Request] = []
        self.collections = {sid: Collection(sid) for sid, _, _ in FOLDERS}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_OPTIONS(self) -> None:
                fake.handle(self, "OPTIONS")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/Microsoft-Server-ActiveSync"

    def start(self) -> FakeEas:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeEas:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seed(self, collection: str, application_data: str) -> None:
        """Queue an item (the XML inside ApplicationData) for the collection's next Sync."""
        with self._lock:
            self.collections[collection].seeded.append(application_data)

    def commands(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.command == name or r.method == name]

    # -- the exchange -------------------------------------------------------------------------

    def _credentials(self, header: str | None) -> tuple[str | None, bool]:
        if not header or not header.startswith("Basic "):
            return None, False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        return user, (user == self.user and password == self.password)

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(h.path).query).items()}
        user, auth_ok = self._credentials(h.headers.get("Authorization"))
        kept = ("MS-ASProtocolVersion", "X-MS-PolicyKey", "Content-Type", "User-Agent")
        req = Request(
            method=method,
            command=query.get("Cmd"),
            user=user,
            auth_ok=auth_ok,
            query=query,
            headers={k: v for k in kept if (v := h.headers.get(k)) is not None},
        )
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if body:
            req.xml = decode(body)
        with self._lock:
            self.requests.append(req)
            status, headers, payload = self._answer(req)
            req.status = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if status == 401:
            h.send_header("WWW-Authenticate", 'Basic realm="fake eas"')
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _answer(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        if not req.auth_ok:
            return 401, {}, b""
        if req.method == "OPTIONS":
            return (
                200,
                {
                    "MS-ASProtocolVersions": "14.0,14.1",
                    "MS-ASProtocolCommands": "Sync,FolderSync,Provision",
                    "MS-Server-ActiveSync": "14.1",
                },
                b"",
            )
        wbxml = {"Content-Type": "application/vnd.ms-sync.wbxml"}
        if req.command == "Provision":
            return 200, wbxml, encode(self._provision(req))
        if req.headers.get("X-MS-PolicyKey") != FINAL_POLICY_KEY:
            return 449, {}, b""
        if req.command == "FolderSync":
            return 200, wbxml, encode(self._folder_sync(req))
        if req.command == "Sync":
            return 200, wbxml, encode(self._sync(req))
        return 501, {}, b""

    def _provision(self, req: Request) -> str:
        root = req.root
        acked = root is not None and any(local(e.tag) == "PolicyKey" for e in root.iter())
        key = FINAL_POLICY_KEY if acked else TEMP_POLICY_KEY
        data = (
            ""
            if acked
            else "<Data><EASProvisionDoc><DevicePasswordEnabled>0</DevicePasswordEnabled>"
            "</EASProvisionDoc></Data>"
        )
        return (
            '<Provision xmlns="Provision:"><Status>1</Status><Policies><Policy>'
            "<PolicyType>MS-EAS-Provisioning-WBXML</PolicyType><Status>1</Status>"
            f"<PolicyKey>{key}</PolicyKey>{data}</Policy></Policies></Provision>"
        )

    def _folder_sync(self, req: Request) -> str:
        root = req.root
        key = child_text(root, "SyncKey") if root is not None else None
        if key != "0":
            return (
                '<FolderSync xmlns="FolderHierarchy:"><Status>1</Status>'
                "<SyncKey>1</SyncKey><Changes><Count>0</Count></Changes></FolderSync>"
            )
        adds = "".join(
            f"<Add><ServerId>{sid}</ServerId><ParentId>0</ParentId>"
            f"<DisplayName>{name}</DisplayName><Type>{kind}</Type></Add>"
            for sid, name, kind in FOLDERS
        )
        return (
            '<FolderSync xmlns="FolderHierarchy:"><Status>1</Status><SyncKey>1</SyncKey>'
            f"<Changes><Count>{len(FOLDERS)}</Count>{adds}</Changes></FolderSync>"
        )

    def _sync(self, req: Request) -> str:
        root = req.root
        answers = []
        for node in root.iter(AIRSYNC + "Collection") if root is not None else []:
            sid = child_text(node, "CollectionId") or ""
            key = child_text(node, "SyncKey") or ""
            col = self.collections.get(sid)
            if col is None:
                answers.append(
                    f"<Collection><SyncKey>0</SyncKey><CollectionId>{sid}</CollectionId>"
                    "<Status>8</Status></Collection>"
                )
                continue
            if key == "0":
                col.key = 1
                answers.append(
                    f"<Collection><SyncKey>1</SyncKey><CollectionId>{sid}</CollectionId>"
                    "<Status>1</Status></Collection>"
                )
                continue
            if key != str(col.key):
                answers.append(
                    f"<Collection><SyncKey>0</SyncKey><CollectionId>{sid}</CollectionId>"
                    "<Status>3</Status></Collection>"
                )
                continue
            col.key += 1
            responses = []
            for cmd in node.iter(AIRSYNC + "Commands"):
                for c in cmd:
                    name = local(c.tag)
                    data = next((d for d in c if local(d.tag) == "ApplicationData"), None)
                    fields = {local(d.tag): d.text for d in data} if data is not None else {}
                    if name == "Add":
                        server_id = f"{sid}:{col.next_item}"
                        col.next_item += 1
                        client_id = child_text(c, "ClientId") or ""
                        col.adds.append({"client_id": client_id, "server_id": server_id, **fields})
                        responses.append(
                            f"<Add><ClientId>{client_id}</ClientId><ServerId>{server_id}"
                            "</ServerId><Status>1</Status></Add>"
                        )
                    elif name == "Change":
                        col.changes.append({"server_id": child_text(c, "ServerId"), **fields})
                    elif name == "Delete":
                        col.deletes.append(child_text(c, "ServerId") or "")
            commands = []
            if child_text(node, "GetChanges") != "0":
                for data in col.seeded:
                    server_id = f"{sid}:{col.next_item}"
                    col.next_item += 1
                    commands.append(
                        f"<Add><ServerId>{server_id}</ServerId>"
                        f"<ApplicationData>{data}</ApplicationData></Add>"
                    )
                col.seeded.clear()
            answers.append(
                f"<Collection><SyncKey>{col.key}</SyncKey><CollectionId>{sid}</CollectionId>"
                "<Status>1</Status>"
                + (f"<Responses>{''.join(responses)}</Responses>" if responses else "")
                + (f"<Commands>{''.join(commands)}</Commands>" if commands else "")
                + "</Collection>"
            )
        return f'<Sync xmlns="AirSync:"><Collections>{"".join(answers)}</Collections></Sync>'
