#!/usr/bin/env python3
"""SyncML server benchmark: ``calsync serve`` vs SyncEvolution's own server.

The same real client (SyncEvolution 2.0, ``../shared/peers/syncevolution/
client-sync.sh``) syncs the same data with each server, alternating which goes
first:

  slow_1000   the client holds 1,000 generated events, the server none: slow sync
  twoway_1pct then 1% edited on each side (10 on the client, 10 on the server)
              and a two-way sync

What is timed is the client's sync session: a ``syncevolution`` shim on PATH
records the start and end of the ``--sync`` call (client-sync.sh's own
configuration steps are left out, they are the same for both servers).  Both
servers run as their own processes, started before and stopped after, with
their message dumps off (``SE_LOGLEVEL=1``; calsync logs warnings only).
Every run is checked (1,000 items on the server, each edit on the other side).

Target: calsync <= 0.5x SyncEvolution's wall time for each scenario.  Prints
a table, writes JSON to bench/results/.  Usage::

    python3 bench/syncml_bench.py [--reps 3] [--items 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("CALSYNC_SHARED", ROOT.parent / "shared"))
PEER = SHARED / "peers" / "syncevolution"
GEN = SHARED / "peers" / "vdirsyncer" / "gen_calendar.py"
TARGET = 0.5
UID_RE = re.compile(rb"^UID:(.*?)\r?$", re.M)
SUMMARY_RE = re.compile(rb"^SUMMARY([^:\r\n]*):(.*?)\r?$", re.M)

SHIM = """#!/bin/bash
case " $* " in
  *" --sync "*)
    start=$(date +%s.%N)
    "$SE_REAL" "$@"
    rc=$?
    end=$(date +%s.%N)
    echo "$start $end" >> "$SE_TIMING_FILE"
    exit $rc ;;
  *) exec "$SE_REAL" "$@" ;;
