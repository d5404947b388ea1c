"""`manage.py create_api_key NAME --scope administrator|reader|readiness`: a REST API key, printed once."""

from django.core.management.base import BaseCommand, CommandError

from accounts.api_keys import KeyRefused, create_key
from accounts.models import ApiKey


class Command(BaseCommand):
    help = "Create a REST API key and print it once (only its SHA-256 is kept)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scope", required=True, choices=ApiKey.Scope.values)

    def handle(self, *args, name, scope, **options):
        try:
            row, key = create_key(name, scope, "command line")
        except KeyRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"API key {row.name!r} ({scope}); it is shown only now:")
        self.stdout.write(key)
