"""LAN mode's certificates (issue #23 item 1): a local CA, a server certificate for this
machine's names, renewed near expiry and when an address changes, under the same CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from calsync.gateway.lan import LanFeature
from calsync.gateway.server import BackgroundServer
from calsync.gateway.tls import RENEW_BEFORE, SERVER_DAYS, LocalCA, Names, machine_names

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


class Machine:
    """Names and a clock the test moves."""

    def __init__(self) -> None:
        self.now = START
        self.addresses = [ipaddress.ip_address("10.231.0.7")]

    def names(self) -> Names:
        return machine_names(["127.0.0.1"], addresses=lambda: list(self.addresses))

    def ca(self, directory: Path) -> LocalCA:
        return LocalCA(directory, names=self.names, clock=lambda: self.now)


def server_cert(ca: LocalCA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ca.cert.read_bytes())


def test_first_use_makes_a_ca_and_a_certificate_phones_accept(tmp_path: Path) -> None:
    m = Machine()
    ca = m.ca(tmp_path / "state" / "tls")
    files = ca.ensure()
    assert files.renewed
    # the private keys are the user's only, in a directory that is too
    for key in (ca.ca_key, ca.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(ca.dir.stat().st_mode) == 0o700
    root = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    cert = server_cert(ca)
    cert.verify_directly_issued_by(root)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    host = socket.gethostname().split(".")[0].lower()
    dns = set(san.get_values_for_type(x509.DNSName))
    assert {host, f"{host}.local", "localhost"} <= dns, dns
    ips = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert {"10.231.0.7", "127.0.0.1", "::1"} <= ips, ips
    # Apple's rules for certificates under a user-installed root
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 825
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # a second start reuses both
    ca_before, cert_before = ca.ca_cert.read_bytes(), ca.cert.read_bytes()
    assert not ca.ensure().renewed
    assert (ca.ca_cert.read_bytes(), ca.cert.read_bytes()) == (ca_before, cert_before)


def test_renewed_near_expiry_and_when_an_address_changes_under_the_same_ca(
    tmp_path: Path,
) -> None:
    m = Machine()
    ca = m.ca(tmp_path / "tls")
    ca.ensure()
    root = ca.ca_cert.read_bytes()
    first = server_cert(ca)
    # a month before the end, not yet; within RENEW_BEFORE days, renewed
    m.now = START + dt.timedelta(days=SERVER_DAYS - RENEW_BEFORE - 2)
    assert ca.why_renew(m.names()) is None and not ca.ensure().renewed
    m.now = START + dt.timedelta(days=SERVER_DAYS - RENEW_BEFORE + 1)
    assert "expires in" in (ca.why_renew(m.names()) or "")
    assert ca.ensure().renewed
    second = server_cert(ca)
    assert second.serial_number != first.serial_number
    assert second.not_valid_after_utc > first.not_valid_after_utc
    # another network: the new address is missing, so a new certificate names it
    m.addresses = [ipaddress.ip_address("10.232.5.9")]
    assert "10.232.5.9" in (ca.why_renew(m.names()) or "")
    assert ca.ensure().renewed
    third = server_cert(ca)
    ips = {str(a) for a in third.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)}  # fmt: skip
    assert "10.232.5.9" in ips
    # the phone trusts the CA it was given at pairing: it is the same, and signs them all
    assert ca.ca_cert.read_bytes() == root
    trusted = x509.load_pem_x509_certificate(root)
    for cert in (second, third):
        cert.verify_directly_issued_by(trusted)
    assert stat.S_IMODE(ca.key.stat().st_mode) == 0o600


def test_a_running_server_serves_the_renewed_certificate(tmp_path: Path) -> None:
    """The daemon's check loads a renewed certificate into the live TLS context: a new
    connection gets it, verified by the same CA file the phone has."""
    m = Machine()
    ca = m.ca(tmp_path / "tls")
    context = ca.context()

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.scheme)

    app = Starlette(routes=[Route("/hello", hello)])
    feature = LanFeature(ca, context, port=0, bound="127.0.0.1", mdns=False)
    with BackgroundServer(app, context=context, lan=True) as srv:
        trust = ssl.create_default_context(cafile=str(ca.ca_cert))

        def serial() -> int:
            with (
                socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
                trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number

        before = serial()
        import asyncio

        assert asyncio.run(feature.check()) is False  # nothing changed
        m.addresses.append(ipaddress.ip_address("10.233.1.1"))
        assert asyncio.run(feature.check()) is True
        after = serial()
        assert after != before and after == server_cert(ca).serial_number
        r = httpx.get(f"https://127.0.0.1:{srv.port}/hello", verify=trust, timeout=10)
        assert r.text == "https"
        # the same port answers plain HTTP too (LAN mode: the pairing page), on loopback
        assert httpx.get(f"http://127.0.0.1:{srv.port}/hello", timeout=10).text == "http"


def test_lan_mode_and_own_certificates_do_not_mix(tmp_path: Path) -> None:
    from calsync.config import ConfigError, parse
    from calsync.gateway.server import listen_options

    base = f'[general]\nstate_dir = "{tmp_path}/state"\n'
    cfg, _ = parse(base + '[server]\nlan = true\ncert = "c.pem"\nkey = "k.pem"\n')
    try:
        listen_options(cfg)
    except ConfigError as e:
        assert "allow_remote" in str(e) and "server.lan" in str(e)
    else:
        raise AssertionError("lan with cert/key was accepted")
    # lan alone: every address, on the default port, with no allow_remote needed
    cfg, _ = parse(base + "[server]\nlan = true\n")
    opts = listen_options(cfg)
    assert opts.lan and opts.wildcard and opts.port == 8765
    # not lan: a LAN address still needs allow_remote and a certificate
    cfg, _ = parse(base + '[server]\nlisten = "10.231.0.1:8765"\n')
    try:
        listen_options(cfg)
    except ConfigError as e:
        assert "allow_remote" in str(e)
    else:
        raise AssertionError("a LAN address without lan or allow_remote was accepted")
