"""Benchmark: readiness reports for 100,000 devices posted to the API, against gunicorn on PostgreSQL (not a test;
figures go to bench/README.md).

Setup, once: a fresh database, migrated; N registered, Active devices written straight into it (as a discovery
leaves them: the API's work per report does not depend on how they got there); a readiness key. Then gunicorn
serves the portal (settings from the environment, persistent database connections) and, for each repetition:
- **one report a request**: a request per device (or the first `--single-reports` devices), each one report, from
  `--concurrency` clients at once;
  every report fails "Internet connectivity", so every device's readiness status changes (Active to Readiness
  failed: the device row and a status history row are written at once, besides the report);
- **batches of 1,000**: N / 1,000 requests of 1,000 reports from `--batch-concurrency` clients, every check passed
  (every device goes back to Active).
Then two floors, in the same run: the same clients posting an empty list (refused with 400 before anything is
read or written: what gunicorn, Django, DRF and the key's check cost a request here, the ceiling of one report a
request), and the devices' status changed by plain `UPDATE`s of 1,000 rows from `--batch-concurrency` connections
(what a batch must write at least).
Each request's latency is measured at the client; throughput is reports over the phase's wall time. At the end of
each phase the stored reports are counted (every device must hold the phase's report) and so are the devices whose
status it changed. The clients are threads with a keep-alive connection each, in this process, on the same
machine as the server: they take part of the same cores.

    .venv/bin/python bench/api_readiness.py [--devices 100000] [--repeat 3] [--workers 4] [--threads 4]
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/autopatch_api_bench (the default; dropped and created)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/autopatch_api_bench")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("AUTOPATCH_VAR_DIR", str(REPO / "var" / "bench-api"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopatch_portal.settings")
CHECKS = ["Windows Autopatch network endpoints", "Internet connectivity"]


def recreate_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup(devices: int) -> tuple[str, list[str]]:
    """A migrated database with `devices` registered Active devices; returns a readiness key and the device IDs."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.api_keys import create_key
    from devices.bulk import bulk_write
    from devices.models import Device

    call_command("migrate", verbosity=0)
    now = timezone.now()
    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(devices)]
    rows = [
        Device(
            azure_ad_device_id=d,
            device_name=f"BENCH-{i:06d}",
            serial_number=f"SN{i:08d}",
            readiness_status="active",
            registered_at=now,
            ring="broad",
            ring_assigned_by="autopatch",
            last_intune_checkin=now - timedelta(days=1),
            management="intune",
            first_discovered_at=now,
        )
        for i, d in enumerate(ids)
    ]
    for start in range(0, len(rows), 10_000):
        bulk_write(rows[start : start + 10_000])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    _, key = create_key("bench-fleet", "readiness", "bench")
    connection.close()
    return key, ids


