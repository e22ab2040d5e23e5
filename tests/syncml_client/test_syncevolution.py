"""The ``syncml`` store against SyncEvolution's real SyncML server.

``../shared/peers/syncevolution/server.sh`` (SyncEvolution 2.0, Debian's
package) runs once per test process; every test syncs datastores of its own
(``ds0``, ``ds1``...), whose item directories (one file per item) are where
the server's side is changed and checked.  Syncs go through the command line
(``calsync sync p --mode ... --json``), and the sync type each SyncML session
used is read from calsync's log.

The covering matrix: every mode twice, with opposite values of the four
binary factors (WBXML/XML, iCalendar 2.0/vCalendar 1.0 on the wire, md5/basic,
the syncml store as side b/a of the pair), so each value of each factor meets
each mode and every pair of factor values occurs.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from calsync.cli import cli
from calsync.syncml.client_http import HttpTransport, TransportError
from tests.syncml_client.conftest import SyncEvolution
from tests.syncml_client.harness import client_section, edit, file_of, items_in, put

pytestmark = pytest.mark.peer

SESSION = re.compile(r"SyncML datastore '[^']*' at \S+: ([a-z-]+)( \(forced by the server\))?:")


@dataclass
class Settings:
    encoding: str = "wbxml"
    fmt: str = "ical20"
    auth: str = "md5"
    side: str = "b"  # the syncml store's side of the pair


class Case:
    """A vdir (``local``) paired with one datastore of the SyncEvolution server."""

    def __init__(
        self,
        tmp: Path,
        server: SyncEvolution,
        settings: Settings,
        caplog: pytest.LogCaptureFixture,
        *,
        password: str = "test",
        url: str | None = None,
    ) -> None:
        self.tmp = tmp
        self.settings = settings
        self.caplog = caplog
        self.datastore = server.datastore()
        self.server = server.items_dir(self.datastore)
        assert self.server.is_dir(), f"server.sh made no {self.server}"
        self.local = tmp / "local"
        self.local.mkdir(parents=True)
        self.me = settings.side
        self.them = "a" if self.me == "b" else "b"
        section = client_section(
            url or server.url,
            datastore=self.datastore,
            fmt=settings.fmt,
            encoding=settings.encoding,
            auth=settings.auth,
            password=password,
        )
        a, b = ("local", "server") if self.me == "b" else ("server", "local")
        self.config = tmp / "config.toml"
        self.config.write_text(
            f"""
