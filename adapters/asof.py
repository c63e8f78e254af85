"""The days a plan may be made for, whatever the command or test file.

Planning reaches months and years around its instant (history windows,
ladder offsets, the calendar's holidays), so an instant near the ends of
Python's calendar (years 1 and 9999) overflows inside date arithmetic.
Every instant a user writes (`--as-of`, `--since`, `--from`/`--to`, a test
case's `as_of`) is checked against this range first, with a clear message.
"""

from __future__ import annotations

import datetime as dt

FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2199, 12, 31)


def out_of_range(day: dt.date) -> str | None:
    """Why `day` cannot be planned for, or None when it can."""
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return (
        f"{day.isoformat()} is outside the supported days ({FIRST_DAY} to {LAST_DAY})"
    )
