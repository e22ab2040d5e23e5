"""TLS with no manual steps: a local certificate authority and this machine's certificate.

Why: a phone on the Wi-Fi may only send its password inside TLS, and making
a CA and a server certificate by hand (then installing the CA on the phone)
is where users gave up.  ``calsync serve --lan`` (``[server] lan = true``)
calls ``LocalCA.ensure`` and serves what it returns.

Rules:

* the CA is made once, in ``<state>/tls/`` (0700): ``ca.pem`` (the
  certificate the phone trusts: the pairing page and profile carry it) and
  ``ca.key`` (0600, never leaves the machine, never served);
* the server certificate (``server.pem``, ``server.key`` 0600) names this
  machine's host name, ``<host>.local``, ``localhost``, every address of its
  interfaces (IPv6 link-local ones excepted: they need a zone) and the
  loopback addresses, as subjectAltNames (phones ignore the CN);
* it is made again, by the same CA, when it would expire within
  ``RENEW_BEFORE`` days, when an address or name is missing from it (another
  network, a new DHCP lease), when it is unreadable, or when it was not
  signed by the current CA.  The phone trusts the CA, so it never has to
  trust anything again; the daemon checks every ``CHECK_EVERY`` seconds and
  loads a new certificate into the running server (``reload``), for new
  connections;
* Apple's rules for certificates under a user-installed root (iOS 13,
  macOS 10.15): an EC or >= 2048-bit RSA key, SHA-256, names in
  subjectAltName, extendedKeyUsage serverAuth, at most 825 days: we issue
  P-256 keys, ``SERVER_DAYS`` = 397 days; the CA lasts ``CA_DAYS``.

Why the ``cryptography`` library: it is what Python's TLS world uses
(httpx, uvicorn's users, certbot), and writing ASN.1 by hand is not an option.
The clock and the machine's names are parameters, so tests can move time and
addresses.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from calsync.perms import FILE_MODE, private_dir

if TYPE_CHECKING:  # cryptography loads when a certificate is made or read
    from cryptography import x509

log = logging.getLogger("calsync.gateway")

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = 30  # days
CHECK_EVERY = 60.0  # seconds between the daemon's checks of names and expiry
DIR = "tls"
CA_FILE = "ca.pem"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Names:
    """What the server certificate must name."""

    dns: frozenset[str]
    ips: frozenset[IPAddress]

    def missing_from(self, other: Names) -> Names:
        return Names(self.dns - other.dns, self.ips - other.ips)

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips)

    def describe(self) -> str:
        return ", ".join(sorted(self.dns) + sorted(str(a) for a in self.ips))


def host_label() -> str:
    """This machine's host name as one DNS label (what ``<host>.local`` uses)."""
    name = socket.gethostname().split(".")[0].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")[:63]
    return name or "calsync"


def interface_addresses() -> list[IPAddress]:
    """The addresses of this machine's interfaces (ifaddr, which zeroconf uses too)."""
    import ifaddr

    out: list[IPAddress] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                continue
            if addr.is_link_local and addr.version == 6:
                continue  # fe80::/10 needs a zone: no certificate can name it
            out.append(addr)
    return out


