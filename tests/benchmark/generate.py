"""Deterministic synthetic input for the varejo ruleset, grouped by customer.

`write_dataset(folder, invoices=1_000_000)` writes `customers.csv`,
`invoices.csv` and `payments.csv` in the varejo input schema
(rulesets/varejo/inputs.yaml), with the default CSV options of
docs/sources.md, so `ruleset plan rulesets/varejo --data folder` reads it
as it is. The same seed and size give the same bytes on every machine.

The shape is a retail card portfolio on a planning day (`AS_OF`):

- about five monthly invoices per customer (3 to 7), due on the customer's
  own day of the month, the latest within two weeks either side of today;
- 60 % of customers pay on time or early, 30 % are sometimes late, 10 %
  are often late and leave some invoices unpaid;
- rows are grouped by customer (invoices in the customers' order, payments
  in their invoices' order): the input a large export should give, and the
  one the sources stream with one customer's records in memory.

Names, phones and e-mail addresses are made up. Phones are São Paulo
mobile numbers in the 9 00xx block the UCI example uses (valid for
`phonenumbers`, not known to be free: never send to them), e-mail domains
are RFC 2606 example domains.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The planning instant the data is built around (a Tuesday, 10:00 in São
# Paulo), passed to `ruleset plan --as-of`.
AS_OF = "2025-10-07T10:00"
TODAY = dt.date(2025, 10, 7)
DEFAULT_SEED = 20251007
# Invoices per customer, drawn uniformly: five on average.
INVOICES_PER_CUSTOMER = (3, 4, 5, 6, 7)

CUSTOMER_COLUMNS = (
    "id",
    "name",
    "first_name",
    "phone",
    "email",
    "credit_limit",
    "whatsapp_opt_in",
    "sms_opt_out",
    "in_negotiation",
)
INVOICE_COLUMNS = (
    "id",
    "customer_id",
    "amount",
    "due_date",
    "status",
    "settled_on",
    "payment_link",
    "pix_code",
)
PAYMENT_COLUMNS = ("invoice_id", "amount", "paid_on")

_FIRST_NAMES = (
    "Ana",
    "Beatriz",
    "Camila",
    "Débora",
    "Fernanda",
    "Juliana",
    "Letícia",
    "Mariana",
    "Patrícia",
    "Vitória",
    "André",
    "Bruno",
    "Carlos",
    "Diego",
    "Eduardo",
    "Felipe",
    "João",
    "Lucas",
    "Rafael",
    "Sérgio",
)
_SURNAMES = (
    "Almeida",
    "Barbosa",
    "Cardoso",
    "Costa",
    "Ferreira",
    "Gomes",
    "Lima",
    "Martins",
    "Oliveira",
    "Pereira",
    "Ribeiro",
    "Rodrigues",
    "Santos",
    "Silva",
    "Souza",
)


@dataclass(frozen=True)
class Dataset:
    """A written data set: its folder and how many rows each file has."""

    folder: Path
    customers: int
    invoices: int
    payments: int

    @property
    def records(self) -> int:
        return self.customers + self.invoices + self.payments

    @property
    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.glob("*.csv"))


def write_dataset(folder: Path, *, invoices: int, seed: int = DEFAULT_SEED) -> Dataset:
    """Write `invoices` invoices (and their customers and payments) into
    `folder`, which is created if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    counts = {"customers": 0, "invoices": 0, "payments": 0}
    files = {
        name: (folder / f"{name}.csv").open("w", newline="", encoding="utf-8")
        for name in counts
    }
    try:
        writers = {
            name: csv.writer(file, lineterminator="\n") for name, file in files.items()
        }
        writers["customers"].writerow(CUSTOMER_COLUMNS)
        writers["invoices"].writerow(INVOICE_COLUMNS)
        writers["payments"].writerow(PAYMENT_COLUMNS)

        while counts["invoices"] < invoices:
            number = counts["customers"] + 1
            wanted = min(
                rng.choice(INVOICES_PER_CUSTOMER), invoices - counts["invoices"]
            )
            customer, bills, payments = _customer(
                rng, number, counts["invoices"], wanted
            )
            writers["customers"].writerow(customer)
            writers["invoices"].writerows(bills)
            writers["payments"].writerows(payments)
            counts["customers"] += 1
            counts["invoices"] += len(bills)
            counts["payments"] += len(payments)
    finally:
        for file in files.values():
            file.close()
    return Dataset(folder, **counts)


