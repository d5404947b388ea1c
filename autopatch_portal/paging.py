"""Page numbers as a query string gives them."""

from __future__ import annotations


def requested_page(value: str | None) -> int | None:
    """The page `?page=` asks for (1 when absent), or None when it is no page number at all.

    isdecimal, not isdigit ("²" is a digit that int() refuses); the length is bounded before int(), which refuses
    4,300 digits and more with an error of its own."""
    value = value or "1"
    if not (value.isdecimal() and len(value) <= 9):
        return None
    number = int(value)
    return number if number >= 1 else None
