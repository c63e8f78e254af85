"""Lending Club loans as customers, monthly instalments and payments.

The file `lendingclub_loans_2018q1.csv` (examples/lendingclub/) holds one
row per loan: US personal loans issued January to March 2018, with their
state at a single snapshot taken around mid-2018. It has no due dates, no
payment dates and no contact details. This module turns each row into the
records a ruleset plans from, by conventions stated here and in
examples/lendingclub/README.md:

- customer = the R row number `rownames` (one loan per borrower);
- instalments fall due on the 15th, the first one in the month after the
  issue month; only the instalments due by the snapshot and the next one
  are emitted, because the engine plans reminders for what is due, and a
  whole 36- or 60-month schedule of open invoices would count as exposure;
- instalments paid = `paid_total` less late fees, divided by `installment`
  and rounded to the nearest whole instalment, at most those due by the
  snapshot (more is a principal prepayment, which does not pay a future
  instalment early);
- `loan_status` decides what is open, written off or paid (see
  `build_schedule`);
- names, e-mail addresses, phone numbers and consents are fake and derived
  from the loan id only, so every run gives the same customers.

The mapping is a set of pure functions (`read_loan`, `build_schedule`,
`loan_records`); `LendingClubSource` reads the file and reports every row it
cannot map with the file name and line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from adapters.sources.config import SourceConfig
from adapters.sources.mapped import MappedFields, MappedFile
from dsl.model import InputSchema
from dsl.types import BOOL, DATE, DECIMAL, INT, MONEY, STRING, Type
from engine.records import CustomerRecords, RecordProblem
from engine.scope import Record

logger = logging.getLogger(__name__)

# The day the file describes. The README's medians of instalments paid (5, 4
# and 3 for loans issued in January, February and March) put it after the
# June 15th instalment and before the July one; among those days, the second
# half of June is when the lender's own buckets agree best with the
# lateness derived here (see examples/lendingclub/README.md). Monday the
# 18th is the first business day after the June instalment fell due.
SNAPSHOT = dt.date(2018, 6, 18)

# Instalments fall due on this day of the month (it exists in every month).
DUE_DAY = 15

# Lending Club charges a late fee when a payment is more than 15 days late:
# the greater of 5% of the instalment or $15. An instalment whose fee was
# paid is taken as settled this many days after its due date.
LATE_FEE_AFTER_DAYS = 16
LATE_FEE_SHARE = Decimal("0.05")
LATE_FEE_MINIMUM = Decimal("15.00")

CENT = Decimal("0.01")

# `loan_status` values, and the lateness in days each one reports. Fully
# Paid and Charged Off report none: those loans have nothing open.
REPORTED_LATENESS: dict[str, tuple[int, int] | None] = {
    "Current": (0, 0),
    "In Grace Period": (1, 15),
    "Late (16-30 days)": (16, 30),
    "Late (31-120 days)": (31, 120),
    "Fully Paid": None,
    "Charged Off": None,
}
LATE_STATUSES = frozenset(
    {"In Grace Period", "Late (16-30 days)", "Late (31-120 days)"}
)

TERMS = (36, 60)

# Fake first names: the stock characters of protocol examples, so nobody
# mistakes them for a real borrower.
FIRST_NAMES = (
    "Alice",
    "Bob",
    "Carol",
    "Dave",
    "Erin",
    "Frank",
    "Grace",
    "Heidi",
    "Ivan",
    "Judy",
    "Mallory",
    "Oscar",
    "Peggy",
    "Trent",
    "Victor",
    "Walter",
)

# Share of customers, in percent, with each contact detail or consent.
EMAIL_SHARE = 90
MOBILE_SHARE = 95
SMS_CONSENT_SHARE = 80
CALL_CONSENT_SHARE = 60

# Chicago's area code and the 555-0100..0199 block that the North American
# Numbering Plan keeps for fiction; `phonenumbers` accepts these as valid.
MOBILE_PREFIX = "+1312555"
PAY_URL = "https://example.com/pay/{invoice_id}"


class LoanRowError(ValueError):
    """A row that cannot be mapped; the message names every bad column."""


@dataclass(frozen=True)
class Loan:
    """The columns of one row that the mapping uses, typed."""

    id: str
    issue_month: dt.date  # the first day of the month
    term: int  # number of monthly instalments
    installment: Decimal
    paid_total: Decimal
    paid_late_fees: Decimal
    status: str
    joint: bool
    annual_income: Decimal  # the joint income for a joint application
    debt_to_income: Decimal | None  # the joint ratio for a joint application
    delinquencies_2y: int
    never_delinquent_pct: Decimal | None
    state: str  # two-letter US state
    loan_grade: str  # Lending Club's grade, A (best) to G
    balance: Decimal  # principal outstanding at the snapshot


@dataclass(frozen=True)
class Schedule:
    """Where a loan's repayment stands at the snapshot.

    Instalment k (from 1) falls due `k - 1` months after `first_due`.
    """

    first_due: dt.date
    due: int  # instalments due by the snapshot
    paid: int  # instalments paid, the first ones
    late_paid: frozenset[int]  # instalments paid LATE_FEE_AFTER_DAYS late
    open_status: str  # of the unpaid instalments due: "open" or "written_off"
    upcoming: bool  # whether the next instalment is emitted as open
    shifted_months: int  # months the schedule was moved later (Current only)

    def due_date(self, number: int) -> dt.date:
        return add_months(self.first_due, number - 1)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month, `months` later (day must exist, e.g. 15)."""
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)


