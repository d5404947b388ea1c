"""CSV for every export: one line writer that quotes every field, starts with a byte order mark, drops NUL and
neutralises cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable

BOM = "\ufeff"  # Excel reads the file as UTF-8 only with it (device and user names are often not ASCII)
FORMULA_STARTS = "=+-@\t\r"
# A cell starts at the value's start and, for spreadsheets whose list separator is ";" (German or French
# Excel), after every ";" as well.
CELL_STARTS = re.compile(r"(^|;)(?=[=+\-@\t\r])")


class _Line:
    """A file-like object that hands back what csv.writer writes, so rows stream one at a time."""

    def write(self, value: str) -> str:
        return value


def neutralise(value: str) -> str:
    """A formula character wherever a cell could start gets an apostrophe before it; NUL characters are dropped."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value or (value[0] not in FORMULA_STARTS and ";" not in value):
        return value  # the common case, without a regular expression
    return CELL_STARTS.sub(r"\1'", value)


class LineWriter:
    """Lines of a CSV export: the header (with the byte order mark) first, then rows; every field quoted."""

    def __init__(self) -> None:
        self._writer = csv.writer(_Line(), quoting=csv.QUOTE_ALL)

    def header(self, titles: Iterable[str]) -> str:
        return BOM + self.row(titles)

    def row(self, cells: Iterable[str]) -> str:
        return self._writer.writerow([neutralise(cell) for cell in cells])
