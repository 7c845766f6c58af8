"""Whole numbers read from a request (ids, page numbers, offsets): ASCII digits of a value a
64-bit column holds, or nothing. A larger number never reaches a query: SQLite cannot even bind
it, and PostgreSQL would refuse it with an error."""

from __future__ import annotations

LARGEST = 2**63 - 1


def whole_number(raw: object) -> int | None:
    """`raw` (a string of ASCII digits) as an int from 0 to LARGEST; None for anything else."""
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    number = int(raw)
    return number if number <= LARGEST else None
