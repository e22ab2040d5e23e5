"""Secure by default: safe XML, TLS verification (and ca_file), Basic and Digest auth
against real front ends, credentials never shown."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calsync.items import Item
from calsync.stores import StoreUnavailable
from calsync.stores.caldav import xml
from tests.conftest import ROOT, event
from tests.pki import make_pki
from tests.stores.caldav.conftest import make_store
from tests.stores.caldav.helpers import config
from tests.stores.caldav.peers import PASSWORD, USER, Peer, free_port, peer_root, stop_pid
from tests.stores.caldav.proxy import Proxy

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>&lol3;</D:href></D:response></D:multistatus>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>&xxe;</D:href></D:response></D:multistatus>"""


@pytest.mark.parametrize("body", [BOMB, EXTERNAL, b"<D:multistatus xmlns:D='DAV:'>"])
def test_hostile_or_broken_xml_is_refused(body: bytes) -> None:
    with pytest.raises(xml.XmlError):
        xml.parse_multistatus(body)


@pytest.mark.peer
def test_tls_is_verified_by_default(xandikos: Peer, tmp_path: Path) -> None:
    store = make_store(xandikos, xandikos.calendar, tmp_path / "c", verify_tls=True)
    with pytest.raises(StoreUnavailable, match="certificate"):
        store.list()
    store.close()


@pytest.fixture
def tls_front(radicale: Peer, tmp_path: Path) -> Iterator[tuple[Proxy, Path]]:
    """Radicale behind a TLS proxy whose certificate comes from our own test CA."""
    ca, cert, key = make_pki(tmp_path / "pki")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    proxy = Proxy(radicale.base, tls=ctx).start()
    yield proxy, ca
    proxy.stop()


@pytest.mark.peer
def test_ca_file(radicale: Peer, tls_front: tuple[Proxy, Path], tmp_path: Path) -> None:
    proxy, ca = tls_front
    url = proxy.url + "/test/calendar/"
    store = make_store(radicale, url, tmp_path / "a", verify_tls=True)
    with pytest.raises(StoreUnavailable, match="certificate"):
        store.list()
    store.close()
    store = make_store(radicale, url, tmp_path / "b", verify_tls=True, ca_file=str(ca))
    store.list()
    assert store.last_listing == "full"
    store.close()


@pytest.fixture
def digest_front(radicale: Peer, davical: Peer) -> Iterator[str]:
    """Apache (installed with DAViCal) with mod_auth_digest, proxying to Radicale."""
    port = free_port()
    d = peer_root()  # Apache's children run as www-data: not below a 0700 tmp dir
    realm = "calsync digest"
    ha1 = hashlib.md5(f"{USER}:{realm}:{PASSWORD}".encode()).hexdigest()
    (d / "digest").write_text(f"{USER}:{realm}:{ha1}\n")
    (d / "digest").chmod(0o644)
    mods = "/usr/lib/apache2/modules"
    basic = "Basic " + __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conf = f"""ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {d}/apache2.pid
DefaultRuntimeDir {d}
Mutex file:{d} default
User www-data
Group www-data
ErrorLog {d}/error.log
LoadModule mpm_prefork_module {mods}/mod_mpm_prefork.so
LoadModule authn_core_module {mods}/mod_authn_core.so
LoadModule authn_file_module {mods}/mod_authn_file.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule authz_user_module {mods}/mod_authz_user.so
LoadModule auth_digest_module {mods}/mod_auth_digest.so
LoadModule headers_module {mods}/mod_headers.so
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_http_module {mods}/mod_proxy_http.so
<Location />
  AuthType Digest
  AuthName "{realm}"
  AuthDigestProvider file
  AuthUserFile {d}/digest
  Require valid-user
  RequestHeader set Authorization "{basic}"
</Location>
ProxyPass / http://127.0.0.1:{radicale.port}/
"""
    (d / "apache2.conf").write_text(conf)
    proc = subprocess.Popen(
        ["/usr/sbin/apache2", "-f", str(d / "apache2.conf"), "-DFOREGROUND"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(100):
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None:
                pytest.fail(f"apache did not start: {proc.stderr.read() if proc.stderr else ''!r}")
            time.sleep(0.1)
    yield base
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)
    stop_pid(proc.pid)
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.peer
def test_digest_auth(radicale: Peer, digest_front: str, tmp_path: Path) -> None:
    url = digest_front + "/test/calendar/"
    store = make_store(radicale, url, tmp_path / "cache")
    store.list()
    assert store._client is not None and store._client.auth is not None
    assert store._client.auth.scheme == "digest"
    id, version = store.add(Item.from_bytes(event("digest@calsync.test")))
    new = store.update(id, Item.from_bytes(event("digest@calsync.test", "x")), version)
    store.delete(id, new)
    store.list()
    store.close()
    # the next run remembers Digest; a no-change sync is the challenge + one PROPFIND
    store = make_store(radicale, url, tmp_path / "cache")
    store.list()
    assert store._client is not None and store._client.requests == 2
    store.close()
    wrong = make_store(radicale, url, tmp_path / "other")
    wrong._password_source = lambda: "not-the-password"
    with pytest.raises(StoreUnavailable, match="401"):
        wrong.list()
    wrong.close()


@pytest.mark.peer
def test_credentials_never_shown(radicale: Peer, tmp_path: Path) -> None:
    """Wrong and right passwords, -vv and --json: the password appears nowhere."""
    secret = "s3cr3t-Pa55-word-xyzzy"
    vdir = tmp_path / "vdir"
    vdir.mkdir()
    (vdir / "a.ics").write_bytes(event("cred@calsync.test"))
    cfg = config(tmp_path, radicale.calendar, vdir)
    text = cfg.path.read_text().replace(f'password = "{PASSWORD}"', f'password = "{secret}"')
    cfg.path.write_text(text)
    cfg.path.chmod(0o600)  # it holds a password
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALSYNC_DEBUG": "1"}
    out = []
    for args in (["-vv", "sync"], ["sync", "--json"], ["status", "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "calsync", "--config", str(cfg.path), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        out.append(proc.stdout + proc.stderr)
    assert "401" in out[0] or "denied" in out[0].lower(), out[0]
    # now with a password_command that prints the right password
    cmd = f"printf '%s\\n' {PASSWORD}"
    cfg.path.write_text(text.replace(f'password = "{secret}"', f'password_command = "{cmd}"'))
    proc = subprocess.run(
        [sys.executable, "-m", "calsync", "--config", str(cfg.path), "-vv", "sync", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"added_b": 1' in proc.stdout
    for text_out in out:
        assert secret not in text_out
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
            assert b"Basic " not in f.read_bytes(), f
