"""Benchmark: discovery of 1,000, 10,000 and 100,000 devices on PostgreSQL (not a test; figures go to bench/README.md).

For each size and repetition, in a fresh process: the floor (parse the tenant file and COPY one row per device into
a table, on the same database; the median of three), then a first run on an empty database, a second run with
nothing changed, and a third after 2 % of the tenant changed (check-ins, one member added, one removed). Reports wall time (and its
reading and evaluating parts) and its ratio to the floor, the readiness script's run states read (it is deployed
before the first run), the memory the run added on top of the process before it (resident memory sampled every
20 ms), Graph requests per stream, and with --latency-ms (a round trip
added to every Graph request) the time of the longest stream's requests, and the CPU time the run took in its own
process (every thread), in the database server's processes and in the simulated tenant's. Medians over the
repetitions.

The simulated tenant stands for Microsoft's cloud: it answers the run's transport from a process of its own, loaded
with the tenant file (and its run states built) before the runs; with --tenant-in-process it answers from the run's
own process, as every figure before round 2's sixteenth session was measured.

    .venv/bin/python bench/discovery.py [--sizes 1000,10000,100000] [--repeat 3] [--latency-ms 250]
                                        [--tenant-in-process]
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/autopatch_bench (the default; dropped and created)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import queue
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


def process_cpu(pid: int | str) -> tuple[str, float]:
    """A process's name and the CPU seconds it has taken (/proc/<pid>/stat: utime + stime)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu() -> dict[int, float]:
    """Cumulative CPU seconds of each PostgreSQL server process on this machine."""
    seconds: dict[int, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            name, used = process_cpu(pid)
        except OSError:
            continue  # ended meanwhile
        if name == "postgres":
            seconds[int(pid)] = used
    return seconds


class CpuUsed:
    """CPU seconds a run took: this process's (all its threads) and the database server's. A connection's server
    process ends when the connection closes (a run's threads close theirs), so the server's are sampled every
    250 ms and each process counted at the most it was seen with."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.process = self.database = 0.0

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            for pid, seconds in database_cpu().items():
                self._seen[pid] = max(self._seen.get(pid, 0.0), seconds)

    def __enter__(self) -> CpuUsed:
        self._before, self._seen = database_cpu(), {}
        self._self = time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.process = time.process_time() - self._self
        self._stop.set()
        self._thread.join()
        for pid, seconds in database_cpu().items():
            self._seen[pid] = max(self._seen.get(pid, 0.0), seconds)
        self.database = sum(seconds - self._before.get(pid, 0.0) for pid, seconds in self._seen.items())


def recreate_database() -> None:
    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def floor(path: Path) -> float:
    """The physical floor of a first run: parse the tenant file's objects and COPY one row per Entra device into a
    table of its own, on the same database (seconds)."""
    import orjson
    from django.db import connection

    start = time.perf_counter()
    data = orjson.loads(path.read_bytes())
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_floor")
        cursor.execute("CREATE TABLE bench_floor (device_id text, display_name text, data text)")
        with cursor.cursor.copy("COPY bench_floor (device_id, display_name, data) FROM STDIN") as copy:
            for device in data["devices"]:
                copy.write_row(
                    (device["deviceId"], device.get("displayName") or "", orjson.dumps(device).decode())
                )
        cursor.execute("DROP TABLE bench_floor")
    return time.perf_counter() - start


def change_two_percent(path: Path, now: str) -> None:
    """What an hour brings: 2 % of managed devices check in and 2 % of the readiness reports are new, one device
    joins the registration group, one leaves."""
    import orjson

    data = orjson.loads(path.read_bytes())
    managed = data["managedDevices"]
    for item in managed[::50]:
        item["lastSyncDateTime"] = now
    for report in data.get("readinessReports", [])[::50]:
        report["generatedDateTime"] = now
    group = next(g for g in data["groups"] if g["id"] == data["registrationGroupId"])
    members = set(group["members"])
    outside = next(
        d["id"]
        for d in data["devices"]
        if d["id"] not in members and not d.get("displayName", "").startswith("x")
    )
    removed = next(m for m in group["members"] if m in {d["id"] for d in data["devices"][:2000]})
    group["members"].remove(removed)
    group["members"].append(outside)
    path.with_suffix(".changed.json").write_bytes(orjson.dumps(data))


def prepare_tenants(loaded, later) -> None:
    """The simulated tenant and the same tenant an hour later, ready to answer: the later one holds the readiness
    script deployed before the runs, and each has its run states built (on the first request for them otherwise:
    73,000 at 100,000 devices, about 110 MB, the simulated cloud's memory, not the run's)."""
    later.health_scripts.keep_in(loaded.health_scripts.state_path)
    for simulated in (loaded, later):
        simulated.health_scripts.run_states()
    # Millions of objects that the run's process never holds: out of the garbage collector's sight.
    gc.collect()
    gc.freeze()


# Requests the simulated tenant answers at once, each over a pipe of its own: Microsoft's cloud answers a run's
# concurrent streams concurrently. (Until round 2's nineteenth session one pipe carried them one at a time: at
# 100,000 devices its 587 round trips took 3.2-3.9 s of a 6 s reading, the streams waiting for each other.)
TENANT_PIPES = 8


def serve_tenants(pipes, paths: list[str]) -> None:
    """The simulated tenants' own process: loads each file as the portal does, then answers the transport's
    requests from each pipe, in a thread of its own, until it closes."""
    import django

    django.setup()
    from autopatch_portal.tenant import connection as tenant_connection

    tenants = [tenant_connection.simulated_tenant(Path(path)) for path in paths]
    prepare_tenants(*tenants)

    def answer(pipe) -> None:
        while True:
            try:
                index, method, url, headers, body = pipe.recv()
            except EOFError:
                return
            try:
                reply = tenants[index].handle(method, url, headers, body)
            except Exception as exc:  # noqa: BLE001 - raised again in the run's process (a TimeoutError, say)
                pipe.send(exc)
            else:
                pipe.send((reply.status, reply.body, reply.headers))

    answering = [threading.Thread(target=answer, args=(pipe,), daemon=True) for pipe in pipes]
    for thread in answering:
        thread.start()
    pipes[0].send([tenant.tenant_id for tenant in tenants])
    for thread in answering:
        thread.join()


class TenantProxy:
    """Stands for a simulated tenant in the run's process: the transport hands each request to the tenants'
    process over a pipe that no other request is using, and waits for its answer (the transport's latency is
    slept before, concurrently)."""

    def __init__(self, pipes: queue.Queue, index: int, tenant_id: str) -> None:
        self.pipes, self.index, self.tenant_id = pipes, index, tenant_id

    def handle(self, method, url, headers, body):
        from autopatch_portal.tenant.simulated.tenant import Response

        pipe = self.pipes.get()
        try:
            pipe.send((self.index, method, url, headers, body))
            answer = pipe.recv()
        finally:
            self.pipes.put(pipe)
        if isinstance(answer, BaseException):
            raise answer
        status, body, headers = answer
        return Response(status, body, headers)


def one(size: int, latency_ms: int, tenant_in_process: bool = False) -> None:
    """One repetition in a fresh process: the floor, then on an empty database a first run, a second with nothing
    changed, and a third after 2 % of the tenant changed. The simulated tenant answers from a process of its own
    (Microsoft's cloud does not run in the portal's interpreter: in it, its answers took the interpreter from the
    run's threads), or with tenant_in_process from the run's, as before round 2's sixteenth session."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from autopatch_portal.tenant import connection as tenant_connection
    from autopatch_portal.tenant.simulated import SimulatedTenant
    from autopatch_portal.tenant.simulated.transport import SimulatedTenantAdapter
    from devices.runs import discover_now

    # Time spent answering inside the simulated tenant when it answers from this process (its latency is added at
    # the transport), and requests per stream.
    graph_seconds = [0.0]
    streams: dict[str, int] = {}

    original_handle = SimulatedTenant.handle

    def timed_handle(self, method, url, *a, **kw):
        start = time.perf_counter()
        try:
            return original_handle(self, method, url, *a, **kw)
        finally:
            graph_seconds[0] += time.perf_counter() - start

    original_send = SimulatedTenantAdapter.send

    def counted_send(self, request, *a, **kw):
        """Requests on the wire, by stream (a $batch of managed devices is one, in the managed stream)."""
        url = request.url
        key = (
            "groups"
            if "/groups" in url
            else "devices"
            if "/devices" in url and "deviceManagement" not in url
            else "managed"
            if "managedDevices" in url or "$batch" in url
            else "run states"
            if "deviceRunStates" in url
            else "other"
        )
        streams[key] = streams.get(key, 0) + 1
        return original_send(self, request, *a, **kw)

    SimulatedTenant.handle = timed_handle
    SimulatedTenantAdapter.send = counted_send
    recreate_database()
    connection.close()
    call_command("migrate", verbosity=0)
    path = Path(settings.VAR_DIR) / f"tenant-{size}.json"
    if not path.exists():
        call_command("make_tenant", devices=size, out=str(path), seed=1, stdout=open(os.devnull, "w"))
    # The floor's own time moved between 1.8 and 3.3 s from one process to the next on the same VM (the COPY's
    # writes): the median of three, so that a ratio says more about the run than about the floor's luck.
    floor_seconds = statistics.median(floor(path) for _ in range(3))
    changed = path.with_suffix(".changed.json")
    change_two_percent(path, timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"))
    settings.AUTOPATCH_TENANT_FILE = str(path)
    settings.AUTOPATCH_SIMULATED_LATENCY_MS = latency_ms  # a round trip per request, at the transport
    # The changed file is the same tenant an hour later: it holds the readiness script deployed before the runs.
    tenant_pid = None
    if tenant_in_process:
        prepare_tenants(tenant_connection.simulated_tenant(path), tenant_connection.simulated_tenant(changed))
    else:
        import multiprocessing

        ends = [multiprocessing.Pipe() for _ in range(TENANT_PIPES)]
        server = multiprocessing.get_context("spawn").Process(
            target=serve_tenants, args=([there for _, there in ends], [str(path), str(changed)]), daemon=True
        )
        server.start()
        tenant_pid, pipes = server.pid, queue.Queue()
        for here, _ in ends:
            pipes.put(here)
        tenant_ids = ends[0][0].recv()
        proxies = {
            str(p.resolve()): TenantProxy(pipes, index, tenant_id)
            for index, (p, tenant_id) in enumerate(zip((path, changed), tenant_ids, strict=True))
        }
        tenant_connection.simulated_tenant = lambda p: proxies[str(Path(p).resolve())]
    from devices.remediation.deploy import deploy_readiness_script

    deploy_readiness_script(tenant_connection.connect(), "bench")
    gc.collect()
    gc.freeze()  # what the process holds before the runs: the garbage collector's full passes skip it
    for which in ("first", "unchanged", "2% changed"):
        if which == "2% changed":
            settings.AUTOPATCH_TENANT_FILE = str(changed)
        gc.collect()
        base = rss_mb()
        graph_seconds[0] = 0.0
        streams.clear()
        tenant_cpu = process_cpu(tenant_pid)[1] if tenant_pid else 0.0
        start = time.perf_counter()
        with PeakRss() as peak, CpuUsed() as cpu:
            run = discover_now()
        wall = time.perf_counter() - start
        tenant_cpu = process_cpu(tenant_pid)[1] - tenant_cpu if tenant_pid else None
        assert run.status == "succeeded", run.errors
        # The run states, the groups, the devices and the managed devices are read at once (since round 2's eighth
        # session; before it the run states were read first, and this figure added them to the busiest stream).
        longest = max((n for k, n in streams.items() if k != "other"), default=0) * latency_ms / 1000
        print(
            json.dumps(
                {
                    "devices": size,
                    "run": which,
                    "latency_ms": latency_ms,
                    "wall": wall,
                    "floor": floor_seconds,
                    "extra_mb": peak.peak - base,
                    "requests": run.graph_requests,
                    "streams": streams.copy(),
                    "longest_stream_s": longest,
                    # In its own process, the tenant's share is its CPU time (cpu_tenant) instead.
                    "outside": (wall - graph_seconds[0]) / wall if tenant_in_process else None,
                    "candidates": run.counts.get("candidates", 0),
                    "evaluated": run.counts.get("evaluated", 0),
                    "changed": run.counts.get("changed", 0),
                    "run_states": run.counts.get("read_run_states", 0),
                    "reading": run.counts.get("seconds_reading"),
                    "evaluating": run.counts.get("seconds_evaluating"),
                    "cpu_process": round(cpu.process, 1),
                    "cpu_database": round(cpu.database, 1),
                    "cpu_tenant": tenant_cpu and round(tenant_cpu, 1),
                    "tenant": "in the run's process" if tenant_in_process else "its own process",
                }
            ),
            flush=True,
        )
        if latency_ms:
            break  # the latency goal is about a first run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each size (100,000: at most 2)")
    parser.add_argument("--latency-ms", type=int, default=0, help="a round trip added to every Graph request")
    parser.add_argument(
        "--tenant-in-process",
        action="store_true",
        help="the simulated tenant answers from the run's process (before round 2's sixteenth session)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.latency_ms, args.tenant_in_process)
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        runs: dict[str, list[dict]] = {}
        for _ in range(min(args.repeat, 2) if size >= 100_000 else args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(size), "--latency-ms", str(args.latency_ms)]
                + ["--tenant-in-process"] * args.tenant_in_process,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            for line in out.stdout.splitlines():
                row = json.loads(line)
                runs.setdefault(row["run"], []).append(row)
        for which, rows in runs.items():
            median = lambda key, rows=rows: statistics.median(r[key] for r in rows)  # noqa: E731
            results.append(
                {
                    "devices": size,
                    "run": which,
                    "repeat": len(rows),
                    "candidates": rows[0]["candidates"],
                    "evaluated": rows[0]["evaluated"],
                    "changed": rows[0]["changed"],
                    "run_states": rows[0]["run_states"],
                    "wall_s": round(median("wall"), 2),
                    "floor_s": round(median("floor"), 2),
                    "x_floor": round(median("wall") / median("floor"), 1),
                    "reading_s": round(median("reading"), 1),
                    "evaluating_s": round(median("evaluating"), 1),
                    "cpu_process_s": round(median("cpu_process"), 1),
                    "cpu_database_s": round(median("cpu_database"), 1),
                    "cpu_tenant_s": round(median("cpu_tenant"), 1)
                    if rows[0]["cpu_tenant"] is not None
                    else "-",
                    "extra_rss_mb": round(median("extra_mb"), 1),
                    "graph_requests": rows[0]["requests"],
                    "streams": rows[0]["streams"],
                    "longest_stream_s": round(median("longest_stream_s"), 1),
                    "outside_graph": f"{median('outside'):.0%}" if rows[0]["outside"] is not None else "-",
                    "latency_ms": args.latency_ms,
                }
            )
            print(json.dumps(results[-1]), flush=True)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        + subprocess.run(
            ["sh", "-c", "free -g | awk '/Mem:/{print $2\" GiB\"}'"], capture_output=True, text=True
        ).stdout.strip()
    )
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\nmachine: {machine}; {version}; Graph latency {args.latency_ms} ms")
    print(
        "| devices | run | repeats | candidates | evaluated | devices written | wall (s) | floor (s) | x floor "
        "| reading (s) | evaluating (s) | memory added (MB) | Graph requests | run states read (requests) "
        "| longest stream (s) | CPU: run's process (s) | CPU: database (s) | CPU: simulated tenant (s) |"
    )
    print("| --- " * 18 + "|")
    for r in results:
        print(
            f"| {r['devices']:,} | {r['run']} | {r['repeat']} | {r['candidates']:,} | {r['evaluated']:,} "
            f"| {r['changed']:,} | {r['wall_s']} | {r['floor_s']} | {r['x_floor']} | {r['reading_s']} "
            f"| {r['evaluating_s']} | {r['extra_rss_mb']} | {r['graph_requests']} "
            f"| {r['run_states']:,} ({r['streams'].get('run states', 0)}) | {r['longest_stream_s']} "
            f"| {r['cpu_process_s']} | {r['cpu_database_s']} | {r['cpu_tenant_s']} |"
        )


if __name__ == "__main__":
    main()