[general]
state_dir = "{tmp / "state"}"
[stores.local]
type = "vdir"
path = "{self.local}"
create = true
[stores.server]
{section}
[pairs.p]
a = "{a}"
b = "{b}"
"""
        )
        self.config.chmod(0o600)

    # the engine's names for the modes, seen from the server's side
    @property
    def to_server(self) -> str:
        return f"one-way-{self.them}-to-{self.me}"

    @property
    def from_server(self) -> str:
        return f"one-way-{self.me}-to-{self.them}"

    @property
    def refresh_from_server(self) -> str:
        return f"refresh-from-{self.me}"

    @property
    def refresh_to_server(self) -> str:
        return f"refresh-from-{self.them}"

    def run(self, *args: str) -> tuple[int, dict[str, Any], str]:
        self.caplog.clear()
        self.caplog.set_level(logging.INFO, "calsync.syncml.client")
        result = CliRunner().invoke(
            cli, ["sync", "p", "--json", "--config", str(self.config), *args]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        data = json.loads(result.stdout)["pairs"]["p"]
        return result.exit_code, data, result.stdout + result.stderr

    def sync(self, mode: str = "two-way") -> dict[str, Any]:
        code, data, out = self.run("--mode", mode)
        assert code == 0 and not data["errors"] and "stopped" not in data, out
        return data

    def sessions(self) -> list[str]:
        """The sync types of the SyncML sessions of the last run."""
        return [
            m.group(1) + ("!" if m.group(2) else "")
            for m in (SESSION.search(r.getMessage()) for r in self.caplog.records)
            if m
        ]

    # both sides
    def local_items(self) -> dict[str, str]:
        return items_in(self.local)

    def server_items(self) -> dict[str, str]:
        return items_in(self.server)

    def snapshot(self, folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def setup(self) -> None:
        """S1, S2 on the server, L1, L2 here; a first sync makes both sides hold all four."""
        put(self.server, "s1.ics", "s1", "S1", start="20250301T100000Z")
        put(self.server, "s2.ics", "s2", "S2", start="20250302T100000Z")
        put(self.local, "l1.ics", "l1", "L1", start="20250303T100000Z")
        put(self.local, "l2.ics", "l2", "L2", start="20250304T100000Z")
        data = self.sync()
        assert self.sessions() == ["slow", "two-way"], self.sessions()  # first contact
        assert data["added_a"] + data["added_b"] == 4
        want = {"s1": "S1", "s2": "S2", "l1": "L1", "l2": "L2"}
        assert self.local_items() == self.server_items() == want


def scenario_two_way(c: Case) -> None:
    edit(c.server, "s1", "S1 edited on the server")
    file_of(c.server, "s2").unlink()
    put(c.server, "s3.ics", "s3", "S3 added on the server", start="20250305T100000Z")
    edit(c.local, "l1", "L1 edited here")
    file_of(c.local, "l2").unlink()
    put(c.local, "l3.ics", "l3", "L3 added here", start="20250306T100000Z")
    data = c.sync()
    assert c.sessions() == ["two-way", "two-way"]
    assert data["conflicts"] == 0
    want = {
        "s1": "S1 edited on the server",
        "s3": "S3 added on the server",
        "l1": "L1 edited here",
        "l3": "L3 added here",
    }
    assert c.local_items() == c.server_items() == want
    assert len(c.snapshot(c.server)) == 4
    data = c.sync()
    assert c.sessions() == ["two-way"]  # nothing to send: one session
    assert data == {k: 0 for k in data if k != "errors"} | {"errors": []}


def scenario_slow(c: Case) -> None:
    edit(c.server, "s1", "S1 edited on the server")
    put(c.server, "s3.ics", "s3", "S3", start="20250305T100000Z")
    edit(c.local, "l1", "L1 edited here")
    file_of(c.local, "l2").unlink()  # a slow sync deletes nothing: it comes back
    put(c.local, "l3.ics", "l3", "L3", start="20250306T100000Z")
    c.sync("slow")
    assert c.sessions() == ["slow", "two-way"]
    want = {
        "s1": "S1 edited on the server",
        "s2": "S2",
        "s3": "S3",
        "l1": "L1 edited here",
        "l2": "L2",
        "l3": "L3",
    }
    assert c.local_items() == c.server_items() == want
    assert len(c.snapshot(c.server)) == len(c.snapshot(c.local)) == 6
    c.sync()
    assert c.local_items() == c.server_items() == want


def scenario_refresh_from_server(c: Case) -> None:
    edit(c.server, "s2", "S2 edited on the server")
    edit(c.local, "s1", "S1 edited here")
    put(c.local, "l3.ics", "l3", "L3 only here", start="20250306T100000Z")
    before = c.snapshot(c.server)
    c.sync(c.refresh_from_server)
    assert c.sessions() == ["refresh-from-server"]
    want = {"s1": "S1", "s2": "S2 edited on the server", "l1": "L1", "l2": "L2"}
    assert c.local_items() == c.server_items() == want
    assert c.snapshot(c.server) == before  # the server was only read
    c.sync()
    assert c.local_items() == c.server_items() == want


def scenario_refresh_to_server(c: Case) -> None:
    edit(c.server, "s1", "S1 edited on the server")
    put(c.server, "s3.ics", "s3", "S3 only on the server", start="20250305T100000Z")
    file_of(c.server, "l1").unlink()
    edit(c.local, "l2", "L2 edited here")
    before = c.snapshot(c.local)
    c.sync(c.refresh_to_server)
    assert c.sessions() == ["refresh-from-client"]
    want = {"s1": "S1", "s2": "S2", "l1": "L1", "l2": "L2 edited here"}
    assert c.server_items() == c.local_items() == want
    assert len(c.snapshot(c.server)) == 4  # what only the server had is gone
    assert c.snapshot(c.local) == before
    c.sync()
    assert c.local_items() == c.server_items() == want


def scenario_one_way_from_server(c: Case) -> None:
    edit(c.server, "s1", "S1 edited on the server")
    file_of(c.server, "s2").unlink()
    put(c.server, "s3.ics", "s3", "S3 added on the server", start="20250305T100000Z")
    edit(c.local, "l1", "L1 edited here (waits)")
    c.sync(c.from_server)
    assert c.sessions() == ["one-way-from-server"]
    server = {"s1": "S1 edited on the server", "s3": "S3 added on the server", "l2": "L2"}
    assert c.local_items() == server | {"l1": "L1 edited here (waits)"}
    assert c.server_items() == server | {"l1": "L1"}
    c.sync()  # what waited goes now
    assert c.local_items() == c.server_items() == server | {"l1": "L1 edited here (waits)"}


def scenario_one_way_to_server(c: Case) -> None:
    edit(c.local, "l1", "L1 edited here")
    file_of(c.local, "l2").unlink()
    put(c.local, "l3.ics", "l3", "L3 added here", start="20250306T100000Z")
    edit(c.server, "s1", "S1 edited on the server (waits)")
    c.sync(c.to_server)
    assert c.sessions() == ["two-way", "two-way"]  # the server's change waits in the mirror
    local = {"s2": "S2", "l1": "L1 edited here", "l3": "L3 added here"}
    assert c.server_items() == local | {"s1": "S1 edited on the server (waits)"}
    assert c.local_items() == local | {"s1": "S1"}
    c.sync()
    assert c.local_items() == c.server_items() == local | {"s1": "S1 edited on the server (waits)"}


SCENARIOS = {
    "two-way": scenario_two_way,
    "slow": scenario_slow,
    "refresh-from-server": scenario_refresh_from_server,
    "refresh-to-server": scenario_refresh_to_server,
    "one-way-from-server": scenario_one_way_from_server,
    "one-way-to-server": scenario_one_way_to_server,
}
PATTERNS = ["0000", "0111", "1011", "0110", "1101", "1010"]  # encoding, format, auth, side


def _settings(bits: str) -> Settings:
    e, f, a, s = (b == "1" for b in bits)
    return Settings(
        encoding="xml" if e else "wbxml",
        fmt="vcal10" if f else "ical20",
        auth="basic" if a else "md5",
        side="a" if s else "b",
    )


MATRIX: list[tuple[str, Settings]] = []
for _mode, _bits in zip(SCENARIOS, PATTERNS, strict=True):
    MATRIX.append((_mode, _settings(_bits)))
    MATRIX.append((_mode, _settings("".join("1" if b == "0" else "0" for b in _bits))))


def _id(row: tuple[str, Settings]) -> str:
    mode, s = row
    return f"{mode}-{s.encoding}-{s.fmt}-{s.auth}-side_{s.side}"


def test_the_matrix_covers_every_value_and_pair() -> None:
    factors = ("encoding", "fmt", "auth", "side")
    for mode in SCENARIOS:
        rows = [s for m, s in MATRIX if m == mode]
        for f in factors:
            assert len({getattr(s, f) for s in rows}) == 2, (mode, f)
    for i, x in enumerate(factors):
        for y in factors[i + 1 :]:
            assert len({(getattr(s, x), getattr(s, y)) for _, s in MATRIX}) == 4, (x, y)


@pytest.mark.parametrize("row", MATRIX, ids=_id)
def test_matrix(
    tmp_path: Path,
    syncevolution: SyncEvolution,
    caplog: pytest.LogCaptureFixture,
    row: tuple[str, Settings],
) -> None:
    mode, settings = row
    case = Case(tmp_path, syncevolution, settings, caplog)
    case.setup()
    SCENARIOS[mode](case)


# -- beyond the matrix ----------------------------------------------------------------------


def test_a_slow_sync_forced_by_the_server_duplicates_nothing(
    tmp_path: Path, syncevolution: SyncEvolution, caplog: pytest.LogCaptureFixture
) -> None:
    c = Case(tmp_path, syncevolution, Settings(), caplog)
    c.setup()
    db = sqlite3.connect(tmp_path / "state" / "stores" / "server" / "syncml-client.sqlite")
    db.execute("UPDATE datastores SET our_anchor = '20000101T000000Z'")  # lost in a crash
    db.commit()
    db.close()
    edit(c.server, "s1", "S1 edited on the server")
    edit(c.local, "l1", "L1 edited here")
    c.sync()
    assert c.sessions() == ["slow!", "two-way"]  # 508 from the server, then our change
    want = {"s1": "S1 edited on the server", "s2": "S2", "l1": "L1 edited here", "l2": "L2"}
    assert c.local_items() == c.server_items() == want
    assert len(c.snapshot(c.server)) == len(c.snapshot(c.local)) == 4


def test_hundreds_of_items_cross_the_servers_message_size(
    tmp_path: Path, syncevolution: SyncEvolution, caplog: pytest.LogCaptureFixture
) -> None:
    """SyncEvolution's MaxMsgSize is 150000: both packages span several messages."""
    c = Case(tmp_path, syncevolution, Settings(encoding="xml"), caplog)
    text = " ".join(["lorem ipsum"] * 40)
    for n in range(150):
        put(
            c.server,
            f"s{n}.ics",
            f"s{n}",
            f"S{n} {text}",
            start=f"2025030{n % 9 + 1}T1{n % 10}0000Z",
        )
        put(
            c.local,
            f"l{n}.ics",
            f"l{n}",
            f"L{n} {text}",
            start=f"2025040{n % 9 + 1}T1{n % 10}0000Z",
        )
    c.sync()
    assert len(c.local_items()) == len(c.server_items()) == 300
    assert c.local_items() == c.server_items()


