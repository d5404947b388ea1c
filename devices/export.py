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
    """The header, then the rows in the queryset's order, CHUNK rows per piece: each column's text as the
    database writes it (Column.export), read with values_list (no model instances) and written as read."""
    progress = progress or Progress()
    writer = LineWriter()
    yield writer.header(column.title for column in columns)
    texts = {f"export_{i}": column.export() for i, column in enumerate(columns)}
    batch: list[tuple[str, ...]] = []
    for values in devices.annotate(**texts).values_list(*texts).iterator(chunk_size=CHUNK):
        batch.append(values)
        if len(batch) == CHUNK:
            yield writer.rows(batch)
            progress.rows += len(batch)
            batch = []
    if batch:
        yield writer.rows(batch)
        progress.rows += len(batch)