# Reading a row


class _RowReader:
    """Typed columns of one row; every problem is collected, not raised."""

    def __init__(self, row: Mapping[str, str]) -> None:
        self.row = row
        self.errors: list[str] = []

    def text(self, column: str) -> str:
        return (self.row.get(column) or "").strip()

    def failed(self, column: str) -> bool:
        """Whether reading `column` already gave a problem."""
        return any(error.startswith(f"{column}:") for error in self.errors)

    def decimal(self, column: str) -> Decimal | None:
        """The number as written (never through float); None when empty."""
        text = self.text(column)
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            self.errors.append(f"{column}: {text!r} is not a number")
            return None
        return value

    def required(self, column: str) -> Decimal:
        value = self.decimal(column)
        if value is None:
            if not self.text(column):
                self.errors.append(f"{column}: is empty")
            return Decimal(0)
        return value

    def money(self, column: str) -> Decimal:
        """Rounded to the cent: some columns carry float tails (5202.6426724643)."""
        return self.required(column).quantize(CENT, ROUND_HALF_UP)

    def whole(self, column: str) -> int:
        """A count, written `3` or `3.0` (pandas writes a column with NA as float)."""
        value = self.required(column)
        if value != value.to_integral_value():
            self.errors.append(f"{column}: {self.text(column)!r} is not a whole number")
            return 0
        return int(value)


