"""Who sees and does what on the web page (``gateway/authz.py``), route by route.

Two accounts on one gateway: alice (a CalDAV user on the store ``dir`` of
pair ``p``) and bob (a CalDAV user and a SyncML account of the same name, on
``bobdir`` of pair ``q``), each with a conflict, saved versions, a CalDAV
program that logged in and a paired device.  A session of one account must
not see the other's pair, conflict, versions or devices (not even their
names) nor act on them -- and an answer about the other's object is the
answer about one that does not exist -- while the owner (this machine, the
API token) still sees and does everything.  A session opened with an app
password sees its account but cannot pair or revoke devices, and ends when
its device is revoked.

Requests go to the real app in process (``test_web_security.run``: the LAN
is 192.0.2.7 over TLS); the page in chromium is ``test_web_browser.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.config import parse
from calsync.gateway.app import create_app, features_for
from calsync.gateway.daemon import Daemon
from calsync.gateway.pairing import Reach
from calsync.gateway.pairpage import pair_page
from calsync.gateway.web import WebFeature
from calsync.sync.runner import run_pair
from tests.conftest import event
from tests.gateway.helpers import PAIR_CONFIG
from tests.gateway.test_web_security import HERE, LAN, csrf_of, run

ALICE_PW = "alice-Pa55-w0rd"
BOB_PW = "bob-Pa55-w0rd"
ACCOUNTS = f"""
[stores.bobdir]
type = "vdir"
path = "{{tmp}}/bobdir"
create = true
[stores.bobfile]
type = "ics"
path = "{{tmp}}/bob.ics"
[pairs.q]
a = "bobdir"
b = "bobfile"
conflict = "newest"
[caldav.users.alice]
password = "{ALICE_PW}"
calendars = ["dir"]
[caldav.users.bob]
password = "{BOB_PW}"
calendars = ["bobdir"]
[syncml.accounts.bob]
password = "{BOB_PW}"
calendar = "bobdir"
"""
ORIGIN = {"Origin": "https://gateway.example"}


@dataclass
class World:
    app: Any
    daemon: Daemon
    tmp: Path
    conflicts: dict[str, int]  # pair -> its conflict's number
    versions: dict[str, tuple[str, int]]  # pair -> (uid, number) of a saved version
    phones: dict[str, str]  # device -> its app password

    def files(self, who: str) -> dict[str, bytes]:
        """Everything in an account's stores (to see that nothing changed)."""
        folder, ics = ("dir", "file.ics") if who == "alice" else ("bobdir", "bob.ics")
        out = {p.name: p.read_bytes() for p in sorted((self.tmp / folder).glob("*.ics"))}
        out[ics] = (self.tmp / ics).read_bytes()
        return out

    def history_size(self) -> int:
        return len(self.daemon.history(None, 10000))


def conflicting_edits(tmp: Path, folder: str, ics: str, uid: str, who: str) -> None:
    """``uid`` edited in the vdir (newer: it wins) and in the .ics file (older)."""
    (tmp / folder / f"{uid}.ics").write_bytes(
        event(uid, f"{who} dir edit", last_modified="20250301T000000Z")
    )
    path = tmp / ics
    old = path.read_bytes()
    new = re.sub(rb"SUMMARY:[^\r\n]*", f"SUMMARY:{who} file edit".encode(), old)
    path.write_bytes(
        new.replace(b"LAST-MODIFIED:20250101T000000Z", b"LAST-MODIFIED:20250201T000000Z")
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "e1.ics").write_bytes(event("e1", "alice first"))
    (tmp_path / "bobdir").mkdir()
    (tmp_path / "bobdir" / "bobs-event.ics").write_bytes(event("bobs-event", "bob first"))
    config = tmp_path / "config.toml"
    config.write_text((PAIR_CONFIG + ACCOUNTS).format(tmp=tmp_path), encoding="utf-8")
    config.chmod(0o600)
    cfg, errors = parse(config.read_text(), config)
    assert not errors, errors
    for pair in ("p", "q"):
        assert not run_pair(cfg, pair).errors
    conflicting_edits(tmp_path, "dir", "file.ics", "e1", "alice")
    conflicting_edits(tmp_path, "bobdir", "bob.ics", "bobs-event", "bob")
    for pair in ("p", "q"):
        assert run_pair(cfg, pair).conflicts == 1
    daemon = Daemon(cfg, url="http://127.0.0.1:8765", config_path=None, watch=False)
    pairing = pair_page(cfg, lambda: Reach("127.0.0.1", 8765, tls=False))
    daemon.pairing = pairing.service
    features = [daemon, WebFeature(daemon), pairing, *features_for(cfg)]
    daemon.attach(features)
    conflicts = {c["pair"]: c["n"] for c in daemon.conflicts(100)}
    versions = {v["pair"]: (v["uid"], v["version"]) for v in daemon.history(None, 100)}
    assert set(conflicts) == {"p", "q"} and set(versions) == {"p", "q"}, (conflicts, versions)
    phones = {
        name: pairing.service.passwords.add(account, name).password
        for account, name in (
            ("alice", "alice-phone"),
            ("alice", "alice-tab"),
            ("bob", "bob-phone"),
        )
    }
    app = create_app(features)

    async def programs(c: httpx.AsyncClient) -> None:  # a CalDAV program of each account
        for user, pw, agent in (("alice", ALICE_PW, "AliceCal/1.0"), ("bob", BOB_PW, "BobCal/1.0")):
            r = await c.request(
                "PROPFIND",
                f"/dav/{user}/",
                auth=(user, pw),
                headers={"Depth": "0", "User-Agent": agent},
            )
            assert r.status_code == 207, r.text

    run(app, HERE, "http", programs)
    return World(app, daemon, tmp_path, conflicts, versions, phones)