def test_an_item_larger_than_a_message_goes_in_chunks(
    tmp_path: Path, syncevolution: SyncEvolution, caplog: pytest.LogCaptureFixture
) -> None:
    c = Case(tmp_path, syncevolution, Settings(), caplog)
    big = "Ω long description " * 9000  # ~190 kB > the server's MaxMsgSize of 150000
    put(c.local, "big.ics", "big", "Big", extra=f"DESCRIPTION:{big}")
    c.sync()
    from tests.syncml_client.harness import unfold

    assert big.strip() in unfold(file_of(c.server, "big").read_bytes()).replace("\\,", ",")
    assert c.server_items() == {"big": "Big"}


def test_wrong_password_is_a_clear_error_and_changes_nothing(
    tmp_path: Path, syncevolution: SyncEvolution, caplog: pytest.LogCaptureFixture
) -> None:
    c = Case(tmp_path, syncevolution, Settings(), caplog, password="Wr0ng-Passw0rd")
    put(c.local, "l1.ics", "l1", "L1")
    put(c.server, "s1.ics", "s1", "S1")
    before_local, before_server = c.snapshot(c.local), c.snapshot(c.server)
    caplog.set_level(logging.DEBUG)
    code, data, out = c.run()
    assert code == 1
    assert "refused the credentials" in data["stopped"] and "'test'" in data["stopped"]
    assert "Wr0ng-Passw0rd" not in out + caplog.text
    assert c.snapshot(c.local) == before_local and c.snapshot(c.server) == before_server


