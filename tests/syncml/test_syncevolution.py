"""calsync's SyncML server against the real SyncEvolution 2.0 client.

``../shared/peers/syncevolution/client-sync.sh`` runs one client session
(Debian's SyncEvolution, started by the test); the server is calsync's
gateway on a free port in this process.  Items are checked where they end up:
in the configured vdir store and in the client's item directories.

The covering matrix: every mode twice, with opposite settings of the four
binary factors (WBXML/XML, iCalendar 2.0/vCalendar 1.0, md5/basic, SyncML
1.2/1.1) so that every pair of factor values occurs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from calsync.config import parse as parse_config
from calsync.gateway.app import build_app
from calsync.gateway.server import BackgroundServer
from tests.conftest import SHARED, event
from tests.pki import make_pki

pytestmark = pytest.mark.peer

CLIENT = SHARED / "peers" / "syncevolution" / "client-sync.sh"


@dataclass
class Run:
    ok: bool
    output: str


class Peer:
    """One SyncEvolution client (its own item folders and state under ``dir``)."""

    def __init__(
        self,
        url: str,
        dir: Path,
        *,
        device: str = "sc-test-client-1",
        fmt: str = "ical20",
        encoding: str = "wbxml",
        auth: str = "md5",
        version: str = "",
        stores: str = "calendar todo",
        password: str = "test",
    ) -> None:
        self.url = url
        self.dir = dir
        self.device = device
        self.fmt = fmt
        self.encoding = encoding
        self.auth = auth
        self.version = version
        self.stores = stores
        self.password = password
        for store in stores.split():
            (dir / store).mkdir(parents=True, exist_ok=True)

    def sync(self, mode: str, *, expect_ok: bool = True, **env: str) -> Run:
        assert CLIENT.exists(), f"{CLIENT} missing: the SyncEvolution peer is not available"
        full = {
            **os.environ,
            "SE_DEVICE_ID": self.device,
            "SE_ENCODING": self.encoding,
            "SE_AUTH": self.auth,
            "SE_SYNCML_VERSION": self.version,
            "SE_STORES": self.stores,
            "SE_LOGLEVEL": env.pop("SE_LOGLEVEL", "3"),
            **env,
        }
        proc = subprocess.run(
            ["bash", str(CLIENT), self.url, "test", self.password, str(self.dir), mode, self.fmt],
            env=full,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = proc.stdout + proc.stderr
        assert "RESULT:" in out, f"client-sync.sh did not run (exit {proc.returncode}):\n{out}"
        ok = "RESULT: OK" in out and proc.returncode == 0
        if expect_ok:
            assert ok, f"{mode} sync failed:\n{out}"
        return Run(ok, out)

    def write(
        self,
        name: str,
        uid: str,
        summary: str,
        store: str = "calendar",
        start: str = "20250301T100000Z",
        last_modified: str = "20250101T000000Z",
    ) -> None:
        if store == "todo":
            body = _todo(uid, summary, self.fmt)
        elif self.fmt == "vcal10":
            body = _vevent10(uid, summary, start, last_modified)
        else:
            body = event(uid, summary, start=start, last_modified=last_modified)
        path = self.dir / store / name
        existed = path.exists()
        path.write_bytes(body)
        if existed:
            # SyncEvolution's file backend sees changes by mtime in whole seconds: an
            # edit within the second of its last sync would go unnoticed
            later = time.time() + 2
            os.utime(path, (later, later))

    def items(self, store: str = "calendar") -> dict[str, str]:
        """UID -> SUMMARY of the client's items (vCalendar or iCalendar)."""
        return _items((self.dir / store).iterdir())

    def file_of(self, uid: str, store: str = "calendar") -> Path:
        for p in (self.dir / store).iterdir():
            if re.search(rf"(?m)^UID:{re.escape(uid)}\r?$", _unfold(p.read_bytes())):
                return p
        raise AssertionError(f"no item {uid} on the client")


def _unfold(data: bytes) -> str:
    return re.sub(r"\r?\n[ \t]", "", data.decode("utf-8", "replace"))


