"""Migration benchmark: vdirsyncer 0.21 -> ``calsync migrate vdirsyncer`` -> first calsync sync.

A vdirsyncer pair with ``collections`` (a folder of vdirs <-> a Radicale
account holding N events in one calendar) syncs first with vdirsyncer; then
``calsync migrate vdirsyncer --write`` takes it over, and calsync's first sync
must write nothing (no file in the vdirs changes, no PUT/DELETE/PROPPATCH) and
send at most 2 HTTP requests per collection (counted by the proxy of
``caldav_bench``).  A second calsync sync shows the steady state.

Usage:
  python3 bench/migrate_bench.py [-n 10000] [--workdir bench/_work/migrate]
      [--out FILE.json] [--vdirsyncer PATH]

Reuses ``caldav_bench``'s Radicale (events copied in, caches warmed) and its
vdirsyncer venv; every run gets a fresh directory under ``<workdir>/runs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from caldav_bench import (  # noqa: E402
    PASSWORD,
    USER,
    Radicale,
    generate,
    log,
    vdirsyncer_bin,
)

from tests.stores.caldav.proxy import Proxy  # noqa: E402

LIMIT = 2  # HTTP requests per collection the first sync after migrating may send


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_size)
        for p in root.rglob("*")
        if p.is_file()
    }


def calsync(config: Path, state: Path, *args: str) -> tuple[dict[str, Any], float]:
    env = {**os.environ, "CALSYNC_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "calsync", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"calsync {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return (json.loads(proc.stdout) if "--json" in args else {"output": proc.stdout}), took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work" / "migrate")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--vdirsyncer", help="an existing vdirsyncer 0.21 executable")
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    exe = vdirsyncer_bin(work, args.vdirsyncer)
    events = generate(work, args.n)
    rad = Radicale(work, events, args.n)
    rad.prepare()
    rad.start(lifted=True)
    run = work / "runs" / time.strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True)
    proxy = Proxy(f"http://127.0.0.1:{rad.port}").start()
    try:
        rad.warm()
        (run / "cals").mkdir()
        vds = run / "vdirsyncer.conf"
        vds.write_text(
            f'[general]\nstatus_path = "{run}/vds-status/"\n\n'
            '[pair acct]\na = "local"\nb = "server"\ncollections = ["from a", "from b"]\n'
            'metadata = ["color", "displayname"]\n\n'
            f'[storage local]\ntype = "filesystem"\npath = "{run}/cals/"\nfileext = ".ics"\n\n'
            f'[storage server]\ntype = "caldav"\nurl = "{proxy.url}/test/"\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\n'
        )
        for step in ("discover", "sync", "metasync"):
            started = time.monotonic()
            subprocess.run(
                [str(exe), "-c", str(vds), step],
                check=True,
                capture_output=True,
                input=b"y\n" * 10,
                timeout=7200,
            )
            log(f"vdirsyncer {step}: {time.monotonic() - started:.1f} s")
        collections = sorted(p.name for p in (run / "cals").iterdir() if p.is_dir())
        items = sum(len(list((run / "cals" / c).glob("*.ics"))) for c in collections)
        config, state = run / "calsync.toml", run / "calsync-state"
        env = {**os.environ, "CALSYNC_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
        started = time.monotonic()
        migrated = subprocess.run(
            [
                *(sys.executable, "-m", "calsync", "migrate", "vdirsyncer"),
                str(vds),
                "--write",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        migrate_s = time.monotonic() - started
        if migrated.returncode != 0:
            raise SystemExit(f"calsync migrate failed:\n{migrated.stdout}{migrated.stderr}")
        log(migrated.stdout.strip())
        results: dict[str, Any] = {
            "items": items,
            "collections": collections,
            "migrate_seconds": round(migrate_s, 2),
            "limit_per_collection": LIMIT,
        }
        for label in ("first sync after migrating", "second sync"):
            before = snapshot(run / "cals")
            proxy.stats.reset()
            answer, took = calsync(config, state, "sync", "--json")
            counts = answer["pairs"]["acct"]
            writes = {k: v for k, v in counts.items() if k.startswith(("added", "updated", "del"))}
            results[label] = {
                "seconds": round(took, 2),
                "requests": proxy.stats.count(),
                "by_method": dict(proxy.stats.by_method()),
                "store_writes": sum(writes.values()),
                "files_changed": sum(
                    1 for k, v in snapshot(run / "cals").items() if before.get(k) != v
                ),
            }
            log(f"{label}: {results[label]}")
        first = results["first sync after migrating"]
        results["ok"] = (
            first["store_writes"] == 0
            and first["files_changed"] == 0
            and first["requests"] <= LIMIT * len(collections)
            and set(first["by_method"]) <= {"PROPFIND", "REPORT"}
        )
    finally:
        proxy.stop()
        rad.stop()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    shutil.rmtree(run / "cals", ignore_errors=True)  # the run's vdirs: large, not needed
    sys.exit(0 if results["ok"] else 1)


if __name__ == "__main__":
    main()
