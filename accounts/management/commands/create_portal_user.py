"""`manage.py create_portal_user NAME --role administrator|reader`: a local account with a role."""

import getpass
import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import Role, assign_role


class Command(BaseCommand):
    help = "Create or update a local account with a portal role (password from AUTOPATCH_USER_PASSWORD, else asked)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", required=True, choices=Role.values)

    def handle(self, *args, name, role, **options):
        password = os.environ.get("AUTOPATCH_USER_PASSWORD") or self.ask_password()
        user, created = get_user_model().objects.get_or_create(username=name)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        user.set_password(password)
        user.save()
        assign_role(user, role)
        self.stdout.write(f"{'Created' if created else 'Updated'} {name} as {Role(role).label}")

    def ask_password(self) -> str:
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("the passwords differ")
        return first
