"""A crowd of slow and unauthenticated connections, held open around legitimate requests.

``Crowd(target, endpoints, size)`` keeps ``size`` connections open, each from
its own loopback address, in four kinds (a quarter each), spread over the
endpoints:

* ``slowloris``: a request head sent a byte at a time, never finished;
* ``slow_body``: a complete head (with valid credentials for half of them)
  announcing a body that comes a few bytes a second, valid so far
  (``Endpoint.trickle``);
* ``idle``: one request answered, then the connection kept alive, silent;
* ``guess``: wrong passwords (or tokens) one after the other, as fast as
  they are answered.

A connection the server closes is opened again at once, so the crowd stays
at its size while it lasts (``open`` counts the connections open now,
``reconnects`` the times the server closed one).  Everything runs on one
asyncio loop in a thread: 200 sockets need no 200 threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

from tests.adversarial.endpoints import Endpoint
from tests.adversarial.target import Target

KINDS = ("slowloris", "slow_body", "idle", "guess")
TRICKLED = 60_000  # the length slow bodies announce (within the endpoint's body_limit)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one whole answer; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Did the server close the connection (or send anything) within ``seconds``?"""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return False
    return True  # an answer or the end: either way this connection is done


class Crowd:
    def __init__(self, target: Target, endpoints: tuple[Endpoint, ...], size: int = 200) -> None:
        self.target = target
        self.endpoints = endpoints
        self.size = size
        self.open = 0
        self.reconnects: Counter[str] = Counter()
        self.answers: Counter[int] = Counter()  # statuses the guessers got
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="crowd", daemon=True)
        self._started = threading.Event()
        self.sources = [target.source() for _ in range(size)]

    # -- the four kinds ---------------------------------------------------------------------

    async def slowloris(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, ep: Endpoint, n: int
    ) -> None:
        head = _head(ep.method, ep.path, {"Content-Type": ep.content_type, "X-Padding": "p" * 4000})
        for byte in head[:-4]:
            w.write(bytes([byte]))
            await w.drain()
            if await _closed_within(r, 0.5):
                return

    async def slow_body(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, ep: Endpoint, n: int
    ) -> None:
        if ep.trickle is None:  # no body to send slowly: the head, then
            await self.slowloris(r, w, ep, n)
            return
        start, piece = ep.trickle
        length = str(min(TRICKLED, ep.body_limit))
        headers = {"Content-Type": ep.content_type, "Content-Length": length}
        if n % 2:
            headers.update(ep.credentials(self.target))
        w.write(_head(ep.method, ep.path, headers) + start)
        while True:
            w.write(piece)
            await w.drain()
            if await _closed_within(r, 1.0):
                return

    async def idle(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, ep: Endpoint, n: int
    ) -> None:
        w.write(_head("GET", ep.path, {}))
        await w.drain()
        await _answer(r)
        await r.read(1)  # until the server closes it

    async def guess(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, ep: Endpoint, n: int
    ) -> None:
        wrong, body = ep.guess(n)
        headers = {"Content-Type": ep.content_type, "Content-Length": str(len(body)), **wrong}
        while True:
            w.write(_head(ep.method, ep.path, headers) + body)
            await w.drain()
            self.answers[await _answer(r)] += 1

    # -- running ---------------------------------------------------------------------------

    async def _hold(self, n: int) -> None:
        kind = KINDS[n % len(KINDS)]
        ep = self.endpoints[(n // len(KINDS)) % len(self.endpoints)]
        work: Callable[..., object] = getattr(self, kind)
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                r, w = await asyncio.open_connection(
                    "127.0.0.1", self.target.port, local_addr=(self.sources[n], 0)
                )
            except OSError:
                await asyncio.sleep(0.2)
                continue
            self.open += 1
            try:
                await work(r, w, ep, n)  # type: ignore[misc]
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                pass
            finally:
                self.open -= 1
                w.close()
            self.reconnects[kind] += 1

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._hold(n)) for n in range(self.size)]
        self._started.set()
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    def __enter__(self) -> Crowd:
        self._thread.start()
        self._started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
