"""CSV export of a tab: one code path for the UI's Export to CSV and `manage.py export_devices`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import QuerySet

from autopatch_portal.csvfile import LineWriter

from .columns import Column
from .models import Device

CHUNK = 2000  # rows read from the database at a time, and written out as one piece


@dataclass
class Progress:
    """How many rows an export has written so far (read when it ends, or is cut short)."""

    rows: int = 0


def csv_rows(
    devices: QuerySet[Device], columns: list[Column], progress: Progress | None = None
) -> Iterator[str]:
    """The header, then the rows in the queryset's order, CHUNK rows per piece: plain values read with
    values_list (no model instances) and formatted by each column's formatter."""
    progress = progress or Progress()
    writer = LineWriter()
    yield writer.header(column.title for column in columns)
    reads, formatters = zip(*(column.export() for column in columns), strict=True)
    batch: list[str] = []
    for values in devices.values_list(*reads).iterator(chunk_size=CHUNK):
        batch.append(writer.row([format_(value) for format_, value in zip(formatters, values, strict=True)]))
        if len(batch) == CHUNK:
            yield "".join(batch)
            progress.rows += len(batch)
            batch = []
    if batch:
        yield "".join(batch)
        progress.rows += len(batch)
