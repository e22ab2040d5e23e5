"""TLS settings shared by the stores that talk to servers (CalDAV, SyncML)."""

from __future__ import annotations

import ssl


def tls_verify(verify_tls: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: the system's CAs, only ``ca_file``'s, or (asked for) none."""
    if not verify_tls:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True
