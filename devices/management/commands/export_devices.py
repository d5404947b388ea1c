"""`manage.py export_devices`: a tab as CSV on stdout, through the code the UI's export uses."""

from django.core.management.base import BaseCommand, CommandError

from devices.columns import COLUMNS, EXPORT_COLUMNS, columns_for
from devices.export import csv_rows
from devices.queries import FILTER_PARAMS, InvalidQuery, device_list


class Command(BaseCommand):
    help = "Write the devices of a tab as CSV to standard output."

    def add_arguments(self, parser):
        parser.add_argument("--tab", required=True, choices=["ready", "not-ready", "not-registered", "all"])
        parser.add_argument(
            "--columns",
            default="",
            help="'all', or column keys separated by commas (default: the default columns)",
        )
        parser.add_argument(
            "--search", default="", help="search by device name, Azure AD device ID, serial number or user"
        )
        parser.add_argument("--sort", default="device_name", help="column key, '-' in front for descending")
        parser.add_argument("--status", default="", help="readiness status, e.g. inactive or excluded")
        parser.add_argument("--ring", default="", help="test, first, fast, broad, or none")
        parser.add_argument(
            "--failed-check", default="", help="name of a failed check, e.g. 'Windows edition'"
        )
        parser.add_argument("--join-type", default="", help="e.g. 'Hybrid Azure AD joined'")
        parser.add_argument("--management", default="", help="intune, co_managed or none")
        parser.add_argument("--report", default="", help="readiness report freshness: none, stale or fresh")

    def handle(self, *args, tab, columns, search, sort, **options):
        try:
            if columns == "all":
                chosen = list(COLUMNS)
            else:
                chosen = columns_for(
                    [key.strip() for key in columns.split(",") if key.strip()] or EXPORT_COLUMNS
                )
            params = {"q": search, "sort": sort, **{name: options[name] for name in FILTER_PARAMS}}
            devices = device_list(tab, params)
        except KeyError as exc:
            raise CommandError(f"unknown column {exc.args[0]!r}") from exc
        except InvalidQuery as exc:
            raise CommandError(str(exc)) from exc
        for line in csv_rows(devices, chosen):
            self.stdout.write(line, ending="")