def _customer(
    rng: random.Random, number: int, invoices_before: int, count: int
) -> tuple[list[Any], list[list[Any]], list[list[Any]]]:
    """One customer's row, invoice rows and payment rows."""
    customer_id = f"C{number}"
    first = rng.choice(_FIRST_NAMES)
    surnames = f"{rng.choice(_SURNAMES)} {rng.choice(_SURNAMES)}"
    phone = "" if rng.random() < 0.06 else f"+55119{number:08d}"
    slug = _ascii(f"{first}.{surnames.split()[0]}".lower())
    email = "" if rng.random() < 0.10 else f"{slug}.{number}@example.com"
    customer = [
        customer_id,
        f"{first} {surnames}",
        first,
        phone,
        email,
        _money(rng.randrange(10, 400) * 5000),
        _flag(rng.random() < 0.80),
        _flag(rng.random() < 0.05),
        _flag(rng.random() < 0.02),
    ]

    habit = rng.random()  # < 0.6 punctual, < 0.9 sometimes late, else often
    typical = rng.randrange(4_000, 250_000)  # cents
    latest = _latest_due(rng.randint(1, 28))
    bills: list[list[Any]] = []
    payments: list[list[Any]] = []
    for age in range(count - 1, -1, -1):  # oldest first
        invoice_id = f"F{invoices_before + len(bills) + 1}"
        due = _add_months(latest, -age)
        amount = max(1_000, typical + rng.randrange(-typical // 3, typical // 3 + 1))
        status, paid = _outcome(rng, habit, due, amount)
        for paid_on, cents in paid:
            payments.append([invoice_id, _money(cents), paid_on.isoformat()])
        link = f"https://pague.example.com/{invoice_id}"
        pix = f"PIX-{invoice_id}" if rng.random() < 0.5 else ""
        bills.append(
            [
                invoice_id,
                customer_id,
                _money(amount),
                due.isoformat(),
                status,
                "",
                link,
                pix,
            ]
        )
    return customer, bills, payments


def _outcome(
    rng: random.Random, habit: float, due: dt.date, amount: int
) -> tuple[str, list[tuple[dt.date, int]]]:
    """The invoice's status and its payments (date, cents) as of TODAY."""
    if rng.random() < 0.01:
        return "cancelled", []
    if habit < 0.6:
        late = -rng.randint(0, 5)
    elif habit < 0.9:
        late = rng.randint(1, 20) if rng.random() < 0.3 else -rng.randint(0, 3)
    else:
        late = rng.randint(10, 90) if rng.random() < 0.6 else rng.randint(0, 5)
    paid_on = due + dt.timedelta(days=late)
    if paid_on > TODAY:
        # Not paid yet; now and then part of it was.
        if rng.random() < 0.1 and due <= TODAY:
            part = amount // 2
            return "open", [(due, part)]
        return ("disputed" if rng.random() < 0.005 else "open"), []
    if rng.random() < 0.1:
        first = amount // 3
        earlier = paid_on - dt.timedelta(days=rng.randint(1, 10))
        return "paid", [(earlier, first), (paid_on, amount - first)]
    return "paid", [(paid_on, amount)]


def _latest_due(day: int) -> dt.date:
    """The customer's latest due date: day `day` of the month, within about
    two weeks of TODAY."""
    due = TODAY.replace(day=day)
    if (due - TODAY).days > 15:
        return _add_months(due, -1)
    if (TODAY - due).days > 15:
        return _add_months(due, 1)
    return due


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def _ascii(text: str) -> str:
    """`joão` -> `joao`, for e-mail addresses."""
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _flag(value: bool) -> str:
    return "true" if value else "false"
