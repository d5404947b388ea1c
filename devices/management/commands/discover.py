"""`manage.py discover`: one discovery run, here and now, through the same code as the worker."""

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import record_event
from accounts.models import AuditEvent
from devices.models import DiscoveryRun, ReadinessStatus
from devices.runs import discover_now


class Command(BaseCommand):
    help = "Discover the registration group's devices now and print the counts per readiness status."

    def handle(self, *args, **options):
        run = discover_now()
        record_event(
            "command line",
            AuditEvent.Action.DISCOVERY,
            target=f"run #{run.pk}",
            result=run.status,
            trigger=run.trigger,
        )
        if run.status == DiscoveryRun.Status.COVERED:  # a run under way does the work: say which, and succeed
            self.stdout.write(
                f"Discovery run #{run.pk}: covered by discovery run #{run.covered_by_id}, "
                f"{run.graph_requests} Graph requests"
            )
            self.stdout.write(f"  {run.errors[0]['message']}")
            return
        self.stdout.write(
            f"Discovery run #{run.pk}: {run.get_status_display()}, "
            f"{run.counts.get('candidates', 0)} devices in the registration group, "
            f"{run.graph_requests} Graph requests"
        )
        for status in ReadinessStatus:
            self.stdout.write(f"  {status.label}: {run.counts.get(status.value, 0)}")
        if run.counts.get("registered_now"):
            self.stdout.write(f"  Registered in this run: {run.counts['registered_now']}")
        for covered in DiscoveryRun.objects.filter(covered_by=run):
            self.stdout.write(
                f"  Covers discovery run #{covered.pk} ({covered.get_trigger_display().lower()}), "
                "which was waiting for a worker"
            )
        for ignored in run.ignored:
            if ignored["type"] == "group":
                self.stdout.write(f"  Ignored group {ignored['name']}: {ignored['reason']}")
        for error in run.errors:
            self.stderr.write(f"  Error ({error['stage']}): {error['message']}")
        if run.status in (DiscoveryRun.Status.FAILED, DiscoveryRun.Status.SKIPPED):
            raise CommandError(f"discovery {run.get_status_display().lower()}")
