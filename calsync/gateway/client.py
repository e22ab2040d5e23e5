"""The command line's side of the control API: find a running daemon, ask it.

``calsync status`` and ``calsync sync`` go through the daemon when one runs
for the same configuration (found by ``runtime``), so a command-line run and
the daemon never sync one pair at the same time, and what the command prints
is what the daemon knows.  When none runs they work standalone, as before.

The token goes only to a daemon that has proven it holds it (``identify``:
``/api/identify`` answers a random nonce with ``auth.proof``): the URL comes
from ``daemon.json``, and a daemon that died may have left its port to
anyone.  A daemon that cannot prove it is not used (the command works
standalone, and says why).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from calsync.config import Config
from calsync.gateway import runtime
from calsync.gateway.auth import proof, read_token
from calsync.sync.engine import ItemFailure, SyncResult

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("calsync.gateway.client")

USER_AGENT = "calsync-cli"


class DaemonError(Exception):
    """The daemon could not be asked (gone, refusing); the caller works standalone."""


class DaemonClient:
    def __init__(self, url: str, token: str, pid: int, ca: Path | None = None) -> None:
        """``ca``: LAN mode's CA certificate, trusted for a daemon bound to a LAN address."""
        self.url = url.rstrip("/")
        self.pid = pid
        host = urlparse(self.url).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        import httpx  # only when a daemon runs: a standalone sync never pays for it

        # a TLS daemon's certificate names its public address, not 127.0.0.1; on
        # loopback the peer proves it is our daemon (identify) before it gets the token
        self.token = token
        verify: Any = not loopback
        if verify and ca is not None and ca.exists():
            import ssl

            verify = ssl.create_default_context(cafile=str(ca))
        self.http: httpx.Client = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            verify=verify,
            timeout=httpx.Timeout(30.0, read=None),
        )

    def identify(self) -> bool:
        """Does the daemon prove it holds our token?  If so, it gets the token from now
        on.  Sends no token."""
        import httpx

        nonce = secrets.token_hex(16)
        try:
            r = self.http.get(self.url + "/api/identify", params={"nonce": nonce}, timeout=10)
            answer = r.json()
        except (httpx.HTTPError, ValueError):
            return False
        given = answer.get("proof") if isinstance(answer, dict) else None
        if r.status_code != 200 or not isinstance(given, str):
            return False
        if not hmac.compare_digest(given.encode(), proof(self.token, nonce).encode()):
            return False
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        return True

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        import httpx

        try:
            r = self.http.request(method, self.url + path, **kw)
        except httpx.HTTPError as e:
            raise DaemonError(f"cannot reach the daemon at {self.url}: {e}") from None
        if r.status_code in (401, 403):
            raise DaemonError("the daemon refused our API token (api-token changed?)")
        if r.status_code >= 500 or r.status_code == 503:
            raise DaemonError(f"the daemon answered {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            raise DaemonError(f"the daemon answered {r.status_code} without JSON") from None
        if r.status_code >= 400:
            raise DaemonError(str(data.get("error", r.status_code)))
        return data if isinstance(data, dict) else {}

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/status")

    def sync(self, pairs: list[str], *, force: bool, dry_run: bool, mode: str) -> dict[str, Any]:
        body = {"pairs": pairs, "wait": True, "force": force, "dry_run": dry_run, "mode": mode}
        return self._call("POST", "/api/sync", json=body)

    def pair(self, account: str | None, device: str | None, *, secure: bool) -> dict[str, Any]:
        """Open a pairing (``POST /api/pair``): the offer; DaemonError with the reason."""
        body: dict[str, Any] = {"secure": secure}
        if account is not None:
            body["account"] = account
        if device is not None:
            body["device"] = device
        return self._call("POST", "/api/pair", json=body)

    def devices(self) -> list[dict[str, Any]]:
        found = self._call("GET", "/api/devices").get("devices", [])
        return found if isinstance(found, list) else []

    def revoke(self, name: str) -> dict[str, Any]:
        """Revoke a device (its sessions end too); DaemonError (e.g. no such device)."""
        from urllib.parse import quote

        return self._call("DELETE", "/api/devices/" + quote(name, safe=""))

    def close(self) -> None:
        self.http.close()


def connect(cfg: Config, config_path: Path | None) -> DaemonClient | None:
    """A client for the daemon serving this configuration, or None (work standalone)."""
    if os.environ.get("CALSYNC_NO_DAEMON"):
        return None
    info = runtime.running_daemon(cfg.state_dir)
    if info is None:
        return None
    want = str(config_path.resolve()) if config_path else None
    if info.get("config") != want:
        log.info("a daemon runs with another configuration (%s); not using it", info.get("config"))
        return None
    from calsync.gateway.tls import CA_FILE, DIR

    return proven(info, ca=cfg.state_dir / DIR / CA_FILE)


def proven(info: dict[str, Any], *, ca: Path | None = None) -> DaemonClient | None:
    """A client of the daemon ``info`` (from ``daemon.json``) names, once it has proven
    it holds the token; None (and a warning why) if it does not."""
    token = read_token(Path(str(info.get("token_file", ""))))
    if token is None or not isinstance(info.get("url"), str):
        log.warning("a daemon runs (pid %s) but its API token is not readable", info.get("pid"))
        return None
    client = DaemonClient(info["url"], token, int(info["pid"]), ca)
    if not client.identify():
        client.close()
        log.warning(
            "what answers at %s is not the calsync daemon of pid %s (it cannot prove it "
            "holds the API token): the token is not sent there; working without it",
            info["url"],
            info["pid"],
        )
        return None
    return client


def result_from_json(name: str, counts: dict[str, Any], details: dict[str, Any]) -> SyncResult:
    """A ``SyncResult`` back from the API's answer (for the command line's output)."""
    result = SyncResult(name)
    for key in ("added_a", "added_b", "updated_a", "updated_b", "deleted_a", "deleted_b"):
        setattr(result, key, int(counts.get(key, 0)))
    result.conflicts = int(counts.get("conflicts", 0))
    result.errors = [
        ItemFailure(
            e.get("store", "?"), e.get("side", "a"), e.get("id"), e.get("uid"), e["message"]
        )
        for e in counts.get("errors", [])
    ]
    result.stopped = counts.get("stopped")
    result.guard = bool(details.get("guard"))
    result.seconds = float(details.get("seconds", 0.0))
    return result
