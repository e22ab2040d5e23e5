"""SyncML authentication: ``syncml:auth-basic`` and ``syncml:auth-md5``.

Basic is ``b64("user:password")``.  MD5 (SyncML 1.1 and later) is
``b64(md5(b64(md5("user:password")) + ":" + nonce))`` where the nonce is the
base64-*decoded* ``NextNonce`` the other side sent last; SyncML 1.0 used
``b64(md5("user:password:nonce"))``.

Nonces are one per device and change after every use, so a captured message
cannot be replayed.  A server never accepts an empty nonce: a device without
one gets ``401`` + a challenge carrying a fresh nonce and retries with it.
All comparisons are constant-time.  Role-neutral: a client computes the same
credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

BASIC = "syncml:auth-basic"
MD5 = "syncml:auth-md5"
AUTH_TYPES = {"basic": BASIC, "md5": MD5}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def new_nonce() -> str:
    """A fresh nonce as sent in NextNonce (base64 of printable random bytes).

    Printable because some clients treat the decoded nonce as a C string.
    """
    return _b64(secrets.token_urlsafe(12).encode("ascii"))


def decode_nonce(next_nonce: str) -> bytes:
    try:
        return base64.b64decode(next_nonce.encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeError):
        return next_nonce.encode("utf-8", "replace")


def basic_credential(user: str, password: str) -> str:
    return _b64(f"{user}:{password}".encode())


def md5_credential(user: str, password: str, nonce: bytes, *, version: str = "1.2") -> str:
    """The MD5 credential a client sends for ``nonce`` (decoded bytes)."""
    if version == "1.0":
        return _b64(hashlib.md5(f"{user}:{password}:".encode() + nonce).digest())
    inner = _b64(hashlib.md5(f"{user}:{password}".encode()).digest()).encode("ascii")
    return _b64(hashlib.md5(inner + b":" + nonce).digest())


def parse_basic(data: str) -> tuple[str, str] | None:
    """(user, password) of a basic credential, or None if it is not one."""
    try:
        raw = base64.b64decode(data.strip().encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        return None
    user, sep, password = raw.partition(":")
    if not sep:
        return None
    return user, password


@dataclass(frozen=True)
class Verdict:
    ok: bool
    user: str | None = None
    reason: str = ""


def check(
    cred_type: str,
    cred_format: str | None,
    data: str,
    *,
    user: str,
    password: str,
    nonce: str | None,
    version: str = "1.2",
) -> Verdict:
    """Does the credential prove ``user`` knows ``password``?

    ``nonce`` is the NextNonce (base64 text) this side issued for the device,
    None if none was issued yet (then MD5 cannot succeed).
    """
    if cred_type == BASIC:
        parsed = parse_basic(data)
        if parsed is None:
            return Verdict(False, reason="malformed basic credential")
        name, pw = parsed
        good = hmac.compare_digest(name.encode(), user.encode()) & hmac.compare_digest(
            pw.encode(), password.encode()
        )
        return Verdict(good, user if good else None, "" if good else "wrong user or password")
    if cred_type == MD5:
        if cred_format not in (None, "b64"):
            return Verdict(False, reason=f"unsupported credential format {cred_format}")
        if not nonce:
            return Verdict(False, reason="no nonce issued to this device yet")
        raw = decode_nonce(nonce)
        versions = ("1.2", "1.0") if version == "1.0" else ("1.2",)
        for v in versions:
            expect = md5_credential(user, password, raw, version=v)
            if hmac.compare_digest(expect.encode(), data.strip().encode()):
                return Verdict(True, user)
        return Verdict(False, reason="wrong user, password or nonce")
    return Verdict(False, reason=f"unsupported authentication type {cred_type!r}")
