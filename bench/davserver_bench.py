#!/usr/bin/env python3
"""CalDAV endpoint benchmark: calsync's /dav/ (a vdir store) vs Radicale's own storage.

Same items (``../shared/peers/vdirsyncer/gen_calendar.py``: time zones,
recurrences with overrides, attendees, alarms, folded lines) served by

* calsync: ``calsync serve`` with a vdir store exposed at /dav/bench/cal/;
* Radicale 3 standalone (``python3 -m radicale``) with its multifilesystem
  storage holding the same files (the library calsync builds on, with its
  own storage and caches: the natural yardstick).

Requests, as clients make them, each timed over ``--reps`` runs (median):

  propfind_cold  PROPFIND Depth 1 (getetag) right after start (caches cold)
  propfind       the same again (warm)
  sync_initial   sync-collection with no token (every href + etag)
  sync_quiet     sync-collection from the last token, nothing changed
  query_month    calendar-query, VEVENTs in one month, with calendar-data
  multiget_1pct  calendar-multiget of 1 % of the items
  put_20         20 new events PUT one by one

Prints a table with the ratio radicale/calsync (> 1: calsync faster) and
writes JSON to bench/results/.  Usage::

    python3 bench/davserver_bench.py [--sizes 1000 5000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("CALSYNC_SHARED", ROOT.parent / "shared"))
GEN = SHARED / "peers" / "vdirsyncer" / "gen_calendar.py"
USER, PASSWORD = "bench", "bench-password"

PROPFIND = (
    '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'
)
SYNC = (
    '<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token>'
    "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
)
QUERY = (
    '<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
    '<d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR">'
    '<c:comp-filter name="VEVENT"><c:time-range start="20260301T000000Z" end="20260401T000000Z"/>'
    "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
)
MULTIGET = (
    '<?xml version="1.0"?><c:calendar-multiget xmlns:d="DAV:" '
    'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>'
    "{}</c:calendar-multiget>"
)
TOKEN = re.compile(r"<(?:\w+:)?sync-token>([^<]+)<")
HREF = re.compile(r"<(?:\w+:)?href>([^<]+\.ics)</")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode})")
        try:
            httpx.request("OPTIONS", url, auth=(USER, PASSWORD), timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Server:
    def __init__(self, kind: str, work: Path, items: Path) -> None:
        self.kind = kind
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if kind == "calsync":
            cal = work / "calsync-cal"
            shutil.copytree(items, cal)
            config = work / "calsync.toml"
            config.write_text(
                f'[general]\nstate_dir = "{work}/calsync-state"\n'
                f'[stores.cal]\ntype = "vdir"\npath = "{cal}"\n'
                f'[caldav.users.{USER}]\npassword = "{PASSWORD}"\ncalendars = ["cal"]\n'
            )
            config.chmod(0o600)
            env.update(XDG_CONFIG_HOME=str(work / "xdg"), CALSYNC_CONFIG=str(config))
            cmd = [
                sys.executable,
                "-m",
                "calsync",
                "serve",
                "--no-watch",
                "--listen",
                f"127.0.0.1:{self.port}",
            ]
            self.url = f"http://127.0.0.1:{self.port}/dav/{USER}/cal/"
        else:
            root = work / "radicale" / "collection-root" / USER / "cal"
            shutil.copytree(items, root)
            (root / ".Radicale.props").write_text('{"tag": "VCALENDAR"}')
            users = work / "radicale-users"
            users.write_text(f"{USER}:{PASSWORD}\n")
            cmd = [
                sys.executable,
                "-m",
                "radicale",
                "--server-hosts",
                f"127.0.0.1:{self.port}",
                "--storage-filesystem-folder",
                str(work / "radicale"),
                "--auth-type",
                "htpasswd",
                "--auth-htpasswd-filename",
                str(users),
                "--auth-htpasswd-encryption",
                "plain",
                "--logging-level",
                "warning",
            ]
            self.url = f"http://127.0.0.1:{self.port}/{USER}/cal/"
        self.log = (work / f"{kind}.log").open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log)
        wait_up(self.url, self.proc)
        self.client = httpx.Client(auth=(USER, PASSWORD), timeout=600)

    def req(self, method: str, path: str = "", body: str = "", **headers: str) -> httpx.Response:
        r = self.client.request(method, self.url + path, content=body.encode(), headers=headers)
        if r.status_code >= 400:
            raise RuntimeError(f"{self.kind}: {method} {path}: {r.status_code} {r.text[:300]}")
        return r

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def scenario(server: Server, n: int, reps: int) -> dict[str, float]:
    out: dict[str, list[float]] = {}

    def add(name: str, fn: Callable[[], Any], check: Callable[[Any], bool]) -> Any:
        sec, got = timed(fn)
        if not check(got):
            raise RuntimeError(f"{server.kind}: {name} returned something wrong")
        out.setdefault(name, []).append(sec)
        return got

    def count(r: httpx.Response) -> int:
        return len(HREF.findall(r.text))

    add(
        "propfind_cold",
        lambda: server.req("PROPFIND", body=PROPFIND, Depth="1"),
        lambda r: count(r) == n,
    )
    for rep in range(reps):
        add(
            "propfind",
            lambda: server.req("PROPFIND", body=PROPFIND, Depth="1"),
            lambda r, n=n: count(r) == n,
        )
        r = add(
            "sync_initial",
            lambda: server.req("REPORT", body=SYNC.format(""), Depth="1"),
            lambda r, n=n: count(r) == n,
        )
        token = TOKEN.findall(r.text)[-1]
        add(
            "sync_quiet",
            lambda t=token: server.req("REPORT", body=SYNC.format(t), Depth="1"),
            lambda r: count(r) == 0,
        )
        add(
            "query_month",
            lambda: server.req("REPORT", body=QUERY, Depth="1"),
            lambda r: count(r) > 0,
        )
        hrefs = sorted(HREF.findall(server.req("PROPFIND", body=PROPFIND, Depth="1").text))
        pick = "".join(f"<d:href>{h}</d:href>" for h in hrefs[::100][: max(1, n // 100)])
        add(
            "multiget_1pct",
            lambda p=pick: server.req("REPORT", body=MULTIGET.format(p), Depth="1"),
            lambda r: count(r) >= 1,
        )

        def put20(rep: int = rep) -> int:
            for i in range(20):
                uid = f"bench-put-{rep}-{i}@calsync"
                body = (
                    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
                    f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T100000Z\r\n"
                    "DURATION:PT1H\r\nSUMMARY:Put\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                )
                server.req("PUT", f"{uid}.ics", body, **{"Content-Type": "text/calendar"})
            return 20

        add("put_20", put20, lambda k: k == 20)
        n += 20
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "runs": {}}
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="davbench-") as tmp:
            work = Path(tmp)
            items = work / "items"
            subprocess.run(
                [sys.executable, str(GEN), "-n", str(n), "--vdir", str(items)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            got: dict[str, dict[str, float]] = {}
            for kind in ("radicale", "calsync"):
                server = Server(kind, work, items)
                try:
                    got[kind] = scenario(server, n, args.reps)
                finally:
                    server.stop()
            results["runs"][str(n)] = got
            for name in got["calsync"]:
                c, r = got["calsync"][name], got["radicale"][name]
                rows.append((n, name, c, r, r / c if c else float("inf")))
    print(f"{'items':>6} {'request':15} {'calsync s':>10} {'radicale s':>11} {'ratio':>7}")
    for n, name, c, r, ratio in rows:
        print(f"{n:>6} {name:15} {c:>10.3f} {r:>11.3f} {ratio:>7.2f}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"davserver-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
