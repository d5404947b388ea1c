"""Benchmark: device blade pages and CSV export on PostgreSQL with about 100,000 devices (figures go to bench/README.md).

Server time is measured in-process through Django's full request handler (middleware, session, view, template),
so network and browser time are left out. The database must already hold the devices:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/autopatch_bench_ui AUTOPATCH_VAR_DIR=var/bench-ui \\
      .venv/bin/python manage.py make_tenant --devices 100000 --out var/bench-ui/tenant.json
    ... AUTOPATCH_TENANT_FILE=var/bench-ui/tenant.json .venv/bin/python manage.py discover
    ... .venv/bin/python bench/pages.py [--repeat 40]
"""

from __future__ import annotations

import argparse
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

PAGES = {
    "tab page (Ready, default sort)": "/devices/ready/",
    "tab page (Not registered)": "/devices/not-registered/",
    "sorted page (Ready by -last check-in)": "/devices/ready/?sort=-last_intune_checkin",
    "sorted page (Ready by model, no index)": "/devices/ready/?sort=model",
    "sorted page, page 200": "/devices/ready/?sort=serial_number&page=200",
    "searched page (name part)": "/devices/ready/?q=FIN-LT-0012",
    "searched page (serial number)": "/devices/ready/?q={serial}",
    "filtered page (ring Fast)": "/devices/ready/?ring=fast",
    "filtered page (failed check)": "/devices/not-registered/?failed_check=Windows+edition",
    "filtered + searched, 250 rows": "/devices/ready/?management=co_managed&q=LT&per_page=250",
    "fly-in (device details)": "/devices/device/{pk}/",
}


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from accounts.roles import Role, assign_role
    from devices.models import Device

    assert connection.vendor == "postgresql", "run this against PostgreSQL (DATABASE_URL)"
    user, _ = get_user_model().objects.get_or_create(username="bench-admin")
    assign_role(user, Role.ADMINISTRATOR)
    client = Client(HTTP_HX_REQUEST="true", HTTP_HOST="localhost")
    client.force_login(user)
    sample = Device.objects.filter(readiness_status="active").order_by("pk")[500]
    total = Device.objects.count()
    print(f"devices: {total}; machine: nproc {os.cpu_count()}")
    print(subprocess.run(["free", "-h"], capture_output=True, text=True).stdout)
    print("| page | median ms | p95 ms | status |\n| --- | ---: | ---: | --- |")
    for name, url in PAGES.items():
        url = url.format(serial=sample.serial_number, pk=sample.pk)
        client.get(url)  # warm
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
        print(f"| {name} | {statistics.median(times):.1f} | {p95:.1f} | {response.status_code} |")

    export = Client(HTTP_HOST="localhost")
    export.force_login(user)
    before = rss_peak_mb()
    start = time.perf_counter()
    response = export.get("/devices/ready/export.csv?columns=all")
    stream = iter(response.streaming_content)
    first = next(stream)
    ttfb = time.perf_counter() - start
    size, lines = len(first), first.count(b"\n")
    for chunk in stream:
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - start
    print(f"\nexport of Ready, all 21 columns: {lines - 1} rows, {size / 2**20:.1f} MiB; time to first byte "
          f"{ttfb * 1000:.0f} ms; total {elapsed:.2f} s; peak RSS {before:.0f} MiB before, {rss_peak_mb():.0f} MiB after "
          f"(+{rss_peak_mb() - before:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