async def log_in(c: httpx.AsyncClient, user: str, password: str) -> str:
    """Log in through the form; the page's CSRF token."""
    token = csrf_of((await c.get("/web/login")).text)
    r = await c.post("/web/login", data={"csrf": token, "user": user, "password": password})
    assert r.status_code == 303, (user, r.status_code, r.text)
    page = await c.get("/")
    assert page.status_code == 200
    return csrf_of(page.text)


def without_tokens(text: str) -> str:
    """``text`` without the session's CSRF token (random: it might spell anything)."""
    for token in re.findall(r'name="csrf" value="([^"]+)"', text):
        text = text.replace(token, "TOKEN")
    return text


def no_trace_of_bob(text: str, where: str) -> None:
    """Nothing of bob's: his name (which names his stores, item, devices and
    program too), his pair."""
    text = without_tokens(text)
    for secret in ("bob", 'data-pair="q"'):
        assert secret not in text.lower(), (where, secret, text[:3000])


def flash(page: str) -> list[str]:
    return re.findall(r'<p class="flash" role="status">([^<]*)</p>', page)


# -- what a session sees ---------------------------------------------------------------------


def test_an_account_sees_its_own_pairs_devices_conflicts_and_history_only(world: World) -> None:
    alice_n, bob_n = world.conflicts["p"], world.conflicts["q"]

    async def alice(c: httpx.AsyncClient) -> None:
        await log_in(c, "alice", ALICE_PW)
        page = (await c.get("/")).text
        # her own: pair p, her program and devices, her conflict
        assert 'data-pair="p"' in page and f'data-conflict="{alice_n}"' in page
        for mine in ("AliceCal/1.0", 'data-paired="alice-phone"', 'data-paired="alice-tab"'):
            assert mine in page, mine
        # "Pair a phone" for herself: no account to choose
        assert 'id="pair-button"' in page and "<select" not in page
        no_trace_of_bob(page, "/")
        assert f'data-conflict="{bob_n}"' not in page
        live = await c.get("/web/live")
        assert live.status_code == 200 and 'data-pair="p"' in live.text
        no_trace_of_bob(live.text, "/web/live")
        # the history: her versions, none of bob's (asked for or not)
        history = (await c.get("/web/history")).text
        assert "alice dir edit" in history or "alice file edit" in history
        no_trace_of_bob(history, "/web/history")
        uid, _ = world.versions["q"]
        r = await c.get("/web/history", params={"uid": uid})
        assert r.status_code == 200 and "No saved versions of" in r.text
        assert 'class="version"' not in r.text  # his UID is echoed, nothing of his more
        assert not re.search(r"bob (first|dir edit|file edit)", r.text)
        # her conflict opens; bob's is "not there", exactly as a number never used
        assert (await c.get(f"/web/conflicts/{alice_n}")).status_code == 200
        theirs = await c.get(f"/web/conflicts/{bob_n}")
        missing = await c.get("/web/conflicts/999999")
        assert theirs.status_code == missing.status_code == 404
        assert without_tokens(theirs.text).replace(str(bob_n), "N") == without_tokens(
            missing.text
        ).replace("999999", "N")
        no_trace_of_bob(theirs.text, "/web/conflicts/N")

    run(world.app, LAN, "https", alice)

    async def bob_basic(c: httpx.AsyncClient) -> None:
        # bob (CalDAV user and SyncML account: one account), with Basic credentials
        page = await c.get("/", auth=("bob", BOB_PW))
        assert page.status_code == 200
        assert 'data-pair="q"' in page.text and 'data-pair="p"' not in page.text
        assert "BobCal/1.0" in page.text and 'data-paired="bob-phone"' in page.text
        for alices in ("alice", "AliceCal", 'data-conflict="{alice_n}"'):
            assert alices not in page.text, alices

    run(world.app, LAN, "https", bob_basic)


