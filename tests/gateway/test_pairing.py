"""Pairing a phone (issue #23 item 2): the service's rules, the pairing page, the profile,
the QR codes, and app passwords at the endpoints (fast: in process, clocks injected).

The real thing (``calsync serve --lan``, a phone on another network namespace, the
caldav library and SyncEvolution over TLS) is ``test_lan.py``.
"""

from __future__ import annotations

import asyncio
import json
import plistlib
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.config import parse
from calsync.credentials import app_passwords, check
from calsync.gateway.app import create_app
from calsync.gateway.pairing import (
    PAIRING_TTL,
    Gone,
    PairingRefused,
    Reach,
    fingerprint,
)
from calsync.gateway.pairpage import PairPage, pair_page
from calsync.gateway.tls import LocalCA
from tests.gateway import qr
from tests.gateway.helpers import PAIR_CONFIG

PHONE = "10.231.9.2"  # another machine
UA_IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
UA_ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0"

OWN = "the-accounts-own-password"
# account "test" (the name the SyncEvolution harness logs in with) for CalDAV and SyncML,
# "bob" for SyncML only
CONFIG = (
    PAIR_CONFIG
    + """
[caldav.users.test]
password = "{password}"
calendars = ["dir"]
[syncml.accounts.test]
password = "{password}"
calendar = "dir"
[syncml.accounts.bob]
password = "bobs-own"
calendar = "dir"
"""
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[PairPage, Clock, LocalCA]:
    cfg, errors = parse(CONFIG.format(tmp=tmp_path, password=OWN))
    assert not errors, errors
    ca = LocalCA(tmp_path / "state" / "tls")
    der = ca.ca_der()
    reach = Reach("10.231.9.1", 8765, tls=True, name="myhost.local", ca_der=der)
    page = pair_page(cfg, lambda: reach)
    clock = Clock()
    page.service.clock = clock
    return page, clock, ca


class Phone:
    """Requests reaching the app from another machine over plain HTTP, with a cookie jar."""

    def __init__(self, app: Any, agent: str = UA_IPHONE, address: str = PHONE) -> None:
        self.app = app
        self.agent = agent
        self.address = address
        self.cookies = httpx.Cookies()

    def get(self, url: str) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(self.address, 50000))  # type: ignore[arg-type]
            async with httpx.AsyncClient(
                transport=transport, cookies=self.cookies, headers={"User-Agent": self.agent}
            ) as c:
                r = await c.get(url)
                self.cookies.update(c.cookies)
                return r

        return asyncio.run(call())


def test_the_service_rules(setup: tuple[PairPage, Clock, LocalCA]) -> None:
    page, clock, _ = setup
    service = page.service
    # two accounts: which one must be said; an unknown one is refused by name
    with pytest.raises(PairingRefused, match="name the account"):
        service.start()
    with pytest.raises(PairingRefused, match="no account named 'carol'"):
        service.start("carol")
    with pytest.raises(PairingRefused, match="not a device name"):
        service.start("test", "my phone/1")
    first = service.start("test")
    second = service.start("test")
    assert (first.device, second.device) == ("phone", "phone-2")
    with pytest.raises(PairingRefused, match="exists already"):
        service.start("test", "phone")
    assert first.url.startswith("http://10.231.9.1:8765/pair/") and first.url != second.url
    assert first.expires == clock.now + PAIRING_TTL
    assert first.ca_fingerprint == fingerprint(service.reach().ca_der or b"")
    # nothing is stored before a phone fetched its credentials
    assert service.devices() == []
    token = first.url.rsplit("/", 1)[1]
    pairing, cookie = service.claim(token, None)
    assert service.claim(token, cookie)[0] is pairing  # the same client again
    with pytest.raises(Gone, match="another device"):
        service.claim(token, None)
    with pytest.raises(Gone, match="another device"):
        service.claim(token, cookie + "x")
    app = service.deliver(pairing)
    assert service.deliver(pairing) == app  # stored once
    assert [d.name for d in service.devices()] == ["phone"]
    # 10 minutes later every link of it is gone
    clock.now += PAIRING_TTL
    with pytest.raises(Gone, match="expired"):
        service.claim(token, cookie)
    assert not service.is_open()
    # revoking: the device's password stops working, the listeners hear of it
    heard: list[str] = []
    service.on_revoke.append(lambda a: heard.append(a.device))
    assert check("test", app.password, OWN, service.passwords) is not None
    assert service.revoke("phone").name == "phone" and heard == ["phone"]
    assert check("test", app.password, OWN, service.passwords) is None
    with pytest.raises(LookupError):
        service.revoke("phone")
    # the QR codes, read back as pixels, are the URL
    assert qr.from_terminal(second.qr_text) == [second.url]
    assert qr.from_svg(second.qr_svg) == [second.url]