def machine_names(
    extra: Iterable[str] = (), addresses: Callable[[], list[IPAddress]] = interface_addresses
) -> Names:
    """Host name, ``<host>.local``, localhost, the interfaces' addresses and loopback,
    and ``extra`` (the address the server listens on, when it names one)."""
    host = host_label()
    dns = {host, f"{host}.local", "localhost"}
    ips: set[IPAddress] = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    ips.update(addresses())
    for item in extra:
        try:
            addr = ipaddress.ip_address(item)
        except ValueError:
            if item and item not in ("0.0.0.0", "::"):
                dns.add(item.lower())
            continue
        if not addr.is_unspecified:
            ips.add(addr)
    return Names(frozenset(dns), frozenset(ips))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """keyUsage: digitalSignature (an EC key's TLS handshake), and for the CA keyCertSign
    and cRLSign."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _private_key_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class ServerFiles:
    cert: Path  # the server certificate followed by the CA's (the chain phones get)
    key: Path
    renewed: bool  # made by this call


class LocalCA:
    """The CA and server certificate in ``directory`` (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        names: Callable[[], Names] = machine_names,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.dir = directory
        self.names = names
        self.clock = clock
        self.ca_cert = directory / CA_FILE
        self.ca_key = directory / "ca.key"
        self.cert = directory / "server.pem"
        self.key = directory / "server.key"

    # -- the CA ------------------------------------------------------------------------------

    def _ca(self) -> tuple[object, object]:
        """(certificate, private key) of the CA, made on first use."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        if self.ca_cert.exists() and self.ca_key.exists():
            cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
            if os.name == "posix" and self.ca_key.stat().st_mode & 0o077:
                os.chmod(self.ca_key, FILE_MODE)
            return cert, key
        return self._new_ca()

    def _new_ca(self) -> tuple[object, object]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        private_dir(self.dir)
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.clock()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"calsync CA on {host_label()}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "calsync"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key, _private_key_pem(key))
        self.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        log.info("made a local certificate authority in %s", self.dir)
        return cert, key

    def ca_der(self) -> bytes:
        """The CA certificate in DER (what phones install), made on first use."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert, _ = self._ca()
        assert isinstance(cert, x509.Certificate)
        return cert.public_bytes(serialization.Encoding.DER)

    # -- the server certificate -------------------------------------------------------------------

    def why_renew(self, wanted: Names) -> str | None:
        """Why the server certificate must be made (again), or None: it is good."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        if not (self.cert.exists() and self.key.exists()):
            return "none yet"
        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
            ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            cert.verify_directly_issued_by(ca)
        except InvalidSignature:
            return "not signed by the current CA"
        except (ValueError, TypeError, OSError) as e:
            return f"unreadable or not signed by the CA ({e})"
        left = cert.not_valid_after_utc - self.clock()
        if left < dt.timedelta(days=RENEW_BEFORE):
            return f"expires in {max(0, left.days)} days"
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return "names nothing"
        have = Names(
            frozenset(n.lower() for n in san.get_values_for_type(x509.DNSName)),
            frozenset(
                a
                for a in san.get_values_for_type(x509.IPAddress)
                if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
            ),
        )
        missing = wanted.missing_from(have)
        if missing:
            return f"does not name {missing.describe()}"
        return None

    def ensure(self) -> ServerFiles:
        """The server certificate and key, made or renewed as the rules say."""
        ca_cert, ca_key = self._ca()
        wanted = self.names()
        why = self.why_renew(wanted)
        if why is None:
            return ServerFiles(self.cert, self.key, renewed=False)
        self._issue(ca_cert, ca_key, wanted)
        log.info("server certificate made (%s): %s", why, wanted.describe())
        return ServerFiles(self.cert, self.key, renewed=True)

    def _issue(self, ca_cert: object, ca_key: object, names: Names) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        assert isinstance(ca_cert, x509.Certificate)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.clock()
        alt: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(names.dns)]
        alt += [x509.IPAddress(a) for a in sorted(names.ips, key=lambda a: (a.version, a))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_label())]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        private_dir(self.dir)
        # the key first: a crash between the two leaves a certificate whose key does not
        # match, which why_renew does not see; so the pair is checked by load_cert_chain
        _write_private(self.key, _private_key_pem(key))
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM
        )
        _write_private(self.cert, chain)

    def context(self) -> ssl.SSLContext:
        """A server TLS context with the current certificate (``reload`` keeps it current)."""
        files = self.ensure()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(files.cert, files.key)
        except ssl.SSLError:  # the key and certificate do not match (a crash between writes)
            self.cert.unlink(missing_ok=True)
            files = self.ensure()
            ctx.load_cert_chain(files.cert, files.key)
        return ctx

    def reload(self, ctx: ssl.SSLContext) -> bool:
        """Renew if the rules say so, and load the new certificate into ``ctx`` (new
        connections get it; open ones keep theirs).  True if it was renewed."""
        files = self.ensure()
        if files.renewed:
            ctx.load_cert_chain(files.cert, files.key)
        return files.renewed
