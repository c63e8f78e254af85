"""The UCI "Default of Credit Card Clients" data as dunning records.

30,000 real card holders of a Taiwanese issuer, April to September 2005
(Yeh 2009, doi:10.24432/C55S3H, CC BY 4.0). One row per customer; this
mapping turns each row into a customer, up to six monthly statements
(invoices) and the payments between them. The conventions, all stated in
examples/uci/README.md:

- amounts are NT dollars, taken as BRL units for the demo (no conversion);
- the statement of month m closes on its last day and is due on the 10th
  of month m+1 (the September statement is due on 2005-10-10);
- a statement with an amount <= 0 is a credit balance, not an invoice;
- `PAY_AMTk`, received in month k, settles the statement of month k-1: it
  becomes a payment of that invoice dated on its due date (the 10th of
  month k); April's payment settles a March statement that is not in the
  data, so it is left out;
- the statement due in month m is `30 * PAY status of month m` days late
  (0 when the status is -2, -1 or 0); April to August statements are
  `closed` (a card carries what is unpaid into the next statement) and
  settled on due date + days late; September's is `open`;
- names, phones and e-mail addresses are fake, derived from the ID.

The file is one row per customer, so the source streams by construction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from adapters.sources.config import SourceConfig
from adapters.sources.mapped import MappedFields, MappedFile
from dsl.model import InputSchema
from dsl.types import BOOL, DATE, INT, MONEY, STRING, Type
from engine.records import CustomerRecords, RecordProblem
from engine.scope import Record

logger = logging.getLogger(__name__)

MAPPING_VERSION = "uci-credit-card-v1"
YEAR = 2005
MONTHS = (4, 5, 6, 7, 8, 9)  # April .. September 2005
# Column suffix k of BILL_AMTk / PAY_AMTk for each month (1 = September).
_AMOUNT_INDEX = {month: 10 - month for month in MONTHS}
# The repayment status column of each month (there is no PAY_1).
_STATUS_COLUMN = {
    9: "PAY_0",
    8: "PAY_2",
    7: "PAY_3",
    6: "PAY_4",
    5: "PAY_5",
    4: "PAY_6",
}
_MONTH_NAMES = {4: "apr", 5: "may", 6: "jun", 7: "jul", 8: "aug", 9: "sep"}
COLUMNS = (
    ("ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE")
    + tuple(_STATUS_COLUMN[m] for m in reversed(MONTHS))
    + tuple(f"BILL_AMT{k}" for k in range(1, 7))
    + tuple(f"PAY_AMT{k}" for k in range(1, 7))
    + ("target",)
)
DUE_DAY = 10
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")
PAYMENT_LINK = "https://pague.example.com/{invoice}"
PIX_CODE = "PIX-FICTICIO-{invoice}"
# Brazil has no numbering range reserved for fiction, so the fake phones are
# São Paulo (11) mobile numbers in the unlikely 9 0000-9 0003 block: valid
# for `phonenumbers` (the engine must accept them), not known to be free.
# examples/uci/README.md states the trade-off.
PHONE = "+55119{id:08d}"

_FIRST_FEMALE = (
    "Ana", "Beatriz", "Camila", "Daniela", "Eduarda", "Fernanda", "Gabriela",
    "Helena", "Isabela", "Juliana", "Larissa", "Mariana", "Natália", "Patrícia",
    "Rafaela", "Sabrina", "Tatiane", "Vitória", "Conceição", "Luíza",
)  # fmt: skip
_FIRST_MALE = (
    "André", "Bruno", "Carlos", "Diego", "Eduardo", "Felipe", "Gustavo",
    "Henrique", "Igor", "João", "Lucas", "Marcelo", "Nicolas", "Otávio",
    "Paulo", "Rafael", "Sérgio", "Thiago", "Vinícius", "Wagner",
)  # fmt: skip
_SURNAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves",
    "Pereira", "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho",
    "Almeida", "Lopes", "Soares", "Fernandes", "Vieira", "Barbosa", "Rocha",
    "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques", "Machado",
    "Mendes", "Freitas", "Cardoso", "Teixeira", "Araújo", "Conceição",
)  # fmt: skip
_SEX = {1: "male", 2: "female"}
_EDUCATION = {1: "graduate_school", 2: "university", 3: "high_school", 4: "other"}
_MARRIAGE = {1: "married", 2: "single", 3: "other"}

# Shares of customers, in percent, drawn from a hash of the ID.
NO_PHONE_PERCENT = 6
NO_EMAIL_PERCENT = 10
WHATSAPP_OPT_IN_PERCENT = 80
SMS_OPT_OUT_PERCENT = 5
IN_NEGOTIATION_PERCENT = 2

NULLABLE_STRING = STRING.as_nullable()
NULLABLE_DATE = DATE.as_nullable()
# What the mapping can fill, per record kind, with the type it delivers.
PROVIDED: dict[str, dict[str, Type]] = {
    "customer": {
        "id": STRING,
        "name": STRING,
        "first_name": STRING,
        "phone": NULLABLE_STRING,
        "email": NULLABLE_STRING,
        "credit_limit": MONEY,
        "whatsapp_opt_in": BOOL,
        "sms_opt_out": BOOL,
        "in_negotiation": BOOL,
        "defaulted_next_month": BOOL,
        "age": INT,
        "sex": NULLABLE_STRING,
        "education": NULLABLE_STRING,
        "marriage": NULLABLE_STRING,
        "statement_balance": MONEY,
        **{f"pay_status_{_MONTH_NAMES[m]}": INT for m in MONTHS},
    },
    "invoice": {
        "id": STRING,
        "customer_id": STRING,
        "amount": MONEY,
        "due_date": DATE,
        "closing_date": DATE,
        "status": STRING,
        "settled_on": NULLABLE_DATE,
        "days_late": INT,
        "month": STRING,
        "payment_link": STRING,
        "pix_code": NULLABLE_STRING,
    },
    "payment": {
        "invoice_id": STRING,
        "customer_id": STRING,
        "amount": MONEY,
        "paid_on": DATE,
    },
}


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, int]


class UciCreditCardSource:
    """A `RecordSource` over the UCI credit-card file."""

    def __init__(
        self, config: SourceConfig, inputs: InputSchema, *, on_error: str = "fail"
    ) -> None:
        self._mapped = MappedFields(
            inputs, PROVIDED, mapping="UCI", origin=config.origin
        )
        self.on_error = on_error
        self.problems: list[RecordProblem] = []
        self._counts: dict[str, int] = {}
        self._limit = config.limit
        self._file = MappedFile(
            config,
            COLUMNS,
            what="the UCI credit-card file",
            mapping_version=MAPPING_VERSION,
        )
        self._name = self._file.name

    @property
    def notes(self) -> list[str]:
        """The mapping's conventions at work, counted over the rows read so
        far (all of them once `customers()` is exhausted)."""
        return _notes(self._counts) if self._counts else []

    def digest(self) -> str:
        return self._file.digest

    def _rows(self) -> Iterator[_Row | RecordProblem]:
        for start, cells in self._file.rows():
            problem = self._file.width_problem(start, cells, cells[0])
            if problem is not None:
                yield problem
                continue

            raw = dict(zip(self._file.header, cells, strict=True))
            values = {column: whole_number(raw[column]) for column in COLUMNS}
            bad = [column for column, value in values.items() if value is None]
            if bad:
                yield RecordProblem(
                    self._name,
                    start,
                    raw["ID"],
                    f"{bad[0]}: {raw[bad[0]]!r} is not a whole number",
                )
                continue
            yield _Row(start, cast(dict[str, int], values))

    def customers(self) -> Iterator[CustomerRecords]:
        self.problems = []
        counts = {"credit_balances": 0, "march_payments": 0, "orphan_payments": 0}
        self._counts = counts
        seen: set[int] = set()
        yielded = 0
        for item in self._rows():
            if self._limit is not None and yielded >= self._limit:
                break
            if isinstance(item, RecordProblem):
                self.problems.append(item)
                continue
            problem = _check_row(item.values, seen)
            if problem:
                ident = str(item.values["ID"])
                self.problems.append(
                    RecordProblem(self._name, item.line, ident, problem)
                )
                continue
            seen.add(item.values["ID"])
            records = map_row(item.values, counts)
            problem = self._mapped.too_long(records)
            if problem:
                self.problems.append(
                    RecordProblem(
                        self._name, item.line, str(item.values["ID"]), problem
                    )
                )
                continue
            yielded += 1
            yield self._mapped.select(records)
        for note in self.notes:
            logger.info("%s: %s", self._name, note)


def whole_number(text: str) -> int | None:
    """The integer a cell holds, or None.

    Besides plain integers the file writes exact multiples of 100,000 in
    scientific notation (`5.00E+05` for 500000; 4,150 cells, mostly
    LIMIT_BAL). Decimal reads those exactly; a fraction is refused.
    """
    try:
        return int(text)
    except ValueError:
        pass
    if not _SCIENTIFIC.fullmatch(text):
        return None
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else None


def _check_row(values: dict[str, int], seen: set[int]) -> str | None:
    """What is wrong with a row of integers, per the data's documentation."""
    if values["ID"] in seen:
        return f"duplicate ID {values['ID']}"
    if values["LIMIT_BAL"] <= 0:
        return f"LIMIT_BAL: {values['LIMIT_BAL']} is not a credit limit"
    for month, column in _STATUS_COLUMN.items():
        if not -2 <= values[column] <= 9:
            return f"{column}: {values[column]} is not a repayment status (-2..9)"
        amount = values[f"PAY_AMT{_AMOUNT_INDEX[month]}"]
        if amount < 0:
            return f"PAY_AMT{_AMOUNT_INDEX[month]}: {amount} is a negative payment"
    if values["target"] not in (0, 1):
        return f"target: {values['target']} is not 0 or 1"
    return None