def test_the_owner_sees_every_account(world: World) -> None:
    async def owner(c: httpx.AsyncClient) -> None:
        page = (await c.get("/")).text
        for both in ('data-pair="p"', 'data-pair="q"', "AliceCal/1.0", "BobCal/1.0"):
            assert both in page, both
        for n in world.conflicts.values():
            assert f'data-conflict="{n}"' in page
            assert (await c.get(f"/web/conflicts/{n}")).status_code == 200
        assert re.findall(r'<option value="([^"]+)"', page) == ["alice", "bob"]
        history = (await c.get("/web/history")).text
        assert "alice" in history and "bob" in history

    run(world.app, HERE, "http", owner)  # this machine

    async def token(c: httpx.AsyncClient) -> None:
        await log_in(c, "", world.daemon.token)
        page = (await c.get("/")).text
        assert 'data-pair="p"' in page and 'data-pair="q"' in page and "API token" in page

    run(world.app, LAN, "https", token)


# -- what a session does -----------------------------------------------------------------------


def test_an_account_syncs_its_own_pairs_only(world: World) -> None:
    scheduler = world.daemon.scheduler

    async def alice(c: httpx.AsyncClient) -> None:
        token = await log_in(c, "alice", ALICE_PW)
        theirs = await c.post("/web/sync", data={"csrf": token, "pair": "q"}, headers=ORIGIN)
        missing = await c.post("/web/sync", data={"csrf": token, "pair": "zz"}, headers=ORIGIN)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.text.replace("'q'", "X") == missing.text.replace("'zz'", "X")
        assert not scheduler.pair_json("q")["queued"]
        mine = await c.post("/web/sync", data={"csrf": token, "pair": "p"}, headers=ORIGIN)
        assert mine.status_code == 303 and scheduler.pair_json("p")["queued"]

    run(world.app, LAN, "https", alice)


def test_an_account_decides_its_own_conflicts_only(world: World) -> None:
    alice_n, bob_n = world.conflicts["p"], world.conflicts["q"]
    bobs = world.files("bob")

    async def alice(c: httpx.AsyncClient) -> None:
        token = await log_in(c, "alice", ALICE_PW)
        for n in (bob_n, 999999):  # bob's, and one that never was: the same answer
            r = await c.post(
                f"/web/conflicts/{n}/resolve", data={"csrf": token, "keep": "b"}, headers=ORIGIN
            )
            assert r.status_code == 303 and r.headers["location"] == f"/web/conflicts/{n}"
            after = await c.get(r.headers["location"])
            assert after.status_code == 404 and flash(after.text) == [f"no conflict number {n}"]
        # her own: decided, written
        r = await c.post(
            f"/web/conflicts/{alice_n}/resolve", data={"csrf": token, "keep": "b"}, headers=ORIGIN
        )
        assert r.status_code == 303
        assert "Kept the second version" in flash((await c.get(r.headers["location"])).text)[0]

    run(world.app, LAN, "https", alice)
    assert world.files("bob") == bobs  # nothing of bob's changed
    assert world.daemon.conflict(bob_n)["resolved"] is None  # type: ignore[index]
    assert world.daemon.conflict(alice_n)["resolved"]["keep"] == "b"  # type: ignore[index]
    assert b"alice file edit" in world.files("alice")["e1.ics"]

    async def owner(c: httpx.AsyncClient) -> None:  # the owner decides anyone's
        token = csrf_of((await c.get("/")).text)
        r = await c.post(f"/web/conflicts/{bob_n}/resolve", data={"csrf": token, "keep": "b"})
        assert r.status_code == 303

    run(world.app, HERE, "http", owner)
    assert b"bob file edit" in world.files("bob")["bobs-event.ics"]


def test_an_account_restores_its_own_versions_only(world: World) -> None:
    bob_uid, bob_v = world.versions["q"]
    alice_uid, alice_v = world.versions["p"]
    bobs, saved = world.files("bob"), world.history_size()

    async def alice(c: httpx.AsyncClient) -> None:
        token = await log_in(c, "alice", ALICE_PW)
        for uid, v in ((bob_uid, bob_v), (bob_uid, 999999)):
            form = {"csrf": token, "uid": uid, "version": str(v)}
            r = await c.post("/web/restore", data=form, headers=ORIGIN)
            assert r.status_code == 303
            after = await c.get(r.headers["location"])
            assert flash(after.text) == [f"no saved version {v} of {uid}"]
            assert 'class="version"' not in after.text
        # a version number of bob's under her own item's UID is no way in either
        form = {"csrf": token, "uid": alice_uid, "version": str(bob_v)}
        r = await c.post("/web/restore", data=form, headers=ORIGIN)
        assert flash((await c.get(r.headers["location"])).text) == [
            f"no saved version {bob_v} of {alice_uid}"
        ]
        assert world.files("bob") == bobs and world.history_size() == saved
        form = {"csrf": token, "uid": alice_uid, "version": str(alice_v)}
        r = await c.post("/web/restore", data=form, headers=ORIGIN)
        (said,) = flash((await c.get(r.headers["location"])).text)
        assert said.startswith(f"Version {alice_v} of {alice_uid} restored into"), said

    run(world.app, LAN, "https", alice)
    assert world.files("bob") == bobs
    assert world.history_size() == saved + 1  # her restore saved what it replaced


