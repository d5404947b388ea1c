"""Benchmark: discovery of 1,000, 10,000 and 100,000 devices on PostgreSQL (not a test; figures go to bench/README.md).

For each size and repetition, in a fresh process: a first run on an empty database, then a second run with
nothing changed. Reports wall time (and its reading and evaluating parts), the memory the run added on top
of the process with the tenant loaded (resident memory sampled every 20 ms), Graph requests, and the share of
time spent outside the simulated Graph (the portal's own work). Medians over the repetitions.

    .venv/bin/python bench/discovery.py [--sizes 1000,10000,100000] [--repeat 3]
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/autopatch_bench (the default; dropped and created)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/autopatch_bench")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("AUTOPATCH_VAR_DIR", str(REPO / "var" / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopatch_portal.settings")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Samples the process's resident memory every 20 ms while a run goes."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def recreate_database() -> None:
    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def one(size: int) -> None:
    """One repetition in a fresh process: an empty database, a first run, then a second with nothing changed."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from autopatch_portal.tenant import connection as tenant_connection
    from autopatch_portal.tenant.simulated import SimulatedTenant
    from devices.runs import discover_now

    # Time spent answering inside the simulated tenant, to subtract from the wall time.
    graph_seconds = [0.0]
    original_handle = SimulatedTenant.handle

    def timed_handle(self, *a, **kw):
        start = time.perf_counter()
        try:
            return original_handle(self, *a, **kw)
        finally:
            graph_seconds[0] += time.perf_counter() - start

    SimulatedTenant.handle = timed_handle
    recreate_database()
    connection.close()
    call_command("migrate", verbosity=0)
    path = Path(settings.VAR_DIR) / f"tenant-{size}.json"
    if not path.exists():
        call_command("make_tenant", devices=size, out=str(path), seed=1, stdout=open(os.devnull, "w"))
    settings.AUTOPATCH_TENANT_FILE = str(path)
    tenant_connection.simulated_tenant(path)  # loaded before measuring: it stands for Microsoft's cloud
    for which in ("first", "second"):
        gc.collect()
        base = rss_mb()
        graph_seconds[0] = 0.0
        start = time.perf_counter()
        with PeakRss() as peak:
            run = discover_now()
        wall = time.perf_counter() - start
        assert run.status == "succeeded", run.errors
        print(json.dumps({
            "devices": size, "run": which, "wall": wall, "extra_mb": peak.peak - base, "requests": run.graph_requests,
            "outside": (wall - graph_seconds[0]) / wall, "candidates": run.counts.get("candidates", 0),
            "changed": run.counts.get("changed", 0), "reading": run.counts.get("seconds_reading"),
            "evaluating": run.counts.get("seconds_evaluating"),
        }), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each size (100,000: at most 2)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        runs: dict[str, list[dict]] = {"first": [], "second": []}
        for _ in range(min(args.repeat, 2) if size >= 100_000 else args.repeat):
            out = subprocess.run([sys.executable, __file__, "--one", str(size)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            for line in out.stdout.splitlines():
                row = json.loads(line)
                runs[row["run"]].append(row)
        for which, rows in runs.items():
            results.append({
                "devices": size, "run": which, "repeat": len(rows), "candidates": rows[0]["candidates"],
                "changed": rows[0]["changed"], "wall_s": round(statistics.median(r["wall"] for r in rows), 2),
                "reading_s": round(statistics.median(r["reading"] for r in rows), 1),
                "evaluating_s": round(statistics.median(r["evaluating"] for r in rows), 1),
                "extra_rss_mb": round(statistics.median(r["extra_mb"] for r in rows), 1),
                "graph_requests": rows[0]["requests"],
                "outside_graph": f"{statistics.median(r['outside'] for r in rows):.0%}",
            })  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, " + subprocess.run(
        ["sh", "-c", "free -g | awk '/Mem:/{print $2\" GiB\"}'"], capture_output=True, text=True).stdout.strip()
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\nmachine: {machine}; {version}")
    print("| devices | run | repeats | candidates | devices written | wall (s) | reading (s) | evaluating (s) "
          "| memory added (MB) | Graph requests | time outside Graph |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['devices']:,} | {r['run']} | {r['repeat']} | {r['candidates']:,} | {r['changed']:,} | {r['wall_s']} "
              f"| {r['reading_s']} | {r['evaluating_s']} | {r['extra_rss_mb']} | {r['graph_requests']} "
              f"| {r['outside_graph']} |")


if __name__ == "__main__":
    main()
