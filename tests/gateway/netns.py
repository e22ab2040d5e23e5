"""Another machine on a LAN, for tests: a network namespace joined to this one by a veth pair.

``TestHost()`` makes namespace ``calsync-<random>`` with one interface,
``10.231.N.2/24``, whose other end (``10.231.N.1``) is in this namespace: a
gateway bound to ``here`` is reached from the namespace (``run``, ``popen``)
as from a phone on the Wi-Fi, multicast (mDNS) included, and nothing leaves
the machine.  Needs root and iproute2 (``ip netns``); a test that needs it
fails, loudly, where it cannot be made.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
from typing import Any


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {out.stderr.strip()}")


class TestHost:
    """A network namespace on a veth pair (see the module docstring)."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise AssertionError("network namespaces need root (the test machine runs as root)")
        tag = secrets.token_hex(3)
        taken = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
        n = random.choice([i for i in range(2, 250) if f"10.231.{i}." not in taken])
        self.ns = f"calsync-{tag}"
        self.link = f"cs{tag}h"
        peer = f"cs{tag}p"
        self.here = f"10.231.{n}.1"
        self.there = f"10.231.{n}.2"
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.link, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", self.ns)
            _ip("addr", "add", f"{self.here}/24", "dev", self.link)
            _ip("link", "set", self.link, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.there}/24", "dev", peer)
            _ip("-n", self.ns, "link", "set", peer, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except AssertionError:
            self.close()
            raise

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *args]

    def run(self, *args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, **kw
        )

    def python(
        self, code: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run Python ``code`` on the other machine."""
        return self.run(sys.executable, "-c", code, *args, timeout=timeout)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)

    def __enter__(self) -> TestHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