def test_the_page_one_client_then_410(setup: tuple[PairPage, Clock, LocalCA]) -> None:
    page, clock, ca = setup
    app = create_app([page])
    # no pairing open: plain HTTP from another machine gets nothing but a 410
    assert Phone(app).get("http://10.231.9.1:8765/pair/whatever").status_code == 410
    assert Phone(app).get("http://10.231.9.1:8765/pairing").status_code == 403  # not /pair
    offer = page.service.start("test", "iphone")
    phone = Phone(app)
    r = phone.get(offer.url)
    assert r.status_code == 200, r.text
    assert offer.ca_fingerprint and offer.ca_fingerprint in r.text
    # the iPhone's section first; the cookie binds the pairing to this client
    assert r.text.index("id=apple") < r.text.index("id=android") < r.text.index("id=syncml")
    cookie = r.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", f"Path=/pair/{offer.url.rsplit('/', 1)[1]}"):
        assert attribute.lower() in cookie.lower(), cookie
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none'
    # plain HTTP reaches the pairing page only: the rest stays refused meanwhile
    assert Phone(app).get("http://10.231.9.1:8765/api/status").status_code == 403
    # the profile: a valid plist with every field iOS requires
    r = phone.get(offer.url + "/calsync.mobileconfig")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(r.content)
    assert profile["PayloadType"] == "Configuration"
    payloads = [profile, *profile["PayloadContent"]]
    for p in payloads:
        for key in ("PayloadType", "PayloadIdentifier", "PayloadUUID", "PayloadVersion"):
            assert key in p, (key, p.get("PayloadType"))
        assert p["PayloadVersion"] == 1
    assert len({p["PayloadUUID"] for p in payloads}) == 3
    root, dav = profile["PayloadContent"]
    assert root["PayloadType"] == "com.apple.security.root"
    assert root["PayloadContent"] == ca.ca_der()  # DER
    assert dav["PayloadType"] == "com.apple.caldav.account"
    assert dav["CalDAVHostName"] == "myhost.local"  # announced over mDNS: survives new leases
    assert dav["CalDAVPort"] == 8765 and dav["CalDAVUseSSL"] is True
    assert dav["CalDAVPrincipalURL"] == "https://myhost.local:8765/dav/test/"
    assert dav["CalDAVUsername"] == "test"
    stored = app_passwords(page.service.passwords.path.parent).get("iphone")
    assert stored is not None and dav["CalDAVPassword"] == stored.password
    # the same client may come back; another gets 410, and so does everyone at the end
    assert phone.get(offer.url + "/ca.crt").content == ca.ca_der()
    other = Phone(app, UA_ANDROID, "10.231.9.3")
    assert other.get(offer.url).status_code == 410
    assert other.get(offer.url + "/calsync.mobileconfig").status_code == 410
    clock.now += PAIRING_TTL + 1
    assert phone.get(offer.url).status_code == 410
    assert phone.get(offer.url + "/account").status_code == 410
    # the device keeps its password after the pairing closed; the file is the user's only
    path = page.service.passwords.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_expired_link_is_410(setup: tuple[PairPage, Clock, LocalCA]) -> None:
    """From this machine (no PlainGuard in the way): the expired URL says Gone."""
    page, clock, _ = setup
    app = create_app([page])
    offer = page.service.start("test")
    near = Phone(app, address="127.0.0.1")
    clock.now += PAIRING_TTL - 1
    assert near.get(offer.url).status_code == 200
    clock.now += 2
    r = near.get(offer.url + "/calsync.mobileconfig")
    assert r.status_code == 410 and "expired" in r.text
    assert page.service.devices() == []  # never delivered: nothing left behind
    # a token never issued answers the same
    assert near.get("http://10.231.9.1:8765/pair/nonsense").status_code == 410


def test_android_and_syncml_phones_get_the_account_spelled_out(
    setup: tuple[PairPage, Clock, LocalCA],
) -> None:
    page, _, ca = setup
    app = create_app([page])
    offer = page.service.start("test", "pixel")
    phone = Phone(app, UA_ANDROID)
    r = phone.get(offer.url)
    assert r.text.index("id=android") < r.text.index("id=apple")
    ca_file = phone.get(offer.url + "/ca.crt")
    assert ca_file.headers["content-type"] == "application/x-x509-ca-cert"
    assert ca_file.content == ca.ca_der()
    r = phone.get(offer.url + "/account")
    password = app_passwords(page.service.passwords.path.parent).get("pixel")
    assert password is not None
    for text in (
        password.password,
        "https://10.231.9.1:8765/dav/",
        "caldavs://test@10.231.9.1:8765/dav/",
        "https://10.231.9.1:8765/sync",
        "calendar",
        offer.ca_fingerprint or "?",
    ):
        assert text in r.text, text
    # a SyncML-only account: no CalDAV payload, the datastores named
    bob = page.service.start("bob", "nokia")
    nokia = Phone(app, "Nokia6300/2.0 SyncML")
    profile = plistlib.loads(nokia.get(bob.url + "/calsync.mobileconfig").content)
    assert [p["PayloadType"] for p in profile["PayloadContent"]] == ["com.apple.security.root"]
    assert "https://10.231.9.1:8765/sync" in nokia.get(bob.url + "/account").text