def read_loan(row: Mapping[str, str]) -> Loan:
    """The typed loan of one CSV row, or `LoanRowError` naming every bad column."""
    reader = _RowReader(row)
    errors = reader.errors

    loan_id = reader.text("rownames")
    if not loan_id:
        errors.append("rownames: is empty")

    issue_text = reader.text("issue_month")
    try:
        issue_month = dt.datetime.strptime(issue_text, "%b-%Y").date()
    except ValueError:
        errors.append(f"issue_month: {issue_text!r} is not a month like 'Jan-2018'")
        issue_month = dt.date(1, 1, 1)

    term = reader.whole("term")
    if term not in TERMS and not reader.failed("term"):
        errors.append(f"term: {reader.text('term')!r} is not one of {TERMS} months")

    installment = reader.money("installment")
    if installment <= 0 and not reader.failed("installment"):
        errors.append(f"installment: {reader.text('installment')!r} is not positive")
    paid_total = reader.money("paid_total")
    paid_late_fees = reader.money("paid_late_fees")
    amounts_read = not (reader.failed("paid_total") or reader.failed("paid_late_fees"))
    if amounts_read and not 0 <= paid_late_fees <= paid_total:
        errors.append(
            f"paid_late_fees: {paid_late_fees} is not between 0 and paid_total"
            f" ({paid_total})"
        )

    status = reader.text("loan_status")
    if status not in REPORTED_LATENESS:
        known = ", ".join(REPORTED_LATENESS)
        errors.append(f"loan_status: {status!r} is not one of {known}")

    # A joint application is repaid by two borrowers, jointly liable: their
    # combined income and ratio measure the capacity to pay (and 23 joint
    # rows have no income for the first borrower alone).
    joint = reader.text("application_type") == "joint"
    income_column = "annual_income_joint" if joint else "annual_income"
    ratio_column = "debt_to_income_joint" if joint else "debt_to_income"
    annual_income = reader.money(income_column)
    if annual_income < 0:
        errors.append(f"{income_column}: {annual_income} is negative")

    loan = Loan(
        id=loan_id,
        issue_month=issue_month,
        term=term,
        installment=installment,
        paid_total=paid_total,
        paid_late_fees=paid_late_fees,
        status=status,
        joint=joint,
        annual_income=annual_income,
        debt_to_income=reader.decimal(ratio_column),
        delinquencies_2y=reader.whole("delinq_2y"),
        never_delinquent_pct=reader.decimal("account_never_delinq_percent"),
        state=reader.text("state"),
        loan_grade=reader.text("grade"),
        balance=reader.money("balance"),
    )
    if errors:
        raise LoanRowError("; ".join(errors))
    return loan


# The repayment schedule at the snapshot


def instalments_paid(loan: Loan) -> int:
    """Whole instalments the money paid covers, before any cap.

    Rounded to the nearest instalment, not down: for a borrower who paid
    every instalment due, `paid_total` is a few dollars short of
    n x installment (the ratio sits at 4.97, 3.97 and 2.97 for most loans
    issued in January, February and March), so rounding down would count
    one instalment too few and contradict the data set's medians.
    """
    ratio = (loan.paid_total - loan.paid_late_fees) / loan.installment
    return int(ratio.quantize(Decimal(1), ROUND_HALF_UP))


def late_fee_count(loan: Loan) -> int:
    """How many late fees `paid_late_fees` pays for (0 when none)."""
    if loan.paid_late_fees <= 0:
        return 0
    fee = max(loan.installment * LATE_FEE_SHARE, LATE_FEE_MINIMUM).quantize(CENT)
    count = int((loan.paid_late_fees / fee).quantize(Decimal(1), ROUND_HALF_UP))
    return max(count, 1)  # a partial fee still says a payment was late


def build_schedule(loan: Loan, snapshot: dt.date = SNAPSHOT) -> Schedule:
    """Which instalments are paid, open or written off at `snapshot`.

    - Fully Paid: the instalments due so far, paid; nothing open.
    - Charged Off: the unpaid instalments due are written off; nothing new.
    - Current: paid instalments and the next one. When fewer are paid than
      the fixed schedule has due (16% of Current loans), the schedule starts
      that many months later: the lender says nothing is late, so the real
      due day of such a loan lies after the snapshot's day of the month.
    - In Grace Period, Late (...): paid instalments, the unpaid ones due
      (overdue, open) and the next one. How late that makes the loan is
      derived, not forced to the bucket; `lateness_agrees` compares.
    """
    first_due = add_months(loan.issue_month.replace(day=DUE_DAY), 1)
    due = _due_count(first_due, loan.term, snapshot)
    paid = instalments_paid(loan)

    shifted = 0
    if loan.status == "Current" and paid < due:
        shifted = due - paid
        first_due = add_months(first_due, shifted)
        due = paid
    paid = min(paid, due)

    return Schedule(
        first_due=first_due,
        due=due,
        paid=paid,
        late_paid=_late_paid(loan, first_due, paid, snapshot),
        open_status="written_off" if loan.status == "Charged Off" else "open",
        upcoming=loan.status not in ("Fully Paid", "Charged Off") and due < loan.term,
        shifted_months=shifted,
    )


