"""`manage.py preview_rule "RULE"`: the devices a dynamic membership rule matches, as CSV on stdout."""

from django.core.management.base import BaseCommand, CommandError

from autopatch_portal.tenant.membership_rules import RuleError, pointer
from devices.rule_preview import csv_lines, preview


class Command(BaseCommand):
    help = (
        "Write as CSV the devices of the directory (as the last discovery read it) that an Entra dynamic "
        "membership rule matches, and whether each would pass the prerequisite checks."
    )

    def add_arguments(self, parser):
        parser.add_argument("rule", help='e.g. (device.displayName -contains "AP")')

    def handle(self, *args, rule, **options):
        try:
            result = preview(rule)
        except RuleError as exc:
            line, caret = pointer(rule, exc.position)
            raise CommandError(f"{exc}\n  {line}\n  {caret}") from exc
        for line in csv_lines(result):
            self.stdout.write(line, ending="")