def test_app_passwords_at_caldav_and_syncml(tmp_path: Path) -> None:
    """One store, every endpoint: the CalDAV check and SyncML's basic and md5 accept a
    device's app password with the account's name, and stop at once when revoked."""
    from calsync.davserver.config import load as dav_load
    from calsync.syncml import auth
    from calsync.syncml.backend import Backend
    from calsync.syncml.config import load as syncml_load
    from calsync.syncml.session import LoadAppPasswords

    cfg, errors = parse(CONFIG.format(tmp=tmp_path, password=OWN))
    assert not errors
    store = app_passwords(cfg.state_dir)
    app = store.add("test", "iphone")
    dav = dav_load(cfg)
    assert dav.check("test", app.password) and dav.check("test", OWN)
    assert not dav.check("bob", app.password)  # it belongs to test
    backend = Backend(cfg, syncml_load(cfg).accounts)
    assert backend(LoadAppPasswords("test")) == [("iphone", app.password)]
    nonce = auth.new_nonce()
    md5 = auth.md5_credential("test", app.password, auth.decode_nonce(nonce))
    verdict = auth.check(auth.MD5, "b64", md5, user="test", password=app.password, nonce=nonce)
    assert verdict.ok
    # revoked by another process (the command line, no daemon): seen at the next check
    other = type(store)(store.path)
    assert other.remove("iphone") is not None
    assert not dav.check("test", app.password)
    assert backend(LoadAppPasswords("test")) == []
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_revoking_a_device_ends_its_syncml_sessions(tmp_path: Path) -> None:
    """Sessions that logged in with the revoked app password are dropped (their next
    message gets 404); the account's other sessions go on."""
    from calsync.credentials import AppPassword
    from calsync.gateway.syncml import SyncMLFeature, _Entry
    from calsync.syncml.session import ServerSession

    cfg, errors = parse(CONFIG.format(tmp=tmp_path, password=OWN))
    assert not errors
    feature = SyncMLFeature.from_config(cfg)
    endpoint = feature.endpoint
    for token, device in (("s1", "iphone"), ("s2", None), ("s3", "pixel")):
        session = ServerSession(endpoint.server, url="https://x/sync", token=token, now=0.0)
        session.app_password = device
        endpoint.sessions[token] = _Entry(session, PHONE)
    feature.device_revoked(AppPassword("iphone", "test", "pw", 0.0))
    assert sorted(endpoint.sessions) == ["s2", "s3"]


@pytest.mark.slow
def test_the_command_line_without_a_daemon(tmp_path: Path) -> None:
    """``calsync pair`` needs the daemon (it serves the page) and says so; ``devices``
    works on the store alone, never printing a password unless asked with --show."""
    import subprocess
    import sys

    from tests.gateway.helpers import env_for

    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(tmp=tmp_path, password=OWN), encoding="utf-8")
    config.chmod(0o600)
    env = env_for(tmp_path, config)

    def calsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "calsync", *args],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    out = calsync("pair", "test")
    assert out.returncode == 2, out
    assert "no calsync daemon runs" in out.stderr and "calsync serve --lan" in out.stderr
    assert "no paired devices" in calsync("devices").stdout
    app = app_passwords(tmp_path / "state").add("test", "iphone")
    listed = calsync("devices")
    assert "iphone" in listed.stdout and app.password not in listed.stdout + listed.stderr
    as_json = calsync("devices", "--json")
    assert app.password not in as_json.stdout
    assert [d["name"] for d in json.loads(as_json.stdout)["devices"]] == ["iphone"]
    assert app.password in calsync("devices", "--show", "iphone").stdout
    assert calsync("devices", "--show", "nope").returncode == 2
    out = calsync("devices", "revoke", "iphone")
    assert out.returncode == 0 and "revoked iphone" in out.stdout
    assert app_passwords(tmp_path / "state").get("iphone") is None
    assert calsync("devices", "revoke", "iphone").returncode == 2


def test_with_the_users_own_certificate_the_link_is_https(tmp_path: Path) -> None:
    """``allow_remote`` with the user's certificate: that port speaks TLS only, so the
    link is https, and the profile carries no CA (the phone trusts that certificate)."""
    cfg, errors = parse(CONFIG.format(tmp=tmp_path, password=OWN))
    assert not errors
    page = pair_page(cfg, lambda: Reach("10.231.9.1", 8443, tls=True, clear=False))
    offer = page.service.start("test")
    assert offer.url.startswith("https://10.231.9.1:8443/pair/") and offer.ca_fingerprint is None
    phone = Phone(create_app([page]))
    r = phone.get(offer.url + "/calsync.mobileconfig")
    kinds = [p["PayloadType"] for p in plistlib.loads(r.content)["PayloadContent"]]
    assert kinds == ["com.apple.caldav.account"]
    # in LAN mode the link is plain HTTP unless asked (--secure)
    lan = pair_page(cfg, lambda: Reach("10.231.9.1", 8765, tls=True, ca_der=b"x"))
    assert lan.service.start("test").url.startswith("http://")
    assert lan.service.start("test", secure=True).url.startswith("https://")
