"""CSV export of a tab: one code path for the UI's Export to CSV and `manage.py export_devices`."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from autopatch_portal.csvfile import LineWriter

from .columns import Column, text
from .models import Device

CHUNK = 2000


def csv_rows(devices: QuerySet[Device], columns: list[Column]) -> Iterator[str]:
    """The header, then one CSV line per device in the queryset's order, read in chunks."""
    writer = LineWriter()
    yield writer.header(column.title for column in columns)
    for device in devices.iterator(chunk_size=CHUNK):
        yield writer.row([text(column.value(device)) for column in columns])