def _due_count(first_due: dt.date, term: int, snapshot: dt.date) -> int:
    count = 0
    while count < term and add_months(first_due, count) <= snapshot:
        count += 1
    return count


def _late_paid(
    loan: Loan, first_due: dt.date, paid: int, snapshot: dt.date
) -> frozenset[int]:
    """The most recent paid instalments whose late payment fits before the
    snapshot, one per late fee paid."""
    fees = late_fee_count(loan)
    late_window = dt.timedelta(days=LATE_FEE_AFTER_DAYS)
    eligible = [
        number
        for number in range(paid, 0, -1)
        if add_months(first_due, number - 1) + late_window <= snapshot
    ]
    return frozenset(eligible[:fees])


def derived_days_late(loan: Loan, snapshot: dt.date = SNAPSHOT) -> int:
    """Days the oldest unpaid instalment due is past due at `snapshot` (0: none).

    Counted from the nominal due date; the engine counts from the date the
    ruleset's calendar rolls it to.
    """
    schedule = build_schedule(loan, snapshot)
    if schedule.paid >= schedule.due:
        return 0
    return (snapshot - schedule.due_date(schedule.paid + 1)).days


def lateness_agrees(loan: Loan, snapshot: dt.date = SNAPSHOT) -> bool | None:
    """Whether the derived lateness falls in the bucket `loan_status` reports.

    None for Fully Paid and Charged Off, which report no bucket.
    """
    bucket = REPORTED_LATENESS[loan.status]
    if bucket is None:
        return None
    low, high = bucket
    return low <= derived_days_late(loan, snapshot) <= high


# Records


