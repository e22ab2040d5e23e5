#!/usr/bin/env python3
"""Local sync benchmark: calsync vs vdirsyncer 0.21.0 on identical data.

Scenarios, at each size (default 1k and 10k; ``--scale 100000`` adds calsync
alone at 100k as a scaling point):

  vv_initial   vdir -> empty vdir, first sync
  vv_nochange  vdir <-> vdir, nothing changed
  vv_1pct      1% of items edited on each side (disjoint), then sync
  iv_initial   one .ics file -> empty vdir, first sync
  iv_nochange  .ics <-> vdir, nothing changed (the .ics must not be rewritten)
  iv_1pct      1% edited in the .ics file and 1% in the vdir, then sync

Both tools run as CLI processes under ``/usr/bin/time -v`` on their own copy of
the same generated data (``../shared/peers/vdirsyncer/gen_calendar.py``:
timezones, RRULE with overrides and EXDATE, attendees, alarms, folded lines,
non-ASCII), alternating which tool goes first.  Every run is checked: a
benchmark that syncs nothing proves nothing.  Reports the median wall time,
CPU time and peak RSS per scenario and the ratio vdirsyncer/calsync, prints a
table and writes JSON to bench/results/.

vdirsyncer 0.21.0 is installed into its own venv under bench/_work/ on first
use.  Usage::

    python3 bench/local_bench.py [--sizes 1000 10000] [--reps 3] [--scale 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("CALSYNC_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(SHARED / "peers" / "vdirsyncer"))
import gen_calendar  # noqa: E402

VDIRSYNCER = "vdirsyncer==0.21.0"
UID_RE = re.compile(r"^UID:(.*?)\r?$", re.M)

# targets at 10k items: scenario -> minimal ratio vdirsyncer/calsync
TARGETS = {
    "vv_nochange": 5.0,
    "vv_initial": 3.0,
    "vv_1pct": 5.0,
    "iv_nochange": 20.0,
    "iv_initial": 4.0,
}
RSS_TARGET_MIB = 80  # iv_initial at 10k (the only size the target speaks of)
SCALE_TARGET = 12.0  # 100k no-change <= 12x the 10k no-change


# -- tools ---------------------------------------------------------------------


def ensure_vdirsyncer(work: Path) -> Path:
    venv = work / "vdirsyncer-venv"
    exe = venv / "bin" / "vdirsyncer"
    if not exe.exists():
        print(f"installing {VDIRSYNCER} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", VDIRSYNCER], check=True)
    return exe


def ensure_calsync(work: Path) -> Path:
    """This checkout of calsync, installed (not editable) into its own venv.

    Both tools then start the way a user's install does: from a virtual
    environment of their own, byte-code compiled at install time, without
    whatever .pth files the system Python carries.
    """
    venv = work / "calsync-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing this checkout of calsync into {venv} ...", flush=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--force-reinstall", "--no-deps", str(ROOT)],
        check=True,
    )
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], check=True)
    return venv / "bin" / "calsync"


def io_pressure() -> float:
    """The share of time tasks waited for I/O over the last 10 s (Linux PSI), or 0."""
    try:
        line = Path("/proc/pressure/io").read_text().splitlines()[0]
        return float(line.split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0


def settle(limit: float = 2.0, max_wait: float = 30.0) -> None:
    """Let the file system finish the previous step's writes and deletions.

    Resetting a run deletes and copies tens of thousands of files; on a disk
    mounted with online discard that work goes on for seconds and would be
    billed to whichever tool runs next.  Flush, then wait until I/O is quiet.
    """
    os.sync()
    deadline = time.monotonic() + max_wait
    while io_pressure() > limit and time.monotonic() < deadline:
        time.sleep(0.5)


def tool_env() -> dict[str, str]:
    """The environment of a user's shell: byte-code caches allowed (some sandboxes
    set PYTHONDONTWRITEBYTECODE, which would make every run of either tool
    recompile its modules)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_up(tools: dict[str, list[str]]) -> None:
    """Run each tool once untimed, so its byte-code caches exist."""
    for exe in tools.values():
        subprocess.run([*exe, "--help"], capture_output=True, env=tool_env(), check=False)


