"""CSV helpers shared by every export: streamed lines, and cells a spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv

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