class Killer:
    """Kills the server right after it handled our message number ``at`` of a run."""

    def __init__(self, server: SyncEvolution, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.count = 0
        self.at: int | None = None
        original = HttpTransport.post

        def post(transport: HttpTransport, *args: Any, **kw: Any) -> tuple[bytes, str]:
            answer = original(transport, *args, **kw)
            self.count += 1
            if self.count == self.at:
                self.server.kill()
                raise TransportError("the connection broke: the server died (test)")
            return answer

        monkeypatch.setattr(HttpTransport, "post", post)

    def arm(self, at: int) -> None:
        self.count, self.at = 0, at


def test_the_server_dying_mid_session_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL after it took our changes (package 3), then after it took our Map
    (package 5); in between it is unreachable; restarted, the syncs converge."""
    server = SyncEvolution(tmp_path / "se", stores=1).start()
    try:
        c = Case(tmp_path / "c", server, Settings(), caplog)
        c.setup()
        killer = Killer(server, monkeypatch)
        # 1. our changes reach the server, its answer never reaches us
        edit(c.local, "l1", "L1 edited here")
        file_of(c.local, "l2").unlink()
        put(c.local, "l3.ics", "l3", "L3 added here", start="20250306T100000Z")
        edit(c.server, "s1", "S1 edited on the server")
        killer.arm(5)  # list: 3 round trips (receives S1); flush: the 2nd carries our changes
        code, data, out = c.run()
        assert code == 1 and data["errors"], out
        assert all("connection broke" in e["message"] for e in data["errors"])
        # 2. the server is gone: the pair is skipped, nothing is taken for deleted
        before = c.snapshot(c.local)
        code, data, out = c.run()
        assert code == 1 and "cannot reach the SyncML server" in data["stopped"], out
        assert c.snapshot(c.local) == before
        # 3. back again: what it took is not doubled, what it missed arrives
        server.start()
        c.sync()
        want = {"s1": "S1 edited on the server", "s2": "S2", "l1": "L1 edited here"}
        want["l3"] = "L3 added here"
        assert c.local_items() == c.server_items() == want
        assert len(c.snapshot(c.server)) == len(c.snapshot(c.local)) == 4
        # 4. it dies after taking our Map for items it sent us
        put(c.server, "s4.ics", "s4", "S4 added on the server", start="20250307T100000Z")
        put(c.server, "s5.ics", "s5", "S5 added on the server", start="20250308T100000Z")
        killer.arm(3)
        code, data, out = c.run()
        assert code == 1 and data["stopped"], out
        server.start()
        for _ in range(2):
            c.sync()
        want |= {"s4": "S4 added on the server", "s5": "S5 added on the server"}
        assert c.local_items() == c.server_items() == want
        assert len(c.snapshot(c.server)) == len(c.snapshot(c.local)) == 6
        c.sync()
        assert c.local_items() == c.server_items() == want
    finally:
        server.stop()