def timed(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    settle()
    pressure_before = io_pressure()
    tfile = str(log) + ".time"
    t0 = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.call(
            ["/usr/bin/time", "-v", "-o", tfile, *cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wall = time.perf_counter() - t0
    tv = Path(tfile).read_text()

    def grab(label: str) -> float:
        m = re.search(re.escape(label) + r":\s*([\d.]+)", tv)
        return float(m.group(1)) if m else 0.0

    return {
        "rc": rc,
        "io_pressure_before": pressure_before,
        "wall_s": round(wall, 4),
        "cpu_s": round(grab("User time (seconds)") + grab("System time (seconds)"), 3),
        "rss_mib": round(grab("Maximum resident set size (kbytes)") / 1024, 1),
        "log": log.read_text(errors="replace")[-4000:],
    }


# -- the two sides of a pair -----------------------------------------------------


def edit_summaries(text: str, summaries: dict[str, str]) -> str:
    """Replace SUMMARY (and its continuation lines) of every component whose UID is
    a key of ``summaries``, in one pass (a 100k-item file is edited in seconds)."""
    nl = "\r\n" if "\r\n" in text else "\n"
    out: list[str] = []
    target: str | None = None
    skip = False
    for line in text.split(nl):
        if skip:
            if line.startswith((" ", "\t")):
                continue
            skip = False
        if line.startswith("BEGIN:V") and line != "BEGIN:VCALENDAR":
            target = None
        if line.startswith("UID:") and line[4:] in summaries:
            target = line[4:]
        if target is not None and line.startswith("SUMMARY"):
            out.append(f"SUMMARY:{summaries[target]}")
            skip = True
            continue
        out.append(line)
    return nl.join(out)


def read_keeping_newlines(path: Path) -> str:
    """The file's text with its line endings as they are, as an editor keeps them
    (``read_text`` would turn CRLF into LF: rewriting a whole .ics file that way
    changes every item in it, not the 1% the scenario edits)."""
    return path.read_bytes().decode("utf-8")


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".bench-tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


class Vdir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def index(self) -> dict[str, Path]:
        out = {}
        for p in self.path.iterdir():
            if p.suffix == ".ics":
                m = UID_RE.search(p.read_text(encoding="utf-8"))
                if m:
                    out[m.group(1)] = p
        return out

    def count(self) -> int:
        return sum(1 for p in self.path.iterdir() if p.suffix == ".ics")

    def edit(self, uids: list[str], summary: Callable[[str], str]) -> None:
        idx = self.index()
        for u in uids:
            p = idx[u]
            rewrite(p, edit_summaries(read_keeping_newlines(p), {u: summary(u)}))

    def summaries_ok(self, uids: list[str], summary: Callable[[str], str]) -> bool:
        idx = self.index()
        return all(
            f"SUMMARY:{summary(u)}\n" in idx[u].read_bytes().decode().replace("\r\n", "\n")
            for u in uids
        )


class Single:
    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        return len(set(UID_RE.findall(self.path.read_text(encoding="utf-8"))))

    def edit(self, uids: list[str], summary: Callable[[str], str]) -> None:
        text = read_keeping_newlines(self.path)
        rewrite(self.path, edit_summaries(text, {u: summary(u) for u in uids}))

    def summaries_ok(self, uids: list[str], summary: Callable[[str], str]) -> bool:
        """Every one of these UIDs carries its new SUMMARY (checked per item)."""
        found: dict[str, set[str | None]] = {}  # UID -> SUMMARYs of its components
        uid: str | None = None
        title: str | None = None
        in_alarm = False
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line in ("BEGIN:VEVENT", "BEGIN:VTODO", "BEGIN:VJOURNAL"):
                uid = title = None
            elif line == "BEGIN:VALARM":
                in_alarm = True
            elif line == "END:VALARM":
                in_alarm = False
            elif in_alarm:
                continue
            elif line.startswith("UID:"):
                uid = line[4:]
            elif line.startswith("SUMMARY:"):
                title = line[8:]
            elif line in ("END:VEVENT", "END:VTODO", "END:VJOURNAL") and uid is not None:
                found.setdefault(uid, set()).add(title)
        return all(found.get(u) == {summary(u)} for u in uids)


# -- one tool's copy of one pairing -------------------------------------------------


class Setup:
    def __init__(self, tool: str, root: Path, pairing: str, exe: list[str]) -> None:
        self.tool = tool
        self.base = root
        self.root = root
        self.pairing = pairing
        self.exe = exe
        self.a: Vdir | Single = Single(root / "a.ics") if pairing == "iv" else Vdir(root / "a")
        self.b = Vdir(root / "b")

    def reset(self, template: Path, rep: int) -> None:
        """A fresh copy of the data in a new directory (nothing is deleted here:
        ext4 makes creating files slow for a long while after a mass deletion,
        which would bill one tool for the previous run's clean-up)."""
        self.root = self.base / f"rep{rep}"
        self.a = Single(self.root / "a.ics") if self.pairing == "iv" else Vdir(self.root / "a")
        self.b = Vdir(self.root / "b")
        self.root.mkdir(parents=True)
        if self.pairing == "iv":
            shutil.copy(template / "a.ics", self.root / "a.ics")
        else:
            shutil.copytree(template / "a", self.root / "a")
        (self.root / "b").mkdir()
        self._config()

    def _config(self) -> None:
        r = self.root
        if self.tool == "calsync":
            a = (
                f'type = "ics"\npath = "{r}/a.ics"'
                if self.pairing == "iv"
                else f'type = "vdir"\npath = "{r}/a"'
            )
            (r / "config.toml").write_text(
                f'[general]\nstate_dir = "{r}/state"\n\n[stores.a]\n{a}\n\n'
                f'[stores.b]\ntype = "vdir"\npath = "{r}/b"\n\n'
                '[pairs.bench]\na = "a"\nb = "b"\nconflict = "a-wins"\n'
            )
        else:
            a = (
                f'type = "singlefile"\npath = "{r}/a.ics"'
                if self.pairing == "iv"
                else f'type = "filesystem"\npath = "{r}/a/"\nfileext = ".ics"'
            )
            (r / "status").mkdir(exist_ok=True)
            (r / "config").write_text(
                f'[general]\nstatus_path = "{r}/status/"\n\n[pair bench]\n'
                'a = "bench_a"\nb = "bench_b"\ncollections = null\n'
                'conflict_resolution = "a wins"\n\n'
                f"[storage bench_a]\n{a}\n\n"
                f'[storage bench_b]\ntype = "filesystem"\npath = "{r}/b/"\nfileext = ".ics"\n'
            )
            subprocess.run(
                [*self.exe, "-c", str(r / "config"), "discover"], capture_output=True, check=True
            )

    def sync(self, label: str) -> dict[str, Any]:
        log = self.root / f"{label}.log"
        if self.tool == "calsync":
            return timed(
                [*self.exe, "--config", str(self.root / "config.toml"), "sync", "--json"], log
            )
        return timed([*self.exe, "-c", str(self.root / "config"), "sync"], log)


def calsync_counts(run: dict[str, Any]) -> dict[str, Any]:
    text = run["log"]
    try:
        return dict(json.loads(text[text.index("{") :])["pairs"]["bench"])
    except (ValueError, KeyError):
        return {}


# -- driver ---------------------------------------------------------------------------


def runs_dir(work: Path) -> Path:
    """A fresh directory for this benchmark's runs; the benchmark deletes nothing.

    What is timed includes creating N files in a new directory, and the file
    system's state must not decide it: ext4 skips inodes freed in the last
    minutes when it allocates new ones, so files written after a mass deletion
    (a previous run's clean-up) cost seconds of system time, for either tool.
    So runs accumulate under ``<workdir>/runs`` (remove it yourself, a few
    minutes before benchmarking again), which is marked as a "top directory"
    (``chattr +T``, where supported) so that ext4 spreads runs over block groups.
    """
    parent = work / "runs"
    if not parent.exists():
        parent.mkdir()
        subprocess.run(["chattr", "+T", str(parent)], capture_output=True, check=False)
    runs = parent / time.strftime("%Y%m%d-%H%M%S")
    runs.mkdir()
    return runs


def make_template(work: Path, n: int, pairing: str) -> tuple[Path, list[str]]:
    tpl = work / f"template-{pairing}-{n}"
    items = list(gen_calendar.generate(n, seed=42))
    uids = [u for u, _, _ in items]
    if (tpl / "done").exists():
        return tpl, uids
    shutil.rmtree(tpl, ignore_errors=True)
    tpl.mkdir(parents=True)
    if pairing == "iv":
        body = "".join(b for _, b, _ in items)
        tzs = [t for _, _, ts in items for t in ts]
        (tpl / "a.ics").write_text(gen_calendar.wrap(body, tzs), encoding="utf-8", newline="")
    else:
        (tpl / "a").mkdir()
        for u, b, ts in items:
            (tpl / "a" / f"{u}.ics").write_text(
                gen_calendar.wrap(b, ts), encoding="utf-8", newline=""
            )
    (tpl / "done").write_text("ok")
    return tpl, uids


def run_pairing(
    work: Path, runs: Path, n: int, pairing: str, reps: int, tools: dict[str, list[str]]
) -> list[dict[str, Any]]:
    template, uids = make_template(work, n, pairing)
    setups = {t: Setup(t, runs / f"{pairing}-{n}" / t, pairing, exe) for t, exe in tools.items()}
    rows: list[dict[str, Any]] = []

    def record(scenario: str, tool: str, run: dict[str, Any], ok: bool, **extra: Any) -> None:
        row = {k: v for k, v in run.items() if k != "log"}
        row.update(
            scenario=f"{pairing}_{scenario}", n=n, tool=tool, ok=ok and run["rc"] == 0, **extra
        )
        if not row["ok"]:
            print(f"  !! {tool} {pairing}_{scenario} n={n} failed:\n{run['log'][-1500:]}")
        rows.append(row)

    order = list(setups)
    # initial sync, from scratch each rep
    for rep in range(reps):
        for tool in order if rep % 2 == 0 else order[::-1]:
            s = setups[tool]
            s.reset(template, rep)
            run = s.sync(f"initial{rep}")
            ok = s.b.count() == n
            if tool == "calsync":
                ok = ok and calsync_counts(run).get("added_b") == n
            record("initial", tool, run, ok, rep=rep)
    # no change
    for rep in range(reps):
        for tool in order if rep % 2 == 0 else order[::-1]:
            s = setups[tool]
            before = os.stat(s.a.path) if pairing == "iv" else None
            run = s.sync(f"nochange{rep}")
            ok = s.b.count() == n
            not_rewritten = None
            if before is not None:
                after = os.stat(s.a.path)
                not_rewritten = (before.st_ino, before.st_mtime_ns) == (
                    after.st_ino,
                    after.st_mtime_ns,
                )
            if tool == "calsync":
                c = calsync_counts(run)
                ok = (
                    ok
                    and c != {}
                    and not any(
                        c[k]
                        for k in (
                            "added_a",
                            "added_b",
                            "updated_a",
                            "updated_b",
                            "deleted_a",
                            "deleted_b",
                        )
                    )
                )
                if not_rewritten is not None:
                    ok = ok and not_rewritten
            record("nochange", tool, run, ok, rep=rep, file_not_rewritten=not_rewritten)
    # 1% edited on each side, disjoint, a different 1% each rep
    k = max(1, n // 100)
    for rep in range(reps):
        a_set = [u for j, u in enumerate(uids) if j % 100 == (2 * rep) % 100][:k]
        b_set = [u for j, u in enumerate(uids) if j % 100 == (2 * rep + 1) % 100][:k]
        for tool in order if rep % 2 == 0 else order[::-1]:
            s = setups[tool]
            s.a.edit(a_set, lambda u, r=rep: f"edited on A rep {r}")
            s.b.edit(b_set, lambda u, r=rep: f"edited on B rep {r}")
            run = s.sync(f"change{rep}")
            ok = s.b.summaries_ok(
                a_set, lambda u, r=rep: f"edited on A rep {r}"
            ) and s.a.summaries_ok(b_set, lambda u, r=rep: f"edited on B rep {r}")
            if tool == "calsync":
                c = calsync_counts(run)
                ok = ok and c.get("updated_a") == k and c.get("updated_b") == k
            record("1pct", tool, run, ok, rep=rep, edited_per_side=k)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["n"]), {}).setdefault(r["tool"], []).append(r)
    table = []
    for (scenario, n), by_tool in groups.items():
        entry: dict[str, Any] = {"scenario": scenario, "n": n}
        for tool, rs in by_tool.items():
            entry[tool] = {
                "wall_s": statistics.median(x["wall_s"] for x in rs),
                "cpu_s": statistics.median(x["cpu_s"] for x in rs),
                "rss_mib": max(x["rss_mib"] for x in rs),
                "runs": len(rs),
                "ok": all(x["ok"] for x in rs),
            }
        if "calsync" in entry and "vdirsyncer" in entry:
            entry["ratio"] = round(entry["vdirsyncer"]["wall_s"] / entry["calsync"]["wall_s"], 2)
            target = TARGETS.get(scenario)
            if target is not None and n >= 10000:
                entry["target"] = target
                entry["meets_target"] = entry["ratio"] >= target
        table.append(entry)
    return table


def print_table(table: list[dict[str, Any]], scaling: dict[str, Any]) -> None:
    print(
        "\n| scenario | N | calsync wall s | CPU s | RSS MiB | vdirsyncer wall s | CPU s |"
        " RSS MiB | ratio | target | ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for e in table:
        c, v = e.get("calsync", {}), e.get("vdirsyncer", {})

        def cell(d: dict[str, Any], key: str, fmt: str) -> str:
            return format(d[key], fmt) if key in d else "-"

        target = e.get("target")
        verdict = "" if target is None else ("met" if e["meets_target"] else "MISSED")
        ok = c.get("ok", True) and v.get("ok", True)
        print(
            f"| {e['scenario']} | {e['n']} | {cell(c, 'wall_s', '.3f')} | "
            f"{cell(c, 'cpu_s', '.2f')} | {cell(c, 'rss_mib', '.0f')} | "
            f"{cell(v, 'wall_s', '.3f')} | {cell(v, 'cpu_s', '.2f')} | "
            f"{cell(v, 'rss_mib', '.0f')} | {e.get('ratio', '-')} | "
            f"{'' if target is None else f'>= {target}x '}{verdict} | {ok} |"
        )
    for key, value in scaling.items():
        print(f"\nscaling {key}: {value}")


def keep_partial(out_dir: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The runs so far, so that a long benchmark cut short still leaves its figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "local-partial.json").write_text(
        json.dumps({"meta": meta, "table": summarize(rows), "rows": rows}, indent=1)
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--pairings", nargs="+", default=["vv", "iv"], choices=["vv", "iv"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=int, default=0, help="also run calsync alone at this size")
    ap.add_argument("--workdir", type=Path, default=HERE / "_work")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--no-vdirsyncer", action="store_true", help="calsync only")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs = runs_dir(args.workdir)
    tools = {"calsync": [str(ensure_calsync(args.workdir))]}
    if not args.no_vdirsyncer:
        tools["vdirsyncer"] = [str(ensure_vdirsyncer(args.workdir))]
    warm_up(tools)
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_avg_at_start": os.getloadavg(),
        "io_pressure_at_start": io_pressure(),
    }
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        for pairing in args.pairings:
            print(f"== {pairing} n={n}", flush=True)
            rows += run_pairing(args.workdir, runs, n, pairing, args.reps, tools)
            keep_partial(args.out, meta, rows)
    scaling: dict[str, Any] = {}
    if args.scale:
        for pairing in args.pairings:
            print(f"== {pairing} n={args.scale} (calsync alone)", flush=True)
            rows += run_pairing(
                args.workdir, runs, args.scale, pairing, args.reps, {"calsync": tools["calsync"]}
            )
            keep_partial(args.out, meta, rows)
    table = summarize(rows)
    if args.scale:
        for pairing in args.pairings:
            small = [
                e
                for e in table
                if e["scenario"] == f"{pairing}_nochange" and e["n"] == max(args.sizes)
            ]
            big = [
                e for e in table if e["scenario"] == f"{pairing}_nochange" and e["n"] == args.scale
            ]
            if small and big:
                factor = big[0]["calsync"]["wall_s"] / small[0]["calsync"]["wall_s"]
                scaling[f"{pairing}_nochange {args.scale} / {max(args.sizes)}"] = (
                    f"{factor:.2f}x (target <= {SCALE_TARGET}x: "
                    f"{'met' if factor <= SCALE_TARGET else 'MISSED'})"
                )
    print_table(table, scaling)
    iv = [e for e in table if e["scenario"] == "iv_initial" and e["n"] == 10000 and "calsync" in e]
    for e in iv:
        rss = e["calsync"]["rss_mib"]
        print(
            f"iv_initial n={e['n']} calsync peak RSS {rss:.0f} MiB "
            f"(target <= {RSS_TARGET_MIB}: {'met' if rss <= RSS_TARGET_MIB else 'MISSED'})"
        )
    meta["load_avg_at_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"local-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps({"meta": meta, "table": table, "scaling": scaling, "rows": rows}, indent=1)
    )
    print(f"\nraw results: {out}")
    if not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