def _items(paths: Iterator[Path]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in paths:
        if p.name.startswith(".") or not p.is_file():
            continue
        text = _unfold(p.read_bytes())
        uid = re.search(r"(?m)^UID:(.*?)\r?$", text)
        summary = re.search(r"(?m)^SUMMARY[^:\n]*:(.*?)\r?$", text)
        key = uid.group(1) if uid else f"<no uid: {p.name}>"
        assert key not in out, f"duplicate UID {key}"
        out[key] = summary.group(1) if summary else ""
    return out


def _vevent10(uid: str, summary: str, start: str, last_modified: str) -> bytes:
    end = start[:9] + "11" + start[11:]
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:1.0",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTART:{start}",
        f"DTEND:{end}",
        f"SUMMARY:{summary}",
        f"LAST-MODIFIED:{last_modified}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def _todo(uid: str, summary: str, fmt: str) -> bytes:
    version = "1.0" if fmt == "vcal10" else "2.0"
    lines = [
        "BEGIN:VCALENDAR",
        f"VERSION:{version}",
        "BEGIN:VTODO",
        f"UID:{uid}",
        "DTSTAMP:20250101T000000Z",
        f"SUMMARY:{summary}",
        "END:VTODO",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def server_config(tmp: Path, extra: str = "") -> str:
    """The account the client-sync.sh peer logs in to (test/test), on a vdir in
    ``tmp/store``."""
    return f"""
[general]
state_dir = "{tmp / "state"}"
[stores.laptop]
type = "vdir"
path = "{tmp / "store"}"
create = true
[syncml.accounts.test]
password = "test"
calendar = "laptop"
tasks = "laptop"
{extra}
"""


class Server:
    def __init__(self, tmp: Path, extra: str = "", tls: tuple[Path, Path] | None = None) -> None:
        self.store = tmp / "store"
        self.store.mkdir()
        cfg, errors = parse_config(server_config(tmp, extra))
        assert not errors, errors
        self.srv = BackgroundServer(build_app(cfg), tls=tls)
        self.url = self.srv.url
        self.tmp = tmp

    def peer(self, name: str = "c1", **kw: str) -> Peer:
        return Peer(self.url, self.tmp / name, **kw)  # type: ignore[arg-type]

    def write(
        self,
        uid: str,
        summary: str,
        *,
        kind: str = "event",
        start: str = "20250301T100000Z",
        last_modified: str = "20250101T000000Z",
    ) -> None:
        body = (
            _todo(uid, summary, "ical20")
            if kind == "todo"
            else event(uid, summary, start=start, last_modified=last_modified)
        )
        (self.store / f"{uid}.ics").write_bytes(body)

    def items(self, kind: str | None = None) -> dict[str, str]:
        out = _items(self.store.iterdir())
        if kind == "todo":
            return {
                u: s for u, s in out.items() if "VTODO" in (self.store / f"{u}.ics").read_text()
            }
        return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    s.srv.start()
    try:
        yield s
    finally:
        s.srv.stop()


# -- the covering matrix ------------------------------------------------------------------------

MODES = [
    "two-way",
    "slow",
    "refresh-from-server",
    "refresh-from-client",
    "one-way-from-server",
    "one-way-from-client",
]
PATTERNS = ["0000", "0011", "0101", "0110", "0001", "0010"]


def _settings(bits: str) -> dict[str, str]:
    e, f, a, v = (b == "1" for b in bits)
    return {
        "encoding": "xml" if e else "wbxml",
        "fmt": "vcal10" if f else "ical20",
        "auth": "basic" if a else "md5",
        "version": "1.1" if v else "1.2",
    }


MATRIX = []
for _mode, _bits in zip(MODES, PATTERNS, strict=True):
    MATRIX.append((_mode, _settings(_bits)))
    MATRIX.append((_mode, _settings("".join("1" if b == "0" else "0" for b in _bits))))


def _id(row: tuple[str, dict[str, str]]) -> str:
    mode, s = row
    return f"{mode}-{s['encoding']}-{s['fmt']}-{s['auth']}-{s['version']}"


def test_the_matrix_covers_every_pair() -> None:
    factors = ("encoding", "fmt", "auth", "version")
    for i, x in enumerate(factors):
        for y in factors[i + 1 :]:
            assert len({(s[x], s[y]) for _, s in MATRIX}) == 4, (x, y)
    assert {m for m, _ in MATRIX} == set(MODES)


@pytest.mark.parametrize("row", MATRIX, ids=_id)
def test_matrix(server: Server, row: tuple[str, dict[str, str]]) -> None:
    mode, settings = row
    peer = server.peer(**settings)
    # a first sync makes both sides know everything
    server.write("s0", "Server zero")
    server.write("s1", "Server one")
    server.write("st", "Server task", kind="todo")
    peer.write("c0.ics", "c0", "Client zero", start="20250302T100000Z")
    peer.write("c1.ics", "c1", "Client one", start="20250303T100000Z")
    peer.write("ct.ics", "ct", "Client task", store="todo")
    peer.sync("slow")
    both = {"s0": "Server zero", "s1": "Server one", "c0": "Client zero", "c1": "Client one"}
    assert peer.items() == both
    assert server.items() == {**both, "st": "Server task", "ct": "Client task"}
    assert peer.items("todo") == {"st": "Server task", "ct": "Client task"}
    # changes on both sides: add, modify, delete
    server.write("s2", "Server two")
    server.write("s1", "Server one edited", last_modified="20250601T000000Z")
    (server.store / "s0.ics").unlink()
    peer.write("c2.ics", "c2", "Client two", start="20250304T100000Z")
    peer.write(
        peer.file_of("c1").name,
        "c1",
        "Client one edited",
        start="20250303T100000Z",
        last_modified="20250601T000000Z",
    )
    peer.file_of("c0").unlink()
    peer.sync(mode)
    server_side = {k: v for k, v in server.items().items() if k not in ("st", "ct")}
    client_side = peer.items()
    server_changes = {"s1": "Server one edited", "s2": "Server two"}
    client_changes = {"c1": "Client one edited", "c2": "Client two"}
    if mode == "two-way":
        expect = {**server_changes, **client_changes}
        assert server_side == expect and client_side == expect
    elif mode == "slow":  # union, nothing deleted; edits kept (newest wins)
        expect = {**server_changes, **client_changes, "s0": "Server zero", "c0": "Client zero"}
        assert client_side == expect
        assert {k: v for k, v in server_side.items()} == expect
    elif mode == "refresh-from-server":
        assert (
            client_side
            == server_side
            == {**server_changes, "c0": "Client zero", "c1": "Client one"}
        )
    elif mode == "refresh-from-client":
        assert (
            server_side
            == client_side
            == {**client_changes, "s0": "Server zero", "s1": "Server one"}
        )
    elif mode == "one-way-from-server":
        assert client_side == {**server_changes, **client_changes}
        assert server_side == {**server_changes, "c0": "Client zero", "c1": "Client one"}
    elif mode == "one-way-from-client":
        assert server_side == {**server_changes, **client_changes}
        assert client_side == {**client_changes, "s0": "Server zero", "s1": "Server one"}
    if settings["fmt"] == "vcal10":  # what we sent is in the phone's format
        for path in (peer.dir / "calendar").iterdir():
            assert b"VERSION:1.0" in path.read_bytes(), path.name
    # a two-way sync afterwards brings both sides together, nothing lost or doubled
    peer.sync("two-way")
    final_server = {k: v for k, v in server.items().items() if k not in ("st", "ct")}
    final_client = peer.items()
    if mode == "one-way-from-server":
        # SyncEvolution itself never sends an edit made before a one-way-from-server
        # sync (its change tracking restarts there); its adds and deletes it does send
        assert final_client.pop("c1") == "Client one edited"
        assert final_server.pop("c1") == "Client one"
    assert final_server == final_client
    assert set(peer.items("todo")) == {"st", "ct"}


# -- scenarios ---------------------------------------------------------------------------------


def test_two_devices_on_one_account(server: Server) -> None:
    one = server.peer("one", device="sc-test-client-1", stores="calendar")
    two = server.peer("two", device="sc-test-client-2", stores="calendar")
    one.write("a.ics", "a1", "From device one")
    one.sync("two-way")
    two.sync("two-way")
    assert two.items() == {"a1": "From device one"}
    two.write(
        two.file_of("a1").name, "a1", "Edited on device two", last_modified="20250701T000000Z"
    )
    two.sync("two-way")
    one.sync("two-way")
    assert one.items() == {"a1": "Edited on device two"}
    one.file_of("a1").unlink()
    one.sync("two-way")
    two.sync("two-way")
    assert two.items() == {} and server.items() == {}


def test_500_items_across_max_msg_size(server: Server) -> None:
    sender = server.peer("sender", stores="calendar")
    for n in range(500):
        sender.write(
            f"e{n}.ics",
            f"e{n}",
            f"Event {n} " + "x" * 200,
            start=f"2025{1 + n % 12:02d}{1 + n % 28:02d}T{n % 24:02d}0000Z",
        )
    run = sender.sync("slow", SE_MAXMSGSIZE="20000", SE_LOGLEVEL="5")
    assert len(server.items()) == 500
    sent = re.search(r"SESSION_DIR=(.*)", run.output)
    assert sent
    dumps = list(Path(sent.group(1)).glob("*_outgoing.*"))
    assert len(dumps) > 10  # the client split its package
    receiver = server.peer("receiver", device="sc-test-client-2", stores="calendar")
    run = receiver.sync("two-way", SE_MAXMSGSIZE="20000", SE_LOGLEVEL="5")
    got = receiver.items()
    assert len(got) == 500 and got == server.items()
    inbox = re.search(r"SESSION_DIR=(.*)", run.output)
    assert inbox
    incoming = [
        p
        for p in Path(inbox.group(1)).glob("*_incoming.*")
        if not p.name.startswith("syncevolution-log_trm")
    ]
    assert len(incoming) > 10  # we split ours
    assert all(p.stat().st_size <= 20000 for p in incoming)


def test_a_large_object_both_ways(server: Server) -> None:
    big = server.peer("big", stores="calendar")
    description = "Lorem ipsum " * 3000 + "é" * 1000
    body = event("large", "Large", extra="DESCRIPTION:" + description)
    (big.dir / "calendar" / "large.ics").write_bytes(_fold(body))
    big.sync("slow", SE_MAXMSGSIZE="10000")
    stored = (server.store / "large.ics").read_bytes()
    assert description in _unfold(stored)
    other = server.peer("other", device="sc-test-client-2", stores="calendar")
    other.sync("two-way", SE_MAXMSGSIZE="10000")
    assert description in _unfold(other.file_of("large").read_bytes())


def _fold(data: bytes) -> bytes:
    out = []
    for line in data.split(b"\r\n"):
        first = True
        while len(line) > 75:
            cut = 75 if first else 74
            while (line[cut] & 0xC0) == 0x80:
                cut -= 1
            out.append((b"" if first else b" ") + line[:cut])
            line = line[cut:]
            first = False
        out.append((b"" if first else b" ") + line)
    return b"\r\n".join(out)


def test_wrong_password_is_refused_and_changes_nothing(server: Server) -> None:
    server.write("s", "Server")
    peer = server.peer(password="wrong", stores="calendar")
    peer.write("p.ics", "p", "Phone")
    run = peer.sync("slow", expect_ok=False)
    assert not run.ok and "status=401" in run.output
    assert server.items() == {"s": "Server"}
    assert peer.items() == {"p": "Phone"}


def test_a_second_slow_sync_creates_no_duplicates(server: Server) -> None:
    server.write("s", "Server")
    peer = server.peer(stores="calendar")
    for n in range(3):
        peer.write(f"p{n}.ics", f"p{n}", f"Phone {n}")
    peer.sync("slow")
    peer.sync("slow")
    peer.sync("two-way")
    expect = {"s": "Server", "p0": "Phone 0", "p1": "Phone 1", "p2": "Phone 2"}
    assert server.items() == expect and peer.items() == expect
    assert len(list((peer.dir / "calendar").iterdir())) == 4


def test_a_phone_that_lost_its_data_gets_everything_back(server: Server) -> None:
    for n in range(3):
        server.write(f"s{n}", f"Server {n}")
    peer = server.peer(stores="calendar")
    peer.sync("slow")
    for p in (peer.dir / "calendar").iterdir():
        p.unlink()
    # its anchors are gone too (a reset phone): the server forces a slow sync
    import shutil

    shutil.rmtree(peer.dir / ".syncevo")
    peer.sync("two-way")
    assert peer.items() == server.items() and len(server.items()) == 3


def test_syncml_10(server: Server) -> None:
    """SyncML 1.0 (older phones speak it; SyncEvolution can too)."""
    server.write("s", "Server")
    peer = server.peer(version="1.0", stores="calendar")
    peer.write("p.ics", "p", "Phone")
    peer.sync("slow")
    assert peer.items() == server.items() == {"s": "Server", "p": "Phone"}
    peer.write("p.ics", "p", "Phone edited", last_modified="20250601T000000Z")
    peer.sync("two-way")
    assert server.items()["p"] == "Phone edited"


def test_a_vcalendar_phone_does_not_erase_what_vcalendar_cannot_carry(server: Server) -> None:
    """A vCalendar 1.0 phone edits an event: its copy lacks COMMENT, the exact
    TZID and more, which the store item keeps; only the phone's edit travels."""
    rich = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
        "BEGIN:VEVENT\r\nUID:rich\r\nDTSTAMP:20250101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20250301T100000\r\n"
        "DTEND;TZID=Europe/Berlin:20250301T110000\r\n"
        "SUMMARY:Planning\r\nCOMMENT:bring the slides\r\n"
        "LAST-MODIFIED:20250101T000000Z\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (server.store / "rich.ics").write_text(rich)
    peer = server.peer(fmt="vcal10", stores="calendar")
    peer.sync("slow")
    path = peer.file_of("rich")
    text = path.read_bytes().replace(b"SUMMARY:Planning", b"SUMMARY:Planning v2")
    assert text != path.read_bytes()
    path.write_bytes(text)
    later = time.time() + 2
    os.utime(path, (later, later))
    peer.sync("two-way")
    stored = _unfold((server.store / "rich.ics").read_bytes())
    assert "SUMMARY:Planning v2" in stored
    assert "COMMENT:bring the slides" in stored
    assert "TZID=Europe/Berlin" in stored
    peer.sync("slow")  # re-sending everything changes nothing either
    again = _unfold((server.store / "rich.ics").read_bytes())
    assert "COMMENT:bring the slides" in again and "SUMMARY:Planning v2" in again


class CrashingRelay:
    """An HTTP relay between the client and ``calsync serve`` that can crash the
    daemon: at the ``crash_at``-th POST it forwards the request, waits for the whole
    answer (the daemon has done the work), kills the daemon (SIGKILL) and resets
    the client's connection instead of answering.  It keeps every request body."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/sync"
        self.posts = 0
        self.crash_at: int | None = None
        self.kill: Callable[[], object] = lambda: None
        self.bodies: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _message(conn: socket.socket, buf: bytearray) -> bytes | None:
        """One HTTP/1.1 message (headers + Content-Length body) from ``conn``."""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        head, _, _ = bytes(buf).partition(b"\r\n\r\n")
        found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        total = len(head) + 4 + (int(found.group(1)) if found else 0)
        while len(buf) < total:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        message = bytes(buf[:total])
        del buf[:total]
        return message

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        from_client, from_upstream = bytearray(), bytearray()
        try:
            while (request := self._message(client, from_client)) is not None:
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                if request.startswith(b"POST "):
                    self.posts += 1
                    self.bodies.append(request.partition(b"\r\n\r\n")[2])
                upstream.sendall(request)
                answer = self._message(upstream, from_upstream)
                if answer is None:
                    return
                if self.posts == self.crash_at and request.startswith(b"POST "):
                    self.kill()
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                client.sendall(answer)
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()


@pytest.mark.slow
def test_the_first_session_after_a_daemon_crash_resumes_as_a_slow_sync(tmp_path: Path) -> None:
    """Finding 10 of issue 19, with the real client and a real ``calsync serve``:
    the daemon is killed (SIGKILL) after it processed the client's changes of a
    two-way sync and before the client got the answer.  SyncEvolution's next
    session asks to resume it (Alert 225), which got 406 and failed.  Now the
    daemon, knowing nothing of the old session, answers 508 + Alert 201: a slow
    sync, which succeeds, loses nothing and doubles nothing; and the session
    after it is an ordinary two-way sync again."""
    from tests.gateway.helpers import DaemonProcess, free_port

    store = tmp_path / "store"
    store.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(server_config(tmp_path))
    config.chmod(0o600)
    port = free_port()
    daemon = DaemonProcess(tmp_path, config, port=port)
    relay = CrashingRelay(port)
    try:
        peer = Peer(relay.url, tmp_path / "phone", stores="calendar", encoding="xml")
        (store / "s0.ics").write_bytes(event("s0", "Server zero"))
        peer.write("p0.ics", "p0", "Phone zero")
        peer.sync("slow")
        assert peer.items() == {"s0": "Server zero", "p0": "Phone zero"}
        # changes on both sides; the daemon dies after package 3 of the next session
        (store / "s1.ics").write_bytes(event("s1", "Server one"))
        peer.write("p1.ics", "p1", "Phone one")
        relay.crash_at = relay.posts + 2
        relay.kill = lambda: daemon.stop(signal.SIGKILL)
        crashed = peer.sync("two-way", expect_ok=False)
        assert not crashed.ok and daemon.proc.returncode == -signal.SIGKILL
        daemon = DaemonProcess(tmp_path, config, port=port)
        relay.crash_at = None
        first = len(relay.bodies)
        peer.sync("two-way")
        alerts = re.findall(rb"<Alert>.*?<Data>(\d+)</Data>", b"".join(relay.bodies[first:]))
        assert alerts == [b"225"], alerts
        expect = {"s0": "Server zero", "s1": "Server one", "p0": "Phone zero", "p1": "Phone one"}
        assert peer.items() == expect and _items(store.iterdir()) == expect
        assert len(list((peer.dir / "calendar").iterdir())) == 4 == len(list(store.iterdir()))
        assert "resuming a session we do not keep" in daemon.logs()
        first = len(relay.bodies)
        peer.sync("two-way")
        alerts = re.findall(rb"<Alert>.*?<Data>(\d+)</Data>", b"".join(relay.bodies[first:]))
        assert alerts == [b"200"], alerts
        assert peer.items() == expect and _items(store.iterdir()) == expect
    finally:
        relay.close()
        daemon.stop()


def _trust(peer: Peer, ca: Path) -> None:
    """Configure the client (in the isolated home client-sync.sh gives it) to trust
    only ``ca``; client-sync.sh keeps settings it does not set itself."""
    home = peer.dir / ".syncevo" / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "LC_ALL": "C.UTF-8",
    }
    for d in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        Path(env[d]).mkdir(parents=True, exist_ok=True)
    for var in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "SYNCEVOLUTION_DEBUG"):
        env.pop(var, None)
    se = ["syncevolution", "--daemon=no", "--configure", "--keyring=no"]
    fmt = "text/x-vcalendar" if peer.fmt == "vcal10" else "text/calendar"
    for store in peer.stores.split():  # its file datastores first, as client-sync.sh does
        subprocess.run(
            [*se, "backend=file", f"databaseFormat={fmt}",
             f"database=file://{peer.dir / store}", "@client", store],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    subprocess.run(
        [*se, "--template", "SyncEvolution", f"syncURL={peer.url}",
         f"SSLServerCertificates={ca}", "SSLVerifyServer=1", "SSLVerifyHost=1",
         "peer@client", *peer.stores.split()],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_over_tls_with_a_certificate_the_phone_trusts(tmp_path: Path) -> None:
    """A phone syncing over HTTPS (``[server] cert/key``): SyncEvolution, checking the
    certificate against the CA it was given, syncs both ways; one that does not
    trust that CA refuses to talk, and nothing changes."""
    ca, cert, key = make_pki(tmp_path / "pki")
    server = Server(tmp_path, tls=(cert, key))
    server.srv.start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        server.write("s", "On the hub")
        phone = server.peer("phone", stores="calendar")
        _trust(phone, ca)
        phone.write("p.ics", "p", "On the phone")
        phone.sync("slow")
        assert server.items() == phone.items() == {"s": "On the hub", "p": "On the phone"}
        server.write("s", "Edited on the hub")
        phone.sync("two-way")
        assert phone.items()["s"] == "Edited on the hub"

        stranger = server.peer("stranger", stores="calendar", device="sc-test-client-2")
        other_ca, _, _ = make_pki(tmp_path / "other-pki")
        _trust(stranger, other_ca)  # not the CA that signed the server's certificate
        stranger.write("x.ics", "x", "Should not arrive")
        run = stranger.sync("slow", expect_ok=False)
        assert not run.ok and "server certificate verification failed" in run.output
        assert "x" not in server.items() and "s" not in stranger.items()
    finally:
        server.srv.stop()
