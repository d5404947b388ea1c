"""CSV export of a tab: one code path for the UI's Export to CSV and `manage.py export_devices`."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet

from .columns import Column, text
from .models import Device

CHUNK = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file-like object that hands back what csv.writer writes, so rows stream one at a time."""

    def write(self, value: str) -> str:
        return value


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def line_writer():
    """A csv.writer whose writerow() returns the line instead of writing it, for streamed responses."""
    return csv.writer(_Line())


def csv_rows(devices: QuerySet[Device], columns: list[Column]) -> Iterator[str]:
    """The header, then one CSV line per device in the queryset's order, read in chunks."""
    writer = line_writer()
    yield writer.writerow([column.title for column in columns])
    for device in devices.iterator(chunk_size=CHUNK):
        yield writer.writerow([neutralise(text(column.value(device))) for column in columns])
