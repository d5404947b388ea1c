"""`manage.py create_demo_accounts`: demo-admin and demo-reader, through create_portal_user."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_ACCOUNTS = (("demo-admin", "administrator"), ("demo-reader", "reader"))


class Command(BaseCommand):
    help = (
        "Create the demo accounts (password from AUTOPATCH_DEMO_PASSWORD, else generated and printed once)."
    )

    def handle(self, *args, **options):
        given = os.environ.get("AUTOPATCH_DEMO_PASSWORD")
        users = get_user_model().objects
        if not given and all(users.filter(username=name).exists() for name, _ in DEMO_ACCOUNTS):
            self.stdout.write(
                "The demo accounts exist; their password was printed when they were created. To set a new "
                "one: AUTOPATCH_DEMO_PASSWORD='at least 12 characters' make run"
            )
            return
        password = given or secrets.token_urlsafe(12)
        previous = os.environ.get("AUTOPATCH_USER_PASSWORD")
        os.environ["AUTOPATCH_USER_PASSWORD"] = password
        try:
            for name, role in DEMO_ACCOUNTS:
                call_command("create_portal_user", name, role=role, stdout=self.stdout)
        finally:
            if previous is None:
                os.environ.pop("AUTOPATCH_USER_PASSWORD", None)
            else:
                os.environ["AUTOPATCH_USER_PASSWORD"] = previous
        if not given:
            self.stdout.write(f"Demo password for demo-admin and demo-reader (shown once): {password}")
