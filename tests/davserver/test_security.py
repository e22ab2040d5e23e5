"""Security of the CalDAV endpoint: no anonymous access, TLS off loopback, no secret logged."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from calsync.config import ConfigError, parse
from calsync.gateway.app import create_app, features_for
from calsync.gateway.server import listen_options
from tests.davserver.helpers import PASSWORD, USER, Gateway, config_text, ics, start
from tests.gateway.helpers import env_for, free_port, wait_for


@pytest.mark.parametrize(
    "method,path",
    [
        ("OPTIONS", "/dav/"),
        ("PROPFIND", "/dav/"),
        ("PROPFIND", f"/dav/{USER}/hub/"),
        ("GET", f"/dav/{USER}/hub/"),
        ("REPORT", f"/dav/{USER}/hub/"),
        ("PUT", f"/dav/{USER}/hub/x.ics"),
        ("DELETE", f"/dav/{USER}/hub/x.ics"),
    ],
)
def test_nothing_is_served_anonymously(gw: Gateway, tmp_path: Path, method: str, path: str) -> None:
    r = gw.request(method, path, auth=None, content=ics("x@x") if method == "PUT" else None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert not list((tmp_path / "hub").iterdir())


def test_wrong_or_unknown_credentials_are_refused(gw: Gateway, tmp_path: Path) -> None:
    for auth in ((USER, "wrong"), ("mallory", PASSWORD), (USER, ""), ("", "")):
        r = gw.request("PUT", f"/dav/{USER}/hub/x.ics", auth=auth, content=ics("x@x"))
        assert r.status_code == 401, auth
    # a known user cannot reach another user's calendars
    r = gw.request(
        "PUT", f"/dav/{USER}/hub/x.ics", auth=("bob", "bobs-password"), content=ics("x@x")
    )
    assert r.status_code in (403, 404)
    assert not list((tmp_path / "hub").iterdir())
    assert gw.request("PROPFIND", f"/dav/{USER}/hub/").status_code == 207


async def _asgi(app: object, client: tuple[str, int], scheme: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=client)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://calsync.test") as c:
        return await c.request("PROPFIND", "/dav/", auth=(USER, PASSWORD))


def test_plain_http_from_another_machine_is_refused(tmp_path: Path) -> None:
    """Basic credentials cross a network only inside TLS (checked per request, too)."""
    import asyncio

    (tmp_path / "hub").mkdir()
    cfg, errors = parse(config_text(tmp_path), tmp_path / "config.toml")
    assert not errors
    app = create_app(features_for(cfg))
    r = asyncio.run(_asgi(app, ("192.0.2.7", 50000), "http"))
    assert r.status_code == 403 and "TLS" in r.text
    r = asyncio.run(_asgi(app, ("192.0.2.7", 50000), "https"))
    assert r.status_code == 207
    r = asyncio.run(_asgi(app, ("127.0.0.1", 50000), "http"))
    assert r.status_code == 207
    # and the server itself never listens off loopback without a certificate
    remote = parse(
        config_text(tmp_path) + '\n[server]\nlisten = "0.0.0.0:8765"\nallow_remote = true\n',
        tmp_path / "config.toml",
    )[0]
    with pytest.raises(ConfigError, match="without TLS"):
        listen_options(remote)


def test_passwords_are_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("calsync").setLevel(logging.DEBUG)  # Radicale logs at debug too, then
    try:
        g = start(tmp_path)
        try:
            assert logging.getLogger("radicale").getEffectiveLevel() == logging.DEBUG
            g.request("PUT", f"/dav/{USER}/hub/a.ics", content=ics("a@x"))
            g.request("PROPFIND", f"/dav/{USER}/hub/", headers={"Depth": "1"})
            g.request("PROPFIND", f"/dav/{USER}/hub/", auth=(USER, "Wr0ng-Secret-Guess"))
        finally:
            g.stop()
    finally:
        logging.getLogger("calsync").setLevel(logging.NOTSET)
    text = caplog.text
    assert "Successful login" in text or "a@x" in text  # the logs did record the session
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, token, "Wr0ng-Secret-Guess"):
        assert secret not in text


def test_the_daemon_log_holds_no_password(tmp_path: Path) -> None:
    """``calsync -vv serve`` (debug logs) through a session: the password never shows."""
    (tmp_path / "hub").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(config_text(tmp_path))
    config.chmod(0o600)
    port = free_port()
    env = env_for(tmp_path, config)
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "calsync", "-vv", "serve", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=err,
            stderr=err,
            cwd=tmp_path,
        )
        try:
            wait_for(lambda: "daemon.start" in log.read_text(), 30, "the daemon")
            base = f"http://127.0.0.1:{port}"
            r = httpx.put(f"{base}/dav/{USER}/hub/a.ics", content=ics("a@x"), auth=(USER, PASSWORD))
            assert r.status_code == 201
            r = httpx.request("PROPFIND", f"{base}/dav/", auth=(USER, "bad-guess-123"))
            assert r.status_code == 401
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "CalDAV" in text and "a@x" in text
    assert PASSWORD not in text and "bad-guess-123" not in text
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text


def test_a_client_over_tls_end_to_end(tmp_path: Path) -> None:
    """``[server] cert/key``: the real client logs in and syncs over https only."""
    import caldav

    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
         "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=pki, check=True, capture_output=True,
    )  # fmt: skip
    (tmp_path / "hub").mkdir()
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        config_text(tmp_path)
        + f'\n[server]\nlisten = "127.0.0.1:{port}"\ncert = "{pki}/cert.pem"\n'
        f'key = "{pki}/key.pem"\n'
    )
    config.chmod(0o600)
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "calsync", "serve"],
            env=env_for(tmp_path, config),
            stdout=err,
            stderr=err,
            cwd=tmp_path,
        )
        try:
            wait_for(lambda: "daemon.start" in log.read_text(), 30, "the daemon")
            url = f"https://127.0.0.1:{port}/dav/"
            with pytest.raises(httpx.HTTPError):  # plain HTTP is not spoken there
                httpx.request(
                    "PROPFIND", url.replace("https", "http"), auth=(USER, PASSWORD), timeout=2
                )
            client = caldav.DAVClient(
                url=url, username=USER, password=PASSWORD, ssl_verify_cert=str(pki / "cert.pem")
            )
            cals = client.principal().calendars()
            hub = next(c for c in cals if str(c.url).endswith("/hub/"))
            hub.save_event(ics("tls@x", "Over TLS"))
            client.close()  # a kept-alive connection would hold the server's shutdown
            assert "Over TLS" in (tmp_path / "hub" / "tls@x.ics").read_text()
        finally:
            proc.terminate()
            proc.wait(30)
