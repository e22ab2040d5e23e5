#!/usr/bin/env python3
"""CalDAV benchmark: calsync vs vdirsyncer 0.21 against the same Radicale.

For each size N (default 1000 and 10000 events from the shared generator
``../shared/peers/vdirsyncer/gen_calendar.py``):

  initial    first sync: N events on the server, empty local vdir -> N downloads
  nochange   the same sync again, nothing changed

Both tools run as CLI processes (``python3 -m calsync sync``, ``vdirsyncer
sync``) against one Radicale behind a counting proxy (every HTTP request is
counted there), alternating which tool goes first in each repetition.  Wall
time is the whole process; CPU time is the tool's (user + system, from wait4)
and Radicale's (from /proc), which a busy machine disturbs less than wall time;
peak RSS is the tool's (GNU time).  The table gives medians; the JSON has every run and
the load average at each.

Radicale's anti-DoS limit (``[reporting] max_expand_occurrence``, 10000
VEVENTs per REPORT) is lifted for the timed runs: vdirsyncer asks for every
item in ONE calendar-multiget and is refused (HTTP 400) at 10k otherwise.  At
10k both tools also run once with the default limit (``*_default_limit``):
vdirsyncer fails; calsync's one calendar-query is refused the same way and it
falls back to a listing and multigets.

Usage:
  python3 bench/caldav_bench.py [--sizes 1000 10000] [--reps 3]
      [--workdir bench/_work/caldav] [--out FILE.json] [--vdirsyncer PATH]

First run: creates a venv with vdirsyncer==0.21.0 under the work dir and fills
Radicale (about 2 minutes per 10k items: Radicale parses every item once).
Every run writes into a directory of its own under ``<workdir>/runs/`` (about
250 MB per benchmark at the default sizes), which the benchmark never deletes:
see ``runs_dir`` for why, and delete it yourself a few minutes before the next.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calsync.stores.caldav import xml  # noqa: E402
from calsync.stores.caldav.client import DavClient  # noqa: E402
from tests.stores.caldav.proxy import Proxy  # noqa: E402

SHARED = Path(os.environ.get("CALSYNC_SHARED", ROOT.parent / "shared"))
PEERS = SHARED / "peers"
USER = PASSWORD = "test"
VDIRSYNCER = "vdirsyncer==0.21.0"
TOOLS = ("calsync", "vdirsyncer")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- setup -----------------------------------------------------------------------


def vdirsyncer_bin(work: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    venv = work / "vdirsyncer-venv"
    exe = venv / "bin" / "vdirsyncer"
    if not exe.exists():
        log(f"installing {VDIRSYNCER} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", VDIRSYNCER], check=True)
    return exe


def generate(work: Path, n: int) -> Path:
    out = work / f"events-{n}"
    if not out.is_dir() or len(list(out.glob("*.ics"))) != n:
        shutil.rmtree(out, ignore_errors=True)
        gen = PEERS / "vdirsyncer" / "gen_calendar.py"
        subprocess.run(
            [sys.executable, str(gen), "-n", str(n), "--seed", "1", "--vdir", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Radicale:
    """A Radicale holding N events, started from its own config (limit lifted or not)."""

    def __init__(self, work: Path, events: Path, n: int) -> None:
        self.dir = work / f"radicale-{n}"
        self.events = events
        self.n = n
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def calendar(self) -> str:
        return f"http://127.0.0.1:{self.port}/test/calendar/"

    def prepare(self) -> None:
        """Config and calendar by the shared script, then the events copied in."""
        marker = self.dir / "filled"
        if marker.exists():
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        out = subprocess.run(
            [str(PEERS / "caldav" / "radicale.sh"), str(free_port()), str(self.dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        os.kill(int(out.stdout.split()[-1]), signal.SIGTERM)
        time.sleep(1)
        cal = self.dir / "collections" / "collection-root" / USER / "calendar"
        for f in self.events.glob("*.ics"):
            shutil.copyfile(f, cal / f.name)
        marker.write_text(str(self.n))

    def start(self, lifted: bool) -> None:
        self.port = free_port()
        conf = (self.dir / "config").read_text().split("\n[reporting]")[0]
        conf = conf.replace(
            next(line for line in conf.splitlines() if line.startswith("hosts")),
            f"hosts = 127.0.0.1:{self.port}",
        )
        if lifted:
            conf += "\n[reporting]\nmax_expand_occurrence = 0\n"
        (self.dir / "config").write_text(conf)
        venv = Path(os.environ.get("PEERS_VENV", Path.home() / ".cache/caldav-peers/venv"))
        with open(self.dir / "radicale.log", "ab") as logf:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / "radicale"), "--config", str(self.dir / "config")],
                stdout=logf,
                stderr=logf,
                start_new_session=True,
            )
        client = DavClient(username=USER, password=lambda: PASSWORD, auth_scheme="basic")
        try:
            for _ in range(300):
                try:
                    if client.propfind(self.calendar, ["D:resourcetype"], "0").status == 207:
                        break
                except Exception:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit(f"radicale did not start, see {self.dir}/radicale.log")
        finally:
            client.close()

    def warm(self) -> None:
        """Read every item once and compute the sync-token once, so that neither tool
        pays for Radicale's caches: its item cache and the per-item sync history, which
        Radicale writes on upload -- the events were copied in behind its back."""
        started = time.monotonic()
        client = DavClient(
            username=USER, password=lambda: PASSWORD, auth_scheme="basic", timeout=1800
        )
        try:
            assert client.propfind(self.calendar, ["D:sync-token"], "0").status == 207
            listing = client.propfind(self.calendar, ["D:getetag"], "1").multistatus()
            hrefs = [r.href for r in listing.responses if not r.href.endswith("/")]
            for i in range(0, len(hrefs), 500):
                resp = client.report(self.calendar, xml.multiget(hrefs[i : i + 500]))
                assert resp.status == 207, resp.status
        finally:
            client.close()
        log(f"radicale warm ({len(hrefs)} items, {time.monotonic() - started:.1f} s)")

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None


# -- the two tools ------------------------------------------------------------------


def calsync_run(run: Path, url: str) -> list[str]:
    if not (run / "config.toml").exists():
        run.mkdir(parents=True, exist_ok=True)
        cfg = run / "config.toml"
        cfg.write_text(
            f'[general]\nstate_dir = "{run}/state"\n\n'
            f'[stores.local]\ntype = "vdir"\npath = "{run}/local"\ncreate = true\n\n'
            f'[stores.server]\ntype = "caldav"\nurl = "{url}"\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\n\n'
            '[pairs.bench]\na = "local"\nb = "server"\n'
        )
        cfg.chmod(0o600)
    return [sys.executable, "-m", "calsync", "--config", str(run / "config.toml"), "sync"]


def vdirsyncer_run(run: Path, url: str, exe: Path) -> list[str]:
    cfg = run / "config"
    if not cfg.exists():
        (run / "local").mkdir(parents=True, exist_ok=True)
        cfg.write_text(
            f'[general]\nstatus_path = "{run}/status/"\n\n'
            '[pair bench]\na = "bench_local"\nb = "bench_remote"\ncollections = null\n\n'
            f'[storage bench_local]\ntype = "filesystem"\npath = "{run}/local/"\n'
            'fileext = ".ics"\n\n'
            f'[storage bench_remote]\ntype = "caldav"\nurl = "{url}"\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\n'
        )
        subprocess.run(
            [str(exe), "-c", str(cfg), "discover"],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    return [str(exe), "-c", str(cfg), "sync"]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], proxy: Proxy, server_pid: int) -> dict[str, Any]:
    """Run one sync: wall time, the tool's CPU time (wait4) and peak RSS (GNU time: a
    child forked from this process would inherit its high-water mark), the server's
    CPU time, and the requests the proxy saw."""
    proxy.stats.reset()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server_before = process_cpu(server_pid)
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        timer = ["/usr/bin/time", "-f", "%M", "-o", rss.name]
        started = time.perf_counter()
        proc = subprocess.Popen(
            timer + cmd, stdout=out, stderr=out, env=env, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read().decode(errors="replace")[-400:] if proc.returncode else ""
        peak_kib = int(rss.read().split()[-1])
    return {
        "wall": round(wall, 3),
        "cpu": round(usage.ru_utime + usage.ru_stime, 3),
        "server_cpu": round(process_cpu(server_pid) - server_before, 3),
        "rss_mib": round(peak_kib / 1024, 1),
        "requests": proxy.stats.count(),
        "by_method": dict(proxy.stats.by_method()),
        "exit": proc.returncode,
        "tail": tail,
    }


def runs_dir(work: Path) -> Path:
    """A fresh directory for this benchmark's runs; nothing is deleted.

    What is timed includes creating N files in a new directory, as a user's first
    sync does, and the file system's state must not decide it.  It did: ext4 skips
    inodes freed in the last five minutes when it allocates new ones (while their
    inode table block is dirty), so 10k files written after a mass deletion --
    a previous run's -- cost seconds of system time, for either tool.  So the
    benchmark deletes nothing (remove ``<workdir>/runs`` yourself, a few minutes
    before benchmarking again), and ``runs`` is marked as a "top directory"
    (``chattr +T``, where supported) so that ext4 spreads the runs over block
    groups instead of packing them next to each other.
    """
    parent = work / "runs"
    fresh = not parent.exists()
    parent.mkdir(exist_ok=True)
    if fresh:
        try:
            subprocess.run(["chattr", "+T", str(parent)], capture_output=True, check=False)
        except OSError:
            pass  # no chattr: the runs are packed together; timings get noisier
    runs = parent / time.strftime("%Y%m%d-%H%M%S")
    runs.mkdir()
    return runs


def local_count(run: Path) -> int:
    return len(list((run / "local").glob("*.ics")))


def bench_size(
    work: Path,
    runs: Path,
    n: int,
    reps: int,
    exe: Path,
    results: list[dict[str, Any]],
    notes: dict[str, Any],
) -> None:
    events = generate(work, n)
    rad = Radicale(work, events, n)
    rad.prepare()
    if n >= 10_000:  # how do both tools fare with Radicale's default limit?
        rad.start(lifted=False)
        proxy = Proxy(f"http://127.0.0.1:{rad.port}").start()
        assert rad.proc is not None
        try:
            for tool in TOOLS:
                run = runs / f"{n}-{tool}-default-limit"
                url = f"{proxy.url}/test/calendar/"
                cmd = calsync_run(run, url) if tool == "calsync" else vdirsyncer_run(run, url, exe)
                got = timed(cmd, proxy, rad.proc.pid)
                count = local_count(run)
                notes[f"{tool}_default_limit_{n}"] = {**got, "downloaded": count}
                log(
                    f"{tool}, default Radicale limits, {n}: exit {got['exit']}, {count} items, "
                    f"{got['wall']:.2f} s, cpu {got['cpu']:.2f} + server {got['server_cpu']:.2f}"
                    f" s, {got['requests']} requests {got['by_method']}"
                )
        finally:
            proxy.stop()
            rad.stop()
    rad.start(lifted=True)
    rad.warm()
    proxy = Proxy(f"http://127.0.0.1:{rad.port}").start()
    url = f"{proxy.url}/test/calendar/"
    try:
        for rep in range(reps):
            order = TOOLS if rep % 2 == 0 else TOOLS[::-1]
            for tool in order:
                run = runs / f"{n}-{tool}-{rep}"
                cmd = calsync_run(run, url) if tool == "calsync" else vdirsyncer_run(run, url, exe)
                for scenario in ("initial", "nochange"):
                    assert rad.proc is not None
                    got = timed(cmd, proxy, rad.proc.pid)
                    got.update(size=n, tool=tool, scenario=scenario, rep=rep)
                    got["load"] = os.getloadavg()[0]
                    got["items"] = local_count(run)
                    results.append(got)
                    log(
                        f"{n:>6} {scenario:<9} {tool:<10} {got['wall']:7.2f} s  cpu "
                        f"{got['cpu']:5.2f} s  server {got['server_cpu']:5.2f} s  "
                        f"{got['rss_mib']:6.1f} MiB {got['requests']:>5} requests  "
                        f"exit {got['exit']} items {got['items']}  load {os.getloadavg()[0]:.2f}"
                    )
                    if got["exit"] != 0 or got["items"] != n:
                        raise SystemExit(f"{tool} failed: {got['tail']}")
    finally:
        proxy.stop()
        rad.stop()


def table(results: list[dict[str, Any]]) -> str:
    """Medians per size, scenario and tool; the ratio is on wall time, and on CPU time
    (tool + server), which a busy machine disturbs less."""
    rows = [
        "| events | scenario | tool | wall (median) | wall (min) | CPU tool + server "
        "| peak RSS | HTTP requests | vdirsyncer / calsync (wall, CPU) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["size"], r["scenario"]) for r in results}, key=lambda k: (k[0], k[1]))
    for size, scenario in keys:
        walls: dict[str, float] = {}
        cpus: dict[str, float] = {}
        for tool in TOOLS:
            got = [r for r in results if (r["size"], r["scenario"], r["tool"]) == (size, scenario, tool)]  # fmt: skip  # noqa: E501
            if not got:
                continue
            walls[tool] = statistics.median(r["wall"] for r in got)
            cpus[tool] = statistics.median(r.get("cpu", 0) + r.get("server_cpu", 0) for r in got)
            tool_cpu = statistics.median(r.get("cpu", 0) for r in got)
            server_cpu = statistics.median(r.get("server_cpu", 0) for r in got)
            rss = max(r.get("rss_mib", 0) for r in got)
            reqs = sorted({r["requests"] for r in got})
            ratio = ""
            if tool == "vdirsyncer" and "calsync" in walls:
                ratio = (
                    f"{walls['vdirsyncer'] / walls['calsync']:.2f}x, "
                    f"{cpus['vdirsyncer'] / max(cpus['calsync'], 1e-9):.2f}x"
                )
            rows.append(
                f"| {size} | {scenario} | {tool} | {walls[tool]:.2f} s "
                f"| {min(r['wall'] for r in got):.2f} s | {tool_cpu:.2f} + {server_cpu:.2f} s "
                f"| {rss:.0f} MiB | {'/'.join(map(str, reqs))} | {ratio} |"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work" / "caldav")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--vdirsyncer", help="an existing vdirsyncer 0.21 executable")
    args = ap.parse_args()
    work: Path = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    runs = runs_dir(work)
    exe = vdirsyncer_bin(work, args.vdirsyncer)
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    results: list[dict[str, Any]] = []
    notes: dict[str, Any] = {"load_before": os.getloadavg()}
    for n in args.sizes:
        bench_size(work, runs, n, args.reps, exe, results, notes)
    notes["load_after"] = os.getloadavg()
    out = args.out or work / "results" / f"caldav-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": sys.version.split()[0],
        "vdirsyncer": version.strip(),
        "server": "Radicale (PEERS_VENV), counting proxy in front",
    }
    out.write_text(json.dumps({"meta": meta, "notes": notes, "runs": results}, indent=1))
    print(table(results))
    for key, value in notes.items():
        if "_default_limit_" in key:
            print(
                f"\n{key}: exit {value['exit']}, {value['downloaded']} items downloaded, "
                f"{value['wall']:.2f} s, {value['requests']} requests"
            )
    print(f"\nload average before/after: {notes['load_before']} / {notes['load_after']}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
