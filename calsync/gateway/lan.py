"""LAN mode (``calsync serve --lan``): the certificate kept current, and mDNS announcements.

``LanFeature`` is a gateway feature with no routes of its own:

* every ``tls.CHECK_EVERY`` seconds it asks ``tls.LocalCA`` whether the
  server certificate must be renewed (near expiry, an address or name it
  lacks), and loads a new one into the running server's TLS context;
* it announces the gateway over mDNS/DNS-SD (``zeroconf``, a pure-Python
  responder that cooperates with Avahi or Bonjour on the same machine):
  ``_caldavs._tcp`` with TXT ``path=/dav/`` (RFC 6764: how macOS, iOS and
  DAVx5 find a CalDAV server by name) and ``_https._tcp`` with ``path=/``
  (the web page; ``_https`` because the LAN gets the page over TLS only),
  both naming ``<host>.local`` and this port; announced again when the
  addresses change, withdrawn on shutdown (goodbye packets, so browsers
  forget the service at once).  ``[server] mdns = false`` leaves it out.
  Bound to one address, it announces on that address's interface only.

``reach()`` tells the pairing service where phones find the gateway: the
address the server is bound to, or, on a wildcard, the address of the
default route's interface (a UDP socket's ``connect`` picks it without
sending anything), else the first private IPv4 address of an interface.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path

import anyio.to_thread
from starlette.routing import BaseRoute

from calsync.gateway.pairing import Reach
from calsync.gateway.server import Listen
from calsync.gateway.tls import (
    CHECK_EVERY,
    DIR,
    LocalCA,
    host_label,
    interface_addresses,
    machine_names,
)

log = logging.getLogger("calsync.gateway")

SERVICES = (("_caldavs._tcp.local.", "/dav/"), ("_https._tcp.local.", "/"))


def primary_address() -> str:
    """This machine's address on its default route (see the module docstring)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # UDP: a route lookup, no packet leaves
            return str(s.getsockname()[0])
        except OSError:
            pass
    for addr in interface_addresses():
        if addr.version == 4 and not addr.is_loopback and addr.is_private:
            return str(addr)
    return "127.0.0.1"


def announced_addresses(bound: str) -> list[str]:
    """The addresses the mDNS records name: the bound one, or every interface's
    (loopback excepted) on a wildcard."""
    if bound not in ("0.0.0.0", "::", ""):
        return [bound]
    out = []
    for addr in interface_addresses():
        if addr.is_loopback or (bound == "0.0.0.0" and addr.version == 6):
            continue
        out.append(str(addr))
    return out


class Announcer:
    """The DNS-SD records of one gateway (``zeroconf``)."""

    def __init__(self, port: int, bound: str, *, host: str | None = None) -> None:
        self.port = port
        self.bound = bound
        self.host = host or host_label()
        self.addresses: list[str] = []
        self._zc: object | None = None
        self._infos: list[object] = []

    @property
    def server(self) -> str:
        return f"{self.host}.local."

    def _infos_for(self, addresses: list[str]) -> list[object]:
        from zeroconf.asyncio import AsyncServiceInfo

        return [
            AsyncServiceInfo(
                kind,
                f"calsync on {self.host}.{kind}",
                port=self.port,
                properties={"path": path},
                server=self.server,
                parsed_addresses=addresses,
            )
            for kind, path in SERVICES
        ]

    async def start(self) -> None:
        from zeroconf import InterfaceChoice, IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        self.addresses = announced_addresses(self.bound)
        wildcard = self.bound in ("0.0.0.0", "::", "")
        zc = AsyncZeroconf(
            interfaces=InterfaceChoice.All if wildcard else [self.bound],
            ip_version=IPVersion.V4Only if self.bound == "0.0.0.0" else IPVersion.All,
        )
        self._zc = zc
        self._infos = self._infos_for(self.addresses)
        for info in self._infos:
            # the probe for name conflicts (about a second) runs on in the background
            await zc.async_register_service(info, allow_name_change=True)  # type: ignore[arg-type]
        log.info(
            "announced over mDNS: %s on %s port %d (%s)",
            ", ".join(k.split(".")[0] for k, _ in SERVICES),
            self.server,
            self.port,
            ", ".join(self.addresses) or "no address",
        )

    async def refresh(self) -> None:
        """Announce again if the machine's addresses changed."""
        if self._zc is None:
            return
        now = announced_addresses(self.bound)
        if sorted(now) == sorted(self.addresses):
            return
        from zeroconf.asyncio import AsyncZeroconf

        assert isinstance(self._zc, AsyncZeroconf)
        self.addresses = now
        for old, new in zip(self._infos, self._infos_for(now), strict=True):
            new.name = old.name  # type: ignore[attr-defined]  # as renamed by a conflict
            await self._zc.async_update_service(new)  # type: ignore[arg-type]
        self._infos = self._infos_for(now)
        log.info("mDNS records updated: %s", ", ".join(now) or "no address")

    async def stop(self) -> None:
        zc, self._zc = self._zc, None
        if zc is None:
            return
        from zeroconf.asyncio import AsyncZeroconf

        assert isinstance(zc, AsyncZeroconf)
        try:
            await zc.async_unregister_all_services()
        finally:
            await zc.async_close()


class LanFeature:
    """The certificate's renewal and the mDNS announcements (see the module docstring)."""

    def __init__(
        self,
        ca: LocalCA,
        context: ssl.SSLContext,
        *,
        port: int,
        bound: str,
        mdns: bool = True,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.ca = ca
        self.context = context
        self.port = port
        self.bound = bound
        self.announcer = Announcer(port, bound) if mdns else None
        self.check_every = check_every
        self.routes: list[BaseRoute] = []
        self._task: asyncio.Task[None] | None = None
        self._ca_der = ca.ca_der()

    def reach(self) -> Reach:
        """Where phones reach the gateway now (``PairingService`` asks at each start)."""
        wildcard = self.bound in ("0.0.0.0", "::", "")
        return Reach(
            primary_address() if wildcard else self.bound,
            self.port,
            tls=True,
            name=f"{self.announcer.host}.local" if self.announcer else None,
            ca_der=self._ca_der,
        )

    async def startup(self) -> None:
        if self.announcer is not None:
            try:
                await self.announcer.start()
            except OSError as e:  # no multicast here: serve on, unannounced
                log.warning("cannot announce over mDNS: %s", e)
                self.announcer = None
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            await self.check()

    async def check(self) -> bool:
        """Renew the certificate if needed and refresh the announcements; True if renewed."""
        try:
            renewed = await anyio.to_thread.run_sync(self.ca.reload, self.context)
        except (OSError, ValueError) as e:
            log.error("cannot renew the server certificate: %s", e)
            return False
        if self.announcer is not None:
            try:
                await self.announcer.refresh()
            except OSError as e:
                log.warning("cannot update the mDNS records: %s", e)
        return renewed

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.announcer is not None:
            await self.announcer.stop()


def lan_mode(state_dir: Path, opts: Listen, *, mdns: bool = True) -> LanFeature:
    """Make (or renew) the certificate for LAN mode, give ``opts`` its TLS context, and
    return the feature that keeps both current."""
    ca = LocalCA(state_dir / DIR, names=lambda: machine_names([opts.host]))
    context = ca.context()
    opts.context = context
    opts.tls_cert, opts.tls_key = ca.cert, ca.key
    return LanFeature(ca, context, port=opts.port, bound=opts.host, mdns=mdns)
