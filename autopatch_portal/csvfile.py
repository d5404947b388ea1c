"""CSV for every export: one line writer that quotes every field, starts with a byte order mark, drops NUL and
neutralises cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse
from django.utils import timezone

BOM = "\ufeff"  # Excel reads the file as UTF-8 only with it (device and user names are often not ASCII)
FORMULA_STARTS = "=+-@\t\r"
# A cell starts at the value's start and, for spreadsheets whose list separator is ";" (German or French
# Excel), after every ";" as well.
CELL_STARTS = re.compile(r"(^|;)(?=[=+\-@\t\r])")
# What, in a row's fields joined by "\x1f", shows that some field may need neutralise(): a NUL, a ";" or a field
# starting with a formula character. Substring tests, as a regular expression scanning each row took a third of
# an export's time; a "\x1f" inside a field can make them say yes for nothing, never no for a field that needs it.
FIELD_STARTS = frozenset(FORMULA_STARTS)
ROW_MARKERS = (";", "\x00", *(f"\x1f{char}" for char in FORMULA_STARTS))


class _Lines:
    """Where csv.writer writes: collects the text of the rows written since it was last taken."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()

    def write(self, value: str) -> None:
        self._buffer.write(value)

    def take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def neutralise(value: str) -> str:
    """A formula character wherever a cell could start gets an apostrophe before it; NUL characters are dropped."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value or (value[0] not in FORMULA_STARTS and ";" not in value):
        return value  # the common case, without a regular expression
    return CELL_STARTS.sub(r"\1'", value)


def safe(cells: Sequence[str]) -> Sequence[str]:
    """The row with every field neutralised; one test of the whole row first, as most rows need nothing."""
    joined = "\x1f".join(cells)
    if joined[:1] in FIELD_STARTS or any(marker in joined for marker in ROW_MARKERS):
        return [neutralise(cell) for cell in cells]
    return cells


class LineWriter:
    """Lines of a CSV export: the header (with the byte order mark) first, then rows; every field quoted."""

    def __init__(self) -> None:
        self._lines = _Lines()
        self._writer = csv.writer(self._lines, quoting=csv.QUOTE_ALL)

    def header(self, titles: Iterable[str]) -> str:
        return BOM + self.row(titles)

    def row(self, cells: Iterable[str]) -> str:
        return self.rows([list(cells)])

    def rows(self, rows: Iterable[Sequence[str]]) -> str:
        """The lines of many rows at once (an export writes 2,000 a piece)."""
        self._writer.writerows(safe(cells) for cells in rows)
        return self._lines.take()


def csv_download(lines: Iterator[str], name: str) -> StreamingHttpResponse:
    """A CSV streamed as a download named autopatch-NAME-<UTC time>Z.csv: every export's response."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="autopatch-{name}-{timezone.now():%Y%m%d-%H%M%S}Z.csv"'
    )
    return response