def invoice_id(customer: int, month: int) -> str:
    return f"{customer}-{YEAR}{month:02d}"


def due_date(month: int) -> dt.date:
    """The 10th of the month after the statement's month."""
    return dt.date(YEAR + month // 12, month % 12 + 1, DUE_DAY)


def closing_date(month: int) -> dt.date:
    return due_date(month).replace(day=1) - dt.timedelta(days=1)


def days_late(values: dict[str, int], month: int) -> int:
    """Days late of the statement of `month`, from the status of the month
    it falls due in; 0 for September's (due in October, no status)."""
    column = _STATUS_COLUMN.get(month + 1)
    if column is None:
        return 0
    return 30 * max(values[column], 0)


def map_row(values: dict[str, int], counts: dict[str, int]) -> CustomerRecords:
    """Every field the mapping provides, for one row of the file.

    `counts` tallies what is not turned into records (credit balances,
    payments of statements that are not invoices), for the source's notes.
    """
    ident = values["ID"]
    customer_id = str(ident)
    customer = _customer(values)

    invoices: list[Record] = []
    billed: set[int] = set()
    for month in MONTHS:
        amount = values[f"BILL_AMT{_AMOUNT_INDEX[month]}"]
        if amount <= 0:
            counts["credit_balances"] += 1
            continue
        billed.add(month)
        late = days_late(values, month)
        invoice = invoice_id(ident, month)
        is_open = month == MONTHS[-1]
        invoices.append(
            {
                "id": invoice,
                "customer_id": customer_id,
                "amount": Decimal(amount),
                "due_date": due_date(month),
                "closing_date": closing_date(month),
                "status": "open" if is_open else "closed",
                "settled_on": None
                if is_open
                else due_date(month) + dt.timedelta(days=late),
                "days_late": late,
                "month": f"{YEAR}-{month:02d}",
                "payment_link": PAYMENT_LINK.format(invoice=invoice),
                "pix_code": PIX_CODE.format(invoice=invoice),
            }
        )

    payments: list[Record] = []
    for month in MONTHS:
        amount = values[f"PAY_AMT{_AMOUNT_INDEX[month]}"]
        if amount == 0:
            continue
        settles = month - 1
        if settles not in MONTHS:
            counts["march_payments"] += 1
            continue
        if settles not in billed:
            counts["orphan_payments"] += 1
            continue
        payments.append(
            {
                "invoice_id": invoice_id(ident, settles),
                "customer_id": customer_id,
                "amount": Decimal(amount),
                "paid_on": due_date(settles),
            }
        )
    return CustomerRecords(customer=customer, invoices=invoices, payments=payments)


def _hash_percent(ident: int, slot: int) -> int:
    """A number 0..99 fixed for (ID, slot): the same on every machine."""
    digest = hashlib.sha256(f"{MAPPING_VERSION}:{ident}:{slot}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def _hash_pick(ident: int, slot: int, choices: tuple[str, ...]) -> str:
    digest = hashlib.sha256(f"{MAPPING_VERSION}:{ident}:{slot}".encode()).digest()
    return choices[int.from_bytes(digest[:4], "big") % len(choices)]


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii()).lower()


def _customer(values: dict[str, int]) -> Record:
    ident = values["ID"]
    first = _hash_pick(ident, 1, _FIRST_MALE if values["SEX"] == 1 else _FIRST_FEMALE)
    surname = _hash_pick(ident, 2, _SURNAMES)
    last = _hash_pick(ident, 3, _SURNAMES)
    domain = "example.com" if _hash_percent(ident, 4) < 50 else "example.org"
    return {
        "id": str(ident),
        "name": f"{first} {surname} {last}",
        "first_name": first,
        "phone": None
        if _hash_percent(ident, 5) < NO_PHONE_PERCENT
        else PHONE.format(id=ident),
        "email": None
        if _hash_percent(ident, 6) < NO_EMAIL_PERCENT
        else f"{_ascii(first)}.{_ascii(last)}.{ident}@{domain}",
        "credit_limit": Decimal(values["LIMIT_BAL"]),
        "whatsapp_opt_in": _hash_percent(ident, 7) < WHATSAPP_OPT_IN_PERCENT,
        "sms_opt_out": _hash_percent(ident, 8) < SMS_OPT_OUT_PERCENT,
        "in_negotiation": _hash_percent(ident, 9) < IN_NEGOTIATION_PERCENT,
        "defaulted_next_month": values["target"] == 1,
        "age": values["AGE"],
        "sex": _SEX.get(values["SEX"]),
        "education": _EDUCATION.get(values["EDUCATION"]),
        "marriage": _MARRIAGE.get(values["MARRIAGE"]),
        "statement_balance": Decimal(values["BILL_AMT1"]),
        **{f"pay_status_{_MONTH_NAMES[m]}": values[_STATUS_COLUMN[m]] for m in MONTHS},
    }


def _notes(counts: dict[str, int]) -> list[str]:
    notes = []
    if counts["credit_balances"]:
        notes.append(
            f"{counts['credit_balances']} statements with an amount <= 0 are credit"
            " balances, not invoices"
        )
    if counts["march_payments"]:
        notes.append(
            f"{counts['march_payments']} April payments settle March 2005"
            " statements, which are not in the data: left out"
        )
    if counts["orphan_payments"]:
        notes.append(
            f"{counts['orphan_payments']} payments settle a statement with an"
            " amount <= 0 (no invoice): left out"
        )
    return notes