def test_an_account_pairs_for_itself_and_revokes_its_own_devices_only(world: World) -> None:
    service = world.daemon.pairing
    assert service is not None
    htmx = {**ORIGIN, "HX-Request": "true", "HX-Target": "pairing"}

    async def alice(c: httpx.AsyncClient) -> None:
        token = await log_in(c, "alice", ALICE_PW)
        for account in ("bob", "nobody"):  # another account is as unknown as none
            form = {"csrf": token, "account": account, "device": "sneaky"}
            r = await c.post("/web/pair", data=form, headers=htmx)
            assert r.status_code == 200
            assert f"Not paired: no account named &#39;{account}&#39; (accounts: alice)" in r.text
            assert 'class="offer"' not in r.text
        assert not service.is_open()
        # without naming one: her own
        r = await c.post("/web/pair", data={"csrf": token, "device": "new"}, headers=htmx)
        assert "of account alice" in r.text and service.is_open()
        # bob's device: "no device named", as for one never paired; still works
        for name in ("bob-phone", "never-paired"):
            r = await c.post(
                "/web/devices/revoke", data={"csrf": token, "device": name}, headers=ORIGIN
            )
            assert r.status_code == 303
            said = flash((await c.get("/")).text)
            assert said == [f"Not revoked: no device named &#39;{name}&#39;."], said
        assert service.passwords.get("bob-phone") is not None
        r = await c.request("PROPFIND", "/dav/bob/", auth=("bob", world.phones["bob-phone"]))
        assert r.status_code == 207
        # her own device: revoked
        form = {"csrf": token, "device": "alice-tab"}
        assert (await c.post("/web/devices/revoke", data=form, headers=ORIGIN)).status_code == 303
        assert service.passwords.get("alice-tab") is None

    run(world.app, LAN, "https", alice)

    async def owner(c: httpx.AsyncClient) -> None:
        token = csrf_of((await c.get("/")).text)
        r = await c.post("/web/devices/revoke", data={"csrf": token, "device": "bob-phone"})
        assert r.status_code == 303 and service.passwords.get("bob-phone") is None
        form = {"csrf": token, "account": "bob", "device": "bob-new"}
        r = await c.post(
            "/web/pair", data=form, headers={"HX-Request": "true", "HX-Target": "pairing"}
        )
        assert "of account bob" in r.text

    run(world.app, HERE, "http", owner)


def test_an_app_password_sees_its_account_but_cannot_pair_or_revoke(world: World) -> None:
    service = world.daemon.pairing
    assert service is not None

    async def phone(c: httpx.AsyncClient) -> None:
        token = await log_in(c, "alice", world.phones["alice-phone"])
        page = (await c.get("/")).text
        assert 'data-pair="p"' in page and "app password of alice-phone" in page
        no_trace_of_bob(page, "/ (app password)")
        assert 'id="pair-not-allowed"' in page and 'id="pair-button"' not in page
        assert 'class="revoke"' not in page
        # neither a new app password nor revoking one (another of hers, or its own)
        for path, form in (
            ("/web/pair", {"account": "alice", "device": "minted"}),
            ("/web/pair", {}),
            ("/web/devices/revoke", {"device": "alice-tab"}),
            ("/web/devices/revoke", {"device": "alice-phone"}),
        ):
            r = await c.post(path, data={**form, "csrf": token}, headers=ORIGIN)
            assert r.status_code == 403 and "own password" in r.text, (path, form, r.text)
        assert not service.is_open()
        assert service.passwords.get("alice-tab") and service.passwords.get("alice-phone")
        # what the phone could do itself: its account's pairs and conflicts
        r = await c.post("/web/sync", data={"csrf": token, "pair": "p"}, headers=ORIGIN)
        assert r.status_code == 303
        r = await c.post("/web/sync", data={"csrf": token, "pair": "q"}, headers=ORIGIN)
        assert r.status_code == 404
        # the device is revoked (by the owner): its session ends at once
        service.revoke("alice-phone")
        r = await c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/web/login"
        r = await c.post("/web/sync", data={"csrf": token, "pair": "p"}, headers=ORIGIN)
        assert r.status_code == 403

    run(world.app, LAN, "https", phone)