def report(device_id: str, at: str, failed: bool) -> dict:
    return {
        "azureADDeviceId": device_id,
        "generatedDateTime": at,
        "checks": [
            {
                "name": name,
                "result": "failed" if failed and name == "Internet connectivity" else "passed",
                "detail": "No route to the internet" if failed and name == "Internet connectivity" else "",
            }
            for name in CHECKS
        ],
    }


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DB_CONN_MAX_AGE": "600",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "ERROR",  # the stack floor's 400s would each log a line
    }
    server = subprocess.Popen(
        [
            str(REPO / ".venv/bin/gunicorn"),
            "autopatch_portal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
    )
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not start")


def in_threads(work, concurrency: int) -> float:
    """Run `work` in `concurrency` threads at once; the wall seconds until the last one ends."""
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def post_all(
    port: int, key: str, bodies: list[bytes], concurrency: int, expected: int = 200
) -> tuple[float, list[float], int]:
    """POST every body from `concurrency` keep-alive clients; wall seconds, latencies, and unexpected answers."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine: list[float] = []
        bad = 0
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            start = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/readiness-reports", body, headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status != expected:
                    bad += 1
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                bad += 1
                connection.close()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    return in_threads(client, concurrency), latencies, failures[0]


def count(at: datetime, status: str) -> tuple[int, int]:
    """Stored reports of this phase's time, and devices in the status its reports give."""
    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:
        reports = conn.execute(
            "SELECT count(*) FROM devices_readinessreport WHERE generated_at = %s", [at]
        ).fetchone()[0]
        devices = conn.execute(
            "SELECT count(*) FROM devices_device WHERE readiness_status = %s", [status]
        ).fetchone()[0]
    return reports, devices


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def phase(port, key, ids, batch: int, concurrency: int, at: datetime, failed: bool) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    reports = [report(d, stamp, failed) for d in ids]
    if batch == 1:
        bodies = [json.dumps(r).encode() for r in reports]
    else:
        bodies = [json.dumps(reports[i : i + batch]).encode() for i in range(0, len(reports), batch)]
    wall, latencies, failures = post_all(port, key, bodies, concurrency)
    stored, in_status = count(at, "readiness_failed" if failed else "active")
    return {
        "batch": batch,
        "concurrency": concurrency,
        "requests": len(bodies),
        "wall_s": round(wall, 2),
        "reports": len(ids),
        "reports_per_s": round(len(ids) / wall),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
        "failed_requests": failures,
        "stored": stored,
        "devices_in_new_status": in_status,
    }


def stack_floor(port: int, key: str, requests: int, concurrency: int) -> dict:
    """The same endpoint, key and clients with an empty list, which is refused (400) before anything is read or
    written: what gunicorn, Django, DRF and the key's check cost a request on this machine, the ceiling of one
    report a request."""
    wall, latencies, failures = post_all(port, key, [b"[]"] * requests, concurrency, expected=400)
    return {
        "requests": requests,
        "requests_per_s": round(requests / wall),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
        "unexpected": failures,
    }


def write_floor(ids: list[str], batch: int, concurrency: int) -> dict:
    """What a batch must write at least, as plain SQL from `concurrency` connections: each device's readiness
    status changed (Active and back), one UPDATE per batch; the device table's indexes make most of it."""
    import psycopg

    batches: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(0, len(ids), batch):
        batches.put(ids[i : i + batch])

    def writer() -> None:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            while True:
                try:
                    chunk = batches.get_nowait()
                except queue.Empty:
                    return
                conn.execute(
                    "UPDATE devices_device SET readiness_status = CASE readiness_status WHEN 'active' "
                    "THEN 'readiness_failed' ELSE 'active' END, state_version = state_version + 1 "
                    "WHERE azure_ad_device_id = ANY(%s)",
                    [chunk],
                )

    wall = in_threads(writer, concurrency)
    return {"devices": len(ids), "wall_s": round(wall, 2), "devices_per_s": round(len(ids) / wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--single-reports",
        type=int,
        default=0,
        help="one-a-request reports to post (default: one per device)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--port", type=int, default=8191)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    recreate_database()
    key, ids = setup(args.devices)
    server = start_server(args.port, args.workers, args.threads)
    results: dict[str, list[dict]] = {"single": [], "batch": [], "stack floor": [], "write floor": []}
    try:
        base = datetime.now(UTC).replace(microsecond=0)
        for run in range(args.repeat):
            at = base + timedelta(minutes=2 * run + 1)
            single = phase(
                args.port, key, ids[: args.single_reports or None], 1, args.concurrency, at, failed=True
            )
            print("single", json.dumps(single), flush=True)
            results["single"].append(single)
            batch = phase(
                args.port, key, ids, 1000, args.batch_concurrency, at + timedelta(minutes=1), failed=False
            )
            print("batch", json.dumps(batch), flush=True)
            results["batch"].append(batch)
            floor = stack_floor(args.port, key, args.single_reports or len(ids), args.concurrency)
            print("floor, one request (an empty list, refused)", json.dumps(floor), flush=True)
            results["stack floor"].append(floor)
            floor = write_floor(ids, 1000, args.batch_concurrency)
            print("floor, batch writes (plain UPDATE of the status)", json.dumps(floor), flush=True)
            results["write floor"].append(floor)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name, runs in results.items():
        keys = [k for k in runs[0] if isinstance(runs[0][k], float | int)]
        medians = {k: statistics.median(r[k] for r in runs) for k in keys}
        print(f"median {name}: {json.dumps(medians)}", flush=True)


if __name__ == "__main__":
    main()
