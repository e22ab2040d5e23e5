"""Pairing a phone in one scan: one-time offers, and the devices paired so far.

The public interface (the web page's "Pair a phone" button and ``calsync
pair`` call it; keep it stable):

* ``PairingService.start(account, device) -> Offer``: opens a pairing for
  ``account`` (None: the only account there is; ``among``: of these
  accounts, what a caller may pair for, see ``authz``) and a new device name
  (None: ``phone-N``).  The ``Offer`` holds the one-time URL, when it
  expires, the QR code of the URL as SVG (the page) and as text (a
  terminal), the device name, the account, and the CA fingerprint the
  pairing page shows (None when the server uses the user's own
  certificate).  ``PairingRefused`` (with a message for the user) for an
  unknown account, a device name in use, no address to reach the gateway on;
* ``PairingService.devices() -> list[Device]``: the paired devices (their app
  passwords), without the passwords;
* ``PairingService.revoke(name) -> Device``: the device's app password stops
  working at once and its sessions end; ``LookupError`` when there is none
  (or, with ``account``, none of that account's: a caller's scope).

Rules of a pairing:

* it lasts ``PAIRING_TTL`` (10 minutes) from ``start``; afterwards every URL of
  it answers 410 Gone;
* "one use": the first client that opens the one-time URL claims it (a
  session cookie, HttpOnly, SameSite=Strict, path ``/pair``, for what is
  left of the 10 minutes); any other client then gets 410.  That one client
  may load the page, the profile, the CA certificate and the credentials as
  often as it needs until the pairing expires (a phone shows the page, then
  downloads the profile: two requests, one client).  The device's app
  password is stored when the credentials first leave the server (the
  profile or the credentials page), so a pairing nobody used leaves nothing
  behind;
* at most ``MAX_OPEN`` pairings are open at once (the oldest is closed).

How the pairing page is served (routes, plain HTTP to the LAN while a
pairing is open) is ``pairpage.py``'s part.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from calsync.credentials import (
    DEVICE_NAME,
    AppPassword,
    AppPasswordStore,
    BadDeviceName,
    DeviceNameTaken,
    new_password,
)

PAIRING_TTL = 600.0  # seconds a pairing stays open
MAX_OPEN = 8  # pairings open at once


class PairingRefused(Exception):
    """A pairing cannot start (the message says why, for the user)."""


@dataclass(frozen=True)
class Offer:
    """What ``PairingService.start`` hands out (shown in the terminal or on the page)."""

    url: str  # the one-time URL (plain HTTP to the LAN, or https)
    expires: float  # Unix time
    device: str
    account: str
    qr_svg: str  # the URL as a QR code, an <svg> element
    qr_text: str  # the URL as a QR code, for a terminal (Unicode half blocks)
    ca_fingerprint: str | None  # SHA-256 of the CA certificate, "AB:CD:..."

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "expires": self.expires,
            "device": self.device,
            "account": self.account,
            "qr_svg": self.qr_svg,
            "qr_text": self.qr_text,
            "ca_fingerprint": self.ca_fingerprint,
        }


@dataclass(frozen=True)
class Device:
    """A paired device: its app password's name, account, and when it was made."""

    name: str
    account: str
    created: float  # Unix time

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "account": self.account, "created": self.created}


@dataclass(frozen=True)
class Reach:
    """Where phones reach the gateway now (``PairingService`` asks at each ``start``)."""

    address: str  # the address the one-time URL names (a LAN address; loopback for tests)
    port: int
    tls: bool  # the port speaks HTTPS (and plain HTTP for the pairing page only)
    name: str | None = None  # the name announced over mDNS (``<host>.local``), if any
    ca_der: bytes | None = None  # our own CA, for the phone to trust (None: the user's cert)
    clear: bool = True  # the pairing page is served in clear too (LAN mode; or no TLS at all)

    @property
    def ca_fingerprint(self) -> str | None:
        return fingerprint(self.ca_der) if self.ca_der else None

    def url(self, path: str, *, secure: bool | None = None, host: str | None = None) -> str:
        """``path`` on the gateway, https when ``secure`` (default: ``tls``)."""
        host = host or self.address
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if (self.tls if secure is None else secure) else "http"
        return f"{scheme}://{shown}:{self.port}{path}"


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate, as phones show it (``AB:CD:...``)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def qr_codes(text: str) -> tuple[str, str]:
    """``text`` as a QR code: (inline SVG, terminal text in Unicode half blocks).

    segno (pure Python, no imaging library) makes both; error correction M
    survives a phone camera's glare and a terminal's line spacing."""
    import segno

    code = segno.make(text, error="m", micro=False)
    svg = code.svg_inline(scale=6, dark="#000", light="#fff", border=4)
    out = io.StringIO()
    code.terminal(out=out, compact=True, border=2)
    return svg, out.getvalue()


class Gone(Exception):
    """The pairing expired, was closed, or another client claimed it (410)."""


@dataclass
class Pairing:
    """One open pairing (the page's view of it; the service owns it)."""

    token: str = field(repr=False)
    account: str
    device: str
    password: str = field(repr=False)
    started: float
    expires: float
    reach: Reach
    client: str | None = field(default=None, repr=False)  # the claiming client's cookie
    delivered: AppPassword | None = None  # stored when the credentials first left

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires - now)


