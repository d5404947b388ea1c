"""Benchmark: device blade pages and CSV export on PostgreSQL, measured as users meet them: right after a discovery
has written the rows, with no VACUUM or ANALYZE by hand and autovacuum kept off the device tables while measuring.

Server time is measured in-process through Django's full request handler (middleware, session, view, template),
so network and browser time are left out. Each tenant file given gets a database of its own (the last one
DATABASE_URL's, the others beside it, created here): its device tables are emptied and one discovery imports the
tenant (a first import). Then every page is timed on every tenant, their requests interleaved, so that a shared
VM's drift moves both sizes alike; then the export, through the web and through `manage.py export_devices`,
against PostgreSQL's own COPY of the device table's non-JSON columns:

    createdb -h 127.0.0.1 -U postgres autopatch_bench_ui  # once; the bench migrates it
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/autopatch_bench_ui AUTOPATCH_VAR_DIR=var/bench-ui \\
      .venv/bin/python manage.py make_tenant --devices 100000 --seed 1 --out var/bench-ui/tenant100k.json
    ... .venv/bin/python manage.py make_tenant --devices 1000 --seed 1 --out var/bench-ui/tenant1k.json
    ... .venv/bin/python bench/pages.py var/bench-ui/tenant1k.json var/bench-ui/tenant100k.json [--repeat 30]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopatch_portal.settings")

# Every sortable column of the blade (main() checks this against devices.columns): the issue asks for each.
SORTS = (
    "device_name",
    "serial_number",
    "ring",
    "readiness_status",
    "failed_checks",
    "last_intune_checkin",
    "azure_ad_device_id",
    "intune_device_id",
    "model",
    "manufacturer",
    "os_version",
    "edition",
    "architecture",
    "join_type",
    "management",
    "owner",
    "primary_user",
    "ring_assigned_by",
    "registered_at",
    "added_through",
    "last_discovered_at",
    "report_generated_at",
)
PAGES = {
    "Ready": "/devices/ready/",
    "Not ready": "/devices/not-ready/",
    "Not registered": "/devices/not-registered/",
    "Ready, last page": "/devices/ready/?page=100000",
    "Ready, 250 rows": "/devices/ready/?per_page=250",
    **{f"Ready by {key}": f"/devices/ready/?sort={key}" for key in SORTS},
    **{
        f"Ready by -{key}": f"/devices/ready/?sort=-{key}"
        for key in ("ring", "last_intune_checkin", "serial_number")
    },
    "search, 1 character": "/devices/ready/?q=A",
    "search, 2 characters": "/devices/ready/?q=FI",
    "search, 2 characters, no match": "/devices/ready/?q=QZ",
    "search, 10 characters": "/devices/ready/?q=FIN-LT-001",
    "search, serial number prefix": "/devices/ready/?q={serial_prefix}",
    "search, whole serial number": "/devices/ready/?q={serial}",
    "filter ring Fast": "/devices/ready/?ring=fast",
    "filter failed check (Not registered)": "/devices/not-registered/?failed_check=Windows+edition",
    "filter failed check (Not ready)": "/devices/not-ready/?failed_check=Internet+connectivity",
    "filter + search, 250 rows": "/devices/ready/?management=co_managed&q=LT&per_page=250",
    "results only (search swap)": "/devices/ready/?q=HR-LT",
    "fly-in (device details)": "/devices/device/{pk}/",
    "blade with fly-in open": "/devices/ready/?device={pk}",
    # Not the blade (the goals are the blade's): the pages an admin opens beside it, measured the same way.
    "registration group page": "/devices/registration-group/",
    "dual state report": "/devices/dual-state/",
}
RESULTS_ONLY = {"results only (search swap)"}
WHOLE_PAGES = {
    "registration group page",
    "dual state report",
}  # requested as a browser opens them, not by htmx
DEVICE_TABLES = ("devices_device", "devices_devicesighting", "devices_devicestatuschange")
TENANT_COPY_TABLES = ("devices_tenantobject", "devices_deltalink")


def rss_mb() -> float:
    """Resident memory now (not the process's peak, which the import before has already raised)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def fresh_import(tenant: Path) -> tuple[int, float]:
    """Empty the device tables and import the tenant with one discovery, as a first import does."""
    from django.conf import settings
    from django.db import connection

    from devices.runs import discover_now

    with connection.cursor() as cursor:
        for table in DEVICE_TABLES:
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        # A first import: no devices, no copy of the tenant and no delta links from an earlier run.
        cursor.execute(f"TRUNCATE {', '.join(DEVICE_TABLES + TENANT_COPY_TABLES)} CASCADE")
    settings.AUTOPATCH_TENANT_FILE = str(tenant)
    from autopatch_portal.tenant import connection as tenant_connection
    from devices.models import ReadinessScript
    from devices.remediation.deploy import deploy_readiness_script

    ReadinessScript.objects.all().delete()  # deployed to this tenant, as make run does before its first discovery
    deploy_readiness_script(tenant_connection.connect(), "bench")
    start = time.perf_counter()
    run = discover_now()
    assert run.status == "succeeded", run.errors
    from devices.models import Device

    return Device.objects.count(), time.perf_counter() - start


def restore_autovacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in DEVICE_TABLES:
            cursor.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")


class Site:
    """One tenant's portal: its own database (the device tables and sessions), its tenant file, its signed-in
    client and its cache keys. Switching between sites takes no time that is measured."""

    def __init__(self, tenant: Path, database: str):
        self.tenant, self.database = tenant, database
        self.settings: dict = {}
        self.wrapper = None
        self.client = None

    def enter(self) -> None:
        from django.conf import settings
        from django.core.cache import cache
        from django.db import connections
        from django.db.utils import load_backend

        if self.wrapper is None:
            # Threads a discovery starts (its writers) open their connections from the handler's settings.
            self.settings = {**connections.settings["default"], "NAME": self.database}
            self.wrapper = load_backend(self.settings["ENGINE"]).DatabaseWrapper(self.settings, "default")
        connections.settings["default"] = self.settings
        connections["default"] = self.wrapper
        settings.AUTOPATCH_TENANT_FILE = str(self.tenant)
        cache.key_prefix = (
            self.database
        )  # the tab counts' keys name runs and events, which both databases number


def ensure_database(name: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')


def drop_databases(names: list[str]) -> None:
    """Drop the databases created beside DATABASE_URL's, from the last one (whose connection is current)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def page_samples() -> dict[str, tuple[list[str], dict]]:
    """Each page's URLs on the current site, and the headers it is requested with."""
    from devices.models import Device

    active = Device.objects.filter(readiness_status="active").order_by("pk")
    count = active.count()
    # The fly-in's time depends on the device (its checks, history, a possible replacement): the requests go
    # round ten Active devices spread over the table, the same share of devices at every size.
    samples = [active[count * i // 10] for i in range(10)]
    pages = {}
    for name, template in PAGES.items():
        urls = [
            template.format(serial=d.serial_number, serial_prefix=d.serial_number[:-1], pk=d.pk)
            for d in samples
        ]
        if "{pk}" not in template:
            urls = urls[:1]
        headers = (
            {"HX-Target": "results"}
            if name in RESULTS_ONLY
            else {"HX-Request": "false"}
            if name in WHOLE_PAGES
            else {}
        )
        pages[name] = (urls, headers)
    return pages


def time_pages(sites: list[Site], repeat: int) -> dict[str, dict[str, tuple[float, float, int]]]:
    """Every page on every site, the sites' requests interleaved (one on each, then the next round): a VM that
    speeds up or slows down while the bench runs moves both sizes alike, so their ratio is the pages' own."""
    pages = {}
    for site in sites:
        site.enter()
        pages[site.database] = page_samples()
    figures: dict[str, dict[str, tuple[float, float, int]]] = {site.database: {} for site in sites}
    for name in PAGES:
        times: dict[str, list[float]] = {site.database: [] for site in sites}
        status = {}
        for site in sites:
            site.enter()
            urls, headers = pages[site.database][name]
            for url in urls:
                site.client.get(url, headers=headers)  # warm
        for i in range(repeat):
            for site in sites:
                site.enter()
                urls, headers = pages[site.database][name]
                start = time.perf_counter()
                response = site.client.get(urls[i % len(urls)], headers=headers)
                times[site.database].append((time.perf_counter() - start) * 1000)
                status[site.database] = response.status_code
        for site in sites:
            t = times[site.database]
            figures[site.database][name] = (statistics.median(t), p95(t), status[site.database])
    return figures


def copy_seconds(where: str) -> float:
    """PostgreSQL's own CSV of the device table's non-JSON columns for the same rows, read to the end here."""
    from django.db import connection

    from devices.models import Device

    columns = ", ".join(
        f.column
        for f in Device._meta.concrete_fields
        if f.get_internal_type() != "JSONField" and not f.generated
    )
    sql = f"COPY (SELECT {columns} FROM devices_device WHERE {where}) TO STDOUT (FORMAT csv)"
    start = time.perf_counter()
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for _ in copy:
            pass
    return time.perf_counter() - start


def time_export(user) -> dict[str, float]:
    """The web export of Ready and `manage.py export_devices --tab all`, all columns, each against COPY."""
    from django.core.management import call_command
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    b"".join(
        client.get("/devices/not-registered/export.csv?columns=all").streaming_content
    )  # warm the code path
    before = rss_mb()
    start = time.perf_counter()
    response = client.get("/devices/ready/export.csv?columns=all")
    stream = iter(response.streaming_content)
    first = next(stream)
    ttfb = time.perf_counter() - start
    lines, peak = first.count(b"\n"), rss_mb()
    for chunk in stream:
        lines += chunk.count(b"\n")
        peak = max(peak, rss_mb())
    web = time.perf_counter() - start
    out = io.StringIO()
    start = time.perf_counter()
    call_command("export_devices", "--tab", "all", "--columns", "all", stdout=out)
    command = time.perf_counter() - start
    return {
        "web_rows": lines - 1,
        "ttfb_ms": ttfb * 1000,
        "web_s": web,
        "web_copy_s": copy_seconds("readiness_status = 'active'"),
        "command_rows": out.getvalue().count("\n") - 1,
        "command_s": command,
        "command_copy_s": copy_seconds("true"),
        "rss_added_mb": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tenants", nargs="+", type=Path, help="tenant files, smallest first")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE the device tables after the import (what a discovery that leaves statistics "
        "behind would give), for comparison",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases created beside DATABASE_URL's (to query them after)",
    )
    args = parser.parse_args()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.roles import Role, assign_role

    assert connection.vendor == "postgresql", "run this against PostgreSQL (DATABASE_URL)"
    from devices.columns import COLUMNS

    assert set(SORTS) == {c.key for c in COLUMNS if c.sortable}, "SORTS must name every sortable column"
    base = connection.settings_dict["NAME"]
    # A database per tenant (the largest in DATABASE_URL's, the others beside it), all imported before measuring.
    sites = [
        Site(tenant, base if n == len(args.tenants) - 1 else f"{base}_{n}")
        for n, tenant in enumerate(args.tenants)
    ]
    print(f"machine: nproc {os.cpu_count()}; PostgreSQL {connection.cursor().connection.info.server_version}")
    print(subprocess.run(["free", "-h"], capture_output=True, text=True).stdout)
    sizes: dict[str, int] = {}
    try:
        for site in sites:
            ensure_database(site.database)
            site.enter()
            call_command("migrate", verbosity=0)
            user, _ = get_user_model().objects.get_or_create(username="bench-admin")
            assign_role(user, Role.ADMINISTRATOR)
            devices, seconds = fresh_import(site.tenant)
            if args.analyze:
                with connection.cursor() as cursor:
                    for table in DEVICE_TABLES:
                        cursor.execute(f"ANALYZE {table}")
            print(
                f"{site.tenant.name}: {devices} devices imported in {seconds:.1f} s into {site.database}; measuring "
                f"{'after ANALYZE (no VACUUM)' if args.analyze else 'without VACUUM or ANALYZE'}"
            )
            site.client = Client(HTTP_HX_REQUEST="true", HTTP_HOST="localhost")
            site.client.force_login(user)
            sizes[site.database] = devices
        figures = time_pages(sites, args.repeat)
        results = {sizes[database]: pages for database, pages in figures.items()}
        sites[-1].enter()
        export = time_export(get_user_model().objects.get(username="bench-admin"))
    finally:
        for site in sites:
            site.enter()
            restore_autovacuum()
        if not args.keep:
            drop_databases([site.database for site in sites[:-1]])
    small, large = sorted(results)[0], sorted(results)[-1]
    print(
        f"| page | median ms ({small:,}) | p95 ms ({small:,}) | median ms ({large:,}) | p95 ms ({large:,}) "
        f"| p95 ratio | status |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    for name in PAGES:
        (m1, q1, _), (m2, q2, status) = results[small][name], results[large][name]
        print(f"| {name} | {m1:.1f} | {q1:.1f} | {m2:.1f} | {q2:.1f} | {q2 / q1:.2f} | {status} |")
    print(
        f"\nweb export of Ready, all columns: {export['web_rows']:,} rows, first byte {export['ttfb_ms']:.0f} ms, "
        f"{export['web_s']:.2f} s, COPY of the same rows {export['web_copy_s']:.2f} s "
        f"({export['web_s'] / export['web_copy_s']:.1f}x)"
    )
    print(
        f"manage.py export_devices --tab all --columns all: {export['command_rows']:,} rows, {export['command_s']:.2f} s, "
        f"COPY of the same rows {export['command_copy_s']:.2f} s ({export['command_s'] / export['command_copy_s']:.1f}x)"
    )
    print(f"resident memory added by the web export at its peak: {export['rss_added_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
