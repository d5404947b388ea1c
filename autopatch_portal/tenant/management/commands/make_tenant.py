"""`manage.py make_tenant`: write a realistic simulated tenant file of any size."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from autopatch_portal.tenant.simulated.generator import make_tenant


class Command(BaseCommand):
    help = (
        "Write a simulated tenant (every discovery outcome, nesting, co-management, stale devices) to a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, required=True, help="devices in the registration group")
        parser.add_argument("--out", required=True, help="the tenant file to write")
        parser.add_argument("--seed", type=int, default=1, help="the same seed writes the same tenant")
        parser.add_argument(
            "--relative-dates",
            action="store_true",
            help="dates move forward with time when the file is read (for a demo that never goes stale)",
        )

    def handle(self, *args, devices, out, seed, relative_dates, **options):
        if devices < 1:
            raise CommandError("--devices must be at least 1")
        builder = make_tenant(devices, seed=seed)
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            json.dump(builder.as_json(relative_dates=relative_dates), handle, separators=(",", ":"))
        self.stdout.write(
            f"Wrote {path}: {len(builder.devices)} Azure AD devices, {len(builder.managed)} managed "
            f"devices, {len(builder.groups_by_name)} groups, {len(builder.reports)} readiness reports"
        )