def _percent(loan_id: str, purpose: str) -> int:
    """A number 0..99 fixed by the loan id: the same on every machine and run.

    Each purpose gets its own number, so having an e-mail address says
    nothing about having given SMS consent.
    """
    digest = hashlib.sha256(f"{purpose}:{loan_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def customer_record(loan: Loan) -> Record:
    """Every customer field the mapping provides (`PROVIDED["customer"]`).

    `loan_status`, `reported_late` and `late_fees_paid` are what the lender
    reported: an analyst can compare them with the segments a policy finds.
    """
    first_name = FIRST_NAMES[_percent(loan.id, "name") % len(FIRST_NAMES)]
    domain = "example.com" if _percent(loan.id, "domain") < 50 else "example.org"
    has_email = _percent(loan.id, "email") < EMAIL_SHARE
    has_mobile = _percent(loan.id, "mobile") < MOBILE_SHARE
    fictional_line = 100 + _percent(loan.id, "line")  # 0100..0199

    return {
        "id": loan.id,
        "first_name": first_name,
        "email": f"{first_name.lower()}.{loan.id}@{domain}" if has_email else None,
        "mobile": f"{MOBILE_PREFIX}{fictional_line:04d}" if has_mobile else None,
        "sms_consent": _percent(loan.id, "sms_consent") < SMS_CONSENT_SHARE,
        "call_consent": _percent(loan.id, "call_consent") < CALL_CONSENT_SHARE,
        # The file says nothing about hardship plans; none is invented.
        "hardship_plan": False,
        "monthly_income": (loan.annual_income / 12).quantize(CENT, ROUND_HALF_UP),
        "delinquencies_2y": loan.delinquencies_2y,
        "debt_to_income": loan.debt_to_income,
        "never_delinquent_pct": loan.never_delinquent_pct,
        "loan_status": loan.status,
        "reported_late": loan.status in LATE_STATUSES,
        "late_fees_paid": loan.paid_late_fees,
        "state": loan.state,
        "loan_grade": loan.loan_grade,
        "balance": loan.balance,
    }


def loan_records(loan: Loan, snapshot: dt.date = SNAPSHOT) -> CustomerRecords:
    """The customer, the instalments and the payments of one loan.

    Every field the mapping provides is filled; `LendingClubSource` keeps
    the ones a ruleset declares.
    """
    schedule = build_schedule(loan, snapshot)
    records = CustomerRecords(customer=customer_record(loan))
    late_window = dt.timedelta(days=LATE_FEE_AFTER_DAYS)

    last = schedule.due + 1 if schedule.upcoming else schedule.due
    for number in range(1, last + 1):
        invoice_id = f"{loan.id}-{number:02d}"
        due_date = schedule.due_date(number)
        paid_on: dt.date | None = None
        if number <= schedule.paid:
            status = "paid"
            late = number in schedule.late_paid
            paid_on = due_date + late_window if late else due_date
        elif number <= schedule.due:
            status = schedule.open_status
        else:
            status = "open"

        records.invoices.append(
            {
                "id": invoice_id,
                "customer_id": loan.id,
                "amount": loan.installment,
                "due_date": due_date,
                "status": status,
                "settled_on": paid_on,
                "instalment_number": number,
                "pay_url": PAY_URL.format(invoice_id=invoice_id),
            }
        )
        if paid_on is not None:
            records.payments.append(
                {
                    "invoice_id": invoice_id,
                    "customer_id": loan.id,
                    "amount": loan.installment,
                    "paid_on": paid_on,
                }
            )
    return records


# What the mapping can fill, per record kind, with the type of its values.
PROVIDED: dict[str, dict[str, Type]] = {
    "customer": {
        "id": STRING,
        "first_name": STRING,
        "email": STRING.as_nullable(),
        "mobile": STRING.as_nullable(),
        "sms_consent": BOOL,
        "call_consent": BOOL,
        "hardship_plan": BOOL,
        "monthly_income": MONEY,
        "delinquencies_2y": INT,
        "debt_to_income": DECIMAL.as_nullable(),
        "never_delinquent_pct": DECIMAL.as_nullable(),
        "loan_status": STRING,
        "reported_late": BOOL,
        "late_fees_paid": MONEY,
        "state": STRING,
        "loan_grade": STRING,
        "balance": MONEY,
    },
    "invoice": {
        "id": STRING,
        "customer_id": STRING,
        "amount": MONEY,
        "due_date": DATE,
        "status": STRING,
        "settled_on": DATE.as_nullable(),
        "instalment_number": INT,
        "pay_url": STRING,
    },
    "payment": {
        "invoice_id": STRING,
        "customer_id": STRING,
        "amount": MONEY,
        "paid_on": DATE,
    },
}

# The columns the mapping reads; a file without one of them is not this data.
COLUMNS = (
    "rownames",
    "state",
    "annual_income",
    "debt_to_income",
    "annual_income_joint",
    "debt_to_income_joint",
    "delinq_2y",
    "account_never_delinq_percent",
    "application_type",
    "term",
    "installment",
    "grade",
    "issue_month",
    "loan_status",
    "balance",
    "paid_total",
    "paid_late_fees",
)

# Changes whenever the mapping's conventions change, so that the plan
# header's input digest changes with them.
MAPPING_VERSION = f"lendingclub-loans-v1:{SNAPSHOT}:{DUE_DAY}"


class LendingClubSource:
    """A `RecordSource` over the Lending Club loans file.

    The file has one row per loan and per borrower, so customers stream by
    construction: one row is read, mapped and yielded at a time. A row that
    cannot be mapped is reported in `problems` with the file name and line;
    `notes` sums up, after a pass, how the rows read against the lender's
    own status.
    """

    def __init__(
        self, config: SourceConfig, inputs: InputSchema, *, on_error: str = "fail"
    ) -> None:
        self._mapped = MappedFields(
            inputs, PROVIDED, mapping="Lending Club", origin=config.origin
        )
        self.on_error = on_error
        self.problems: list[RecordProblem] = []
        self._tally: _Tally | None = None
        self._limit = config.limit
        self._file = MappedFile(
            config,
            COLUMNS,
            what="the Lending Club loans file",
            mapping_version=MAPPING_VERSION,
        )
        self._name = self._file.name

    @property
    def notes(self) -> list[str]:
        """How the rows read so far (all of them once `customers()` is
        exhausted) compare with the lender's own status."""
        return [] if self._tally is None else self._tally.notes()

    def digest(self) -> str:
        return self._file.digest

    def _rows(self) -> Iterator[tuple[int, dict[str, str]] | RecordProblem]:
        """(line, cells by column) per row, or the problem with the row."""
        for start, cells in self._file.rows():
            problem = self._file.width_problem(start, cells, cells[0] or None)
            if problem is not None:
                yield problem
                continue
            yield start, dict(zip(self._file.header, cells, strict=True))

    def customers(self) -> Iterator[CustomerRecords]:
        self.problems = []
        tally = self._tally = _Tally()
        seen: dict[str, int] = {}
        yielded = 0
        for item in self._rows():
            if self._limit is not None and yielded >= self._limit:
                break
            if isinstance(item, RecordProblem):
                self.problems.append(item)
                continue
            line, row = item
            records = self._map(line, row, seen, tally)
            if records is not None:
                yielded += 1
                yield records
        for note in self.notes:
            logger.info("%s: %s", self._name, note)

    def _map(
        self, line: int, row: dict[str, str], seen: dict[str, int], tally: _Tally
    ) -> CustomerRecords | None:
        """The declared fields of one row's records, or None (reported)."""
        loan_id = row.get("rownames", "").strip() or None
        try:
            loan = read_loan(row)
        except LoanRowError as error:
            self._report(line, loan_id, str(error))
            return None
        if loan.id in seen:
            self._report(
                line, loan.id, f"duplicate rownames (first at line {seen[loan.id]})"
            )
            return None
        seen[loan.id] = line

        records = loan_records(loan)
        problem = self._mapped.too_long(records)
        if problem is not None:
            self._report(line, loan.id, problem)
            return None
        tally.add(loan)
        return self._mapped.select(records)

    def _report(self, line: int, loan_id: str | None, message: str) -> None:
        self.problems.append(RecordProblem(self._name, line, loan_id, message))


class _Tally:
    """How the loans of one pass read against the lender's status."""

    def __init__(self) -> None:
        self.loans = 0
        self.shifted = 0
        self.bucketed = 0
        self.agreeing = 0
        self.late_fees = 0
        self.fees_placed = 0

    def add(self, loan: Loan) -> None:
        schedule = build_schedule(loan)
        self.loans += 1
        self.shifted += schedule.shifted_months > 0
        if loan.status in LATE_STATUSES:
            self.bucketed += 1
            self.agreeing += bool(lateness_agrees(loan))
        self.late_fees += late_fee_count(loan)
        self.fees_placed += len(schedule.late_paid)

    def notes(self) -> list[str]:
        notes = [f"{self.loans} loans read as of {SNAPSHOT.isoformat()}"]
        if self.shifted:
            notes.append(
                f"{self.shifted} Current loans were behind the schedule of the"
                f" {DUE_DAY}th: their schedule starts later (see the mapping's"
                " README)"
            )
        if self.bucketed:
            notes.append(
                f"derived lateness agrees with the late bucket of loan_status for"
                f" {self.agreeing} of {self.bucketed} late loans"
            )
        if self.late_fees != self.fees_placed:
            notes.append(
                f"{self.late_fees - self.fees_placed} of {self.late_fees} late fees"
                " paid have no instalment old enough to carry them"
            )
        return notes