class PairingService:
    """Open pairings (in memory: they live 10 minutes) and the app passwords they make.

    ``accounts()``: the account names a device may pair with (CalDAV users and
    SyncML accounts); ``reach()``: where phones reach the gateway now;
    ``on_revoke``: called with each revoked device's app password (the
    endpoints end its sessions).  Thread-safe."""

    def __init__(
        self,
        passwords: AppPasswordStore,
        accounts: Callable[[], Sequence[str]],
        reach: Callable[[], Reach],
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = PAIRING_TTL,
    ) -> None:
        self.passwords = passwords
        self.accounts = accounts
        self.reach = reach
        self.clock = clock
        self.ttl = ttl
        self.on_revoke: list[Callable[[AppPassword], None]] = []
        self._open: dict[str, Pairing] = {}  # token -> pairing, oldest first
        self._lock = threading.Lock()

    # -- the public interface (see the module docstring) ----------------------------------------

    def start(
        self,
        account: str | None = None,
        device: str | None = None,
        *,
        secure: bool = False,
        among: Callable[[Sequence[str]], list[str]] | None = None,
    ) -> Offer:
        """See the module docstring; ``secure``: the URL is https (the phone warns about
        the certificate once) instead of plain HTTP; ``among``: which of the accounts
        the caller may pair for (the others are answered as unknown)."""
        names = list(dict.fromkeys(self.accounts()))
        if among is not None:
            names = among(names)
        if account is None:
            if not names:
                raise PairingRefused(
                    "no account to pair with: configure [caldav.users.NAME] "
                    "or [syncml.accounts.NAME]"
                )
            if len(names) > 1:
                raise PairingRefused("name the account to pair with: " + ", ".join(names))
            account = names[0]
        elif account not in names:
            raise PairingRefused(
                f"no account named {account!r} (accounts: {', '.join(names) or 'none'})"
            )
        reach = self.reach()
        now = self.clock()
        with self._lock:
            self._expire(now)
            if device is None:
                device = self._free_name()
            elif not DEVICE_NAME.match(device):
                raise PairingRefused(
                    f"{device!r} is not a device name: letters, digits and . _ - (up to 64)"
                )
            elif self.passwords.get(device) is not None or any(
                p.device == device for p in self._open.values()
            ):
                raise PairingRefused(
                    f"a device named {device!r} exists already "
                    f"(calsync devices revoke {device} first, or choose another --device)"
                )
            while len(self._open) >= MAX_OPEN:
                self._open.pop(next(iter(self._open)))
            token = secrets.token_urlsafe(18)
            pairing = Pairing(token, account, device, new_password(), now, now + self.ttl, reach)
            self._open[token] = pairing
        url = reach.url(f"/pair/{token}", secure=reach.tls and (secure or not reach.clear))
        svg, text = qr_codes(url)
        return Offer(url, pairing.expires, device, account, svg, text, reach.ca_fingerprint)

    def devices(self) -> list[Device]:
        return [Device(p.device, p.account, p.created) for p in self.passwords.all()]

    def revoke(self, name: str, *, account: str | None = None) -> Device:
        """``account``: only a device of that account (another is answered as unknown)."""
        removed = self.passwords.remove(name, account)
        if removed is None:
            raise LookupError(f"no device named {name!r}")
        with self._lock:  # a pairing still open for it is closed too
            for token, p in list(self._open.items()):
                if p.device == name:
                    del self._open[token]
        for hook in self.on_revoke:
            hook(removed)
        return Device(removed.device, removed.account, removed.created)

    # -- what the pairing page uses -------------------------------------------------------------

    def is_open(self) -> bool:
        """Is any pairing open now (the plain-HTTP pairing page is served only then)?"""
        with self._lock:
            self._expire(self.clock())
            return bool(self._open)

    def claim(self, token: str, client: str | None) -> tuple[Pairing, str]:
        """The pairing of ``token`` for the client holding cookie ``client`` (None: none
        yet): the first client claims it and gets its cookie value back; ``Gone`` for
        an expired or unknown token, or one another client claimed."""
        with self._lock:
            self._expire(self.clock())
            pairing = self._find(token)
            if pairing.client is None:
                pairing.client = secrets.token_urlsafe(24)
            elif client is None or not hmac.compare_digest(client, pairing.client):
                raise Gone("this pairing was opened on another device: start a new one")
            return pairing, pairing.client

    def deliver(self, pairing: Pairing) -> AppPassword:
        """The device's app password, stored the first time credentials leave
        (``Gone`` if the pairing ended meanwhile, or the name was taken)."""
        with self._lock:
            self._expire(self.clock())
            if self._open.get(pairing.token) is not pairing:
                raise Gone("this pairing has ended: start a new one")
            if pairing.delivered is None:
                try:
                    pairing.delivered = self.passwords.add(
                        pairing.account, pairing.device, pairing.password
                    )
                except (DeviceNameTaken, BadDeviceName) as e:
                    del self._open[pairing.token]
                    raise Gone(f"{e}: start a new pairing") from None
            return pairing.delivered

    # -- internals --------------------------------------------------------------------------------

    def _find(self, token: str) -> Pairing:
        for known, pairing in self._open.items():
            if hmac.compare_digest(known, token):
                return pairing
        raise Gone("this pairing link has expired or was never valid: start a new one")

    def _expire(self, now: float) -> None:
        for token, p in list(self._open.items()):
            if now >= p.expires:
                del self._open[token]

    def _free_name(self) -> str:
        taken = {p.device for p in self.passwords.all()} | {p.device for p in self._open.values()}
        n = 1
        while (name := "phone" if n == 1 else f"phone-{n}") in taken:
            n += 1
        return name