esac
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class CalsyncServer:
    name = "calsync"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.store = work / "store"
        self.store.mkdir(parents=True)
        self.port = free_port()
        cfg = work / "config.toml"
        cfg.write_text(
            f"""
[general]
state_dir = "{work / "state"}"
[stores.laptop]
type = "vdir"
path = "{self.store}"
[server]
listen = "127.0.0.1:{self.port}"
[syncml.accounts.test]
password = "test"
calendar = "laptop"
"""
        )
        cfg.chmod(0o600)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CALSYNC_CONFIG": str(cfg)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "calsync", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "server.log", "wb"),  # noqa: SIM115
        )
        wait_port(self.port, self.proc)
        self.url = f"http://127.0.0.1:{self.port}/sync"

    def files(self) -> list[Path]:
        return sorted(self.store.glob("*.ics"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


class SyncEvolutionServer:
    name = "syncevolution"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        env = {**os.environ, "SE_LOGLEVEL": "1", "SE_STORES": "calendar"}
        self.proc = subprocess.Popen(
            ["bash", str(PEER / "server.sh"), str(self.port), str(work)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.startswith(b"SERVER READY"):
                break
            if raw.startswith(b"SERVER FAILED") or raw.startswith(b"ERROR"):
                raise RuntimeError(raw.decode())
        else:
            raise RuntimeError("SyncEvolution's server did not start")
        self.store = work / "data" / "calendar"
        self.url = f"http://127.0.0.1:{self.port}/sync"

    def files(self) -> list[Path]:
        return sorted(p for p in self.store.iterdir() if p.is_file())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def summaries(paths: list[Path]) -> dict[bytes, set[bytes]]:
    """UID -> the SUMMARYs of its components (master and overrides)."""
    out: dict[bytes, set[bytes]] = {}
    for p in paths:
        data = re.sub(rb"\r?\n[ \t]", b"", p.read_bytes())
        uid = UID_RE.search(data)
        if uid:
            out[uid.group(1)] = {m.group(2) for m in SUMMARY_RE.finditer(data)}
    return out


def edit(path: Path, tag: str) -> bytes:
    """Change the SUMMARY of an item file (its first one); returns its UID."""
    data = path.read_bytes()
    new = SUMMARY_RE.sub(lambda m: b"SUMMARY" + m.group(1) + b":" + tag.encode(), data, count=1)
    assert new != data, path
    path.write_bytes(new)
    later = time.time() + 2  # SyncEvolution sees changes by mtime (seconds)
    os.utime(path, (later, later))
    uid = UID_RE.search(re.sub(rb"\r?\n[ \t]", b"", new))
    assert uid
    return uid.group(1)


def _plain(path: Path) -> bool:
    return path.read_bytes().count(b"BEGIN:VEVENT") == 1


class Client:
    def __init__(self, dir: Path, url: str, shim_dir: Path) -> None:
        self.dir = dir
        self.url = url
        self.shim_dir = shim_dir
        self.timing = dir / "timing.txt"

    def sync(self, mode: str) -> tuple[float, float]:
        """(session seconds, whole client-sync.sh seconds)."""
        env = {
            **os.environ,
            "PATH": f"{self.shim_dir}:{os.environ['PATH']}",
            "SE_REAL": shutil.which("syncevolution") or "/usr/bin/syncevolution",
            "SE_TIMING_FILE": str(self.timing),
            "SE_STORES": "calendar",
            "SE_LOGLEVEL": "1",
        }
        self.timing.unlink(missing_ok=True)
        started = time.perf_counter()
        proc = subprocess.run(
            [
                "bash",
                str(PEER / "client-sync.sh"),
                self.url,
                "test",
                "test",
                str(self.dir),
                mode,
                "ical20",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        whole = time.perf_counter() - started
        if "RESULT: OK" not in proc.stdout:
            raise RuntimeError(f"{mode} sync failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        start, end = map(float, self.timing.read_text().split())
        return end - start, whole


def one_run(kind: type, work: Path, data: Path, shim: Path, items: int) -> dict[str, Any]:
    server = kind(work / "server")
    try:
        client_dir = work / "client"
        shutil.copytree(data, client_dir / "calendar")
        client = Client(client_dir, server.url, shim)
        slow, slow_whole = client.sync("slow")
        stored = server.files()
        assert len(stored) == items, f"{kind.name}: {len(stored)} items on the server"
        n = max(1, items // 100)
        # SyncEvolution's client folds a recurring event's overrides into one VEVENT
        # (a limitation of its engine): edit plain events only, on both sides
        client_files = [p for p in sorted((client_dir / "calendar").iterdir()) if _plain(p)]
        client_uids = [edit(p, f"client edit {i}") for i, p in enumerate(client_files[:n])]
        server_files = [p for p in stored if _plain(p)]
        server_uids = [edit(p, f"server edit {i}") for i, p in enumerate(server_files[-n:])]
        two, two_whole = client.sync("two-way")
        on_server = summaries(server.files())
        on_client = summaries(list((client_dir / "calendar").iterdir()))
        for i, uid in enumerate(client_uids):
            assert f"client edit {i}".encode() in on_server[uid], (kind.name, uid)
        for i, uid in enumerate(server_uids):
            assert f"server edit {i}".encode() in on_client[uid], (kind.name, uid)
        assert len(on_server) == len(on_client) == items
        return {
            "slow_1000": slow,
            "twoway_1pct": two,
            "slow_whole": slow_whole,
            "twoway_whole": two_whole,
        }
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "syncml")
    args = ap.parse_args()
    for tool in ("syncevolution", "dbus-run-session"):
        if not shutil.which(tool):
            print(f"{tool} missing: run {SHARED}/peers/install.sh syncevolution", file=sys.stderr)
            return 2
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    shim = args.work / "shim"
    shim.mkdir()
    (shim / "syncevolution").write_text(SHIM)
    (shim / "syncevolution").chmod(0o755)
    data = args.work / "data"
    subprocess.run(
        [sys.executable, str(GEN), "-n", str(args.items), "--seed", "8", "--vdir", str(data)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    runs: dict[str, list[dict[str, Any]]] = {"calsync": [], "syncevolution": []}
    kinds = [CalsyncServer, SyncEvolutionServer]
    for rep in range(args.reps):
        order = kinds if rep % 2 == 0 else list(reversed(kinds))
        for kind in order:
            work = args.work / f"{kind.name}-{rep}"
            result = one_run(kind, work, data, shim, args.items)
            runs[kind.name].append(result)
            print(
                f"rep {rep + 1} {kind.name:13s} slow {result['slow_1000']:6.2f} s   "
                f"two-way {result['twoway_1pct']:6.2f} s",
                flush=True,
            )
    table = []
    ok = True
    for scenario in ("slow_1000", "twoway_1pct"):
        ours = statistics.median(r[scenario] for r in runs["calsync"])
        theirs = statistics.median(r[scenario] for r in runs["syncevolution"])
        ratio = ours / theirs
        ok &= ratio <= TARGET
        table.append(
            {
                "scenario": scenario,
                "calsync_s": round(ours, 3),
                "syncevolution_s": round(theirs, 3),
                "ratio": round(ratio, 3),
                "target": TARGET,
                "met": ratio <= TARGET,
            }
        )
    print()
    print("| scenario | calsync (s) | SyncEvolution server (s) | ratio | target |")
    print("|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['scenario']} | {row['calsync_s']:.2f} | {row['syncevolution_s']:.2f} | "
            f"{row['ratio']:.2f} | <= {TARGET} {'met' if row['met'] else 'MISSED'} |"
        )
    print(
        f"\n(median of {args.reps} alternating runs; {args.items} events from gen_calendar.py, "
        "same SyncEvolution 2.0 client; time = the client's sync session)"
    )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"syncml-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "benchmark": "syncml_bench",
                "items": args.items,
                "reps": args.reps,
                "machine": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                },
                "table": table,
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"JSON: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
