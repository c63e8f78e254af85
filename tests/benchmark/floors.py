"""The floors the engine is measured against: the same work written plainly.

- `parse_only`: read the three CSV files of a data set into typed records
  with the csv module, `Decimal` and `date.fromisoformat`, and nothing
  else: no checks, no grouping, no planning. What any Python program that
  reads this input has to pay.
- `plain_segment`: the varejo policy's segment rules as a hand-written
  Python function over the same `Scope` the compiled expressions see.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from engine.scope import Duration, Scope

_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "sim", "s", "1"})


def _text(cell: str) -> str:
    return cell


def _optional_text(cell: str) -> str | None:
    return cell or None


def _money(cell: str) -> Decimal:
    return Decimal(cell)


def _date(cell: str) -> dt.date:
    return dt.date.fromisoformat(cell)


def _optional_date(cell: str) -> dt.date | None:
    return dt.date.fromisoformat(cell) if cell else None


def _flag(cell: str) -> bool:
    return cell.lower() in _TRUE_WORDS


# Column converters per file, in the varejo input schema's types.
CONVERTERS: dict[str, dict[str, Callable[[str], object]]] = {
    "customers": {
        "id": _text,
        "name": _text,
        "first_name": _text,
        "phone": _optional_text,
        "email": _optional_text,
        "credit_limit": _money,
        "whatsapp_opt_in": _flag,
        "sms_opt_out": _flag,
        "in_negotiation": _flag,
    },
    "invoices": {
        "id": _text,
        "customer_id": _text,
        "amount": _money,
        "due_date": _date,
        "status": _text,
        "settled_on": _optional_date,
        "payment_link": _text,
        "pix_code": _optional_text,
    },
    "payments": {"invoice_id": _text, "amount": _money, "paid_on": _date},
}


def parse_only(folder: Path) -> int:
    """Parse every row of the data set in `folder` into a typed dict, keep
    none of them, and return how many records were parsed."""
    records = 0
    for name, converters in CONVERTERS.items():
        with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as file:
            reader = csv.reader(file)
            header = next(reader)
            columns = [
                (field, header.index(field), converters[field]) for field in converters
            ]
            for cells in reader:
                # Built and dropped: the floor pays for typed values only.
                record = {field: convert(cells[i]) for field, i, convert in columns}
                records += 1 if record else 0
    return records


SIX_MONTHS = Duration(6, "months")


def plain_segment(scope: Scope) -> str:
    """The varejo segments, first match wins, written by hand."""
    history = scope.history
    if history.late_count(SIX_MONTHS) == 0:
        return "pontual"
    # The scorecard ran first, so the score is set, as the compiled rule
    # assumes too.
    score: int = scope.score  # type: ignore[assignment]
    if history.max_days_late(SIX_MONTHS) >= 60 or score < 40:
        return "risco"
    return "ocasional"
