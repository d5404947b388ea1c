"""`manage.py export_dual_state`: the dual state report as CSV on stdout, through the code the page's export uses."""

from django.core.management.base import BaseCommand

from devices.dual_state import dual_state_csv


class Command(BaseCommand):
    help = "Write the devices in dual state (a stale Azure AD registered record beside a hybrid joined one) as CSV."

    def handle(self, *args, **options):
        for line in dual_state_csv():
            self.stdout.write(line, ending="")
