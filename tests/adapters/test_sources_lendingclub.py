"""The Lending Club mapping, on rows of the real file.

Expected instalments, due dates and payments below were worked out by hand
from the rows' columns (issue month, term, installment, paid_total,
paid_late_fees, loan_status) with the conventions of
examples/lendingclub/README.md: due on the 15th, snapshot 2018-06-18.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.sources import lendingclub as lc
from adapters.sources import open_source
from adapters.sources.config import SourceConfig, SourceConfigError
from dsl.loader import load_ruleset
from dsl.model import InputSchema
from dsl.types import INT
from engine.records import CustomerRecords

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "lendingclub" / "lendingclub_loans_2018q1.csv"
RULESET = ROOT / "rulesets" / "us_loans"

# The first rows of the file, and rows with each special status or column.
FIRST_ROWS = ("1", "2", "3", "4", "5")
SPECIAL_ROWS = {
    "19": "Fully Paid; paid_total with a float tail",
    "38": "In Grace Period; joint application",
    "155": "joint application, no income for the first borrower",
    "191": "Current, two late fees paid",
    "225": "Late (31-120 days)",
    "388": "Charged Off",
    "485": "Late (16-30 days), two late fees paid",
}


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, str]]:
    wanted = set(FIRST_ROWS) | set(SPECIAL_ROWS)
    with DATA.open(newline="", encoding="utf-8") as text:
        return {
            r["rownames"]: r for r in csv.DictReader(text) if r["rownames"] in wanted
        }


@pytest.fixture(scope="module")
def inputs() -> InputSchema:
    return load_ruleset(RULESET).inputs


def records_of(rows: dict[str, dict[str, str]], loan_id: str) -> CustomerRecords:
    return lc.loan_records(lc.read_loan(rows[loan_id]))


def invoices(records: CustomerRecords) -> list[tuple[str, dt.date, str, Decimal]]:
    return [
        (i["id"], i["due_date"], i["status"], i["amount"]) for i in records.invoices
    ]


def payments(records: CustomerRecords) -> list[tuple[str, dt.date, Decimal]]:
    return [(p["invoice_id"], p["paid_on"], p["amount"]) for p in records.payments]


def june(day: int) -> dt.date:
    return dt.date(2018, 6, day)


# -- reading a row ---------------------------------------------------------


def test_money_is_read_from_the_text_and_rounded_to_the_cent(rows):
    loan = lc.read_loan(rows["19"])  # paid_total 5202.6426724643

    assert loan.paid_total == Decimal("5202.64")
    assert loan.installment == Decimal("203.51")
    assert loan.balance.as_tuple().exponent == -2


def test_a_joint_application_uses_the_joint_income_and_ratio(rows):
    joint = lc.customer_record(lc.read_loan(rows["5"]))
    no_first_income = lc.customer_record(lc.read_loan(rows["155"]))
    single = lc.customer_record(lc.read_loan(rows["1"]))

    assert joint["monthly_income"] == Decimal("4750.00")  # 57000 / 12
    assert joint["debt_to_income"] == Decimal("37.66")
    assert no_first_income["monthly_income"] == Decimal("13937.50")  # 167250 / 12
    assert no_first_income["debt_to_income"] == Decimal("14.92")
    assert single["monthly_income"] == Decimal("7500.00")  # 90000 / 12
    assert single["debt_to_income"] == Decimal("18.01")


def test_a_bad_row_names_every_bad_column(rows):
    row = dict(rows["1"])
    row.update(term="48", installment="abc", loan_status="Default", issue_month="")

    with pytest.raises(lc.LoanRowError) as caught:
        lc.read_loan(row)

    problems = str(caught.value).split("; ")
    columns = sorted(problem.partition(":")[0] for problem in problems)
    assert columns == ["installment", "issue_month", "loan_status", "term"]
    assert "'abc' is not a number" in str(caught.value)


def test_late_fees_larger_than_the_total_paid_are_a_row_problem(rows):
    row = dict(rows["1"], paid_late_fees="5000.0")

    with pytest.raises(lc.LoanRowError, match="paid_late_fees"):
        lc.read_loan(row)


# -- instalments and payments ----------------------------------------------


def test_a_current_loan_on_schedule_has_its_due_instalments_paid_and_the_next_open(
    rows,
):
    # Mar-2018, 1999.33 / 652.53 = 3.06: three paid, due Apr, May, Jun 15.
    records = records_of(rows, "1")
    amount = Decimal("652.53")

    assert invoices(records) == [
        ("1-01", dt.date(2018, 4, 15), "paid", amount),
        ("1-02", dt.date(2018, 5, 15), "paid", amount),
        ("1-03", june(15), "paid", amount),
        ("1-04", dt.date(2018, 7, 15), "open", amount),
    ]
    assert payments(records) == [
        ("1-01", dt.date(2018, 4, 15), amount),
        ("1-02", dt.date(2018, 5, 15), amount),
        ("1-03", june(15), amount),
    ]


def test_a_current_loan_behind_the_fixed_schedule_starts_a_month_later(rows):
    # Feb-2018: four instalments due by June 18th on the 15th, but
    # 499.12 / 167.54 = 2.98 pays three; the lender says Current.
    records = records_of(rows, "2")
    schedule = lc.build_schedule(lc.read_loan(rows["2"]))

    assert schedule.shifted_months == 1
    assert [(i[0], i[1], i[2]) for i in invoices(records)] == [
        ("2-01", dt.date(2018, 4, 15), "paid"),
        ("2-02", dt.date(2018, 5, 15), "paid"),
        ("2-03", june(15), "paid"),
        ("2-04", dt.date(2018, 7, 15), "open"),
    ]
    assert all(
        i["status"] != "open" or i["due_date"] > lc.SNAPSHOT for i in records.invoices
    )


def test_a_fully_paid_loan_has_nothing_open_and_no_future_schedule(rows):
    # Feb-2018, 36 months, paid 25.6 instalments: the four due are paid.
    records = records_of(rows, "19")

    assert [(i[0], i[1], i[2]) for i in invoices(records)] == [
        ("19-01", dt.date(2018, 3, 15), "paid"),
        ("19-02", dt.date(2018, 4, 15), "paid"),
        ("19-03", dt.date(2018, 5, 15), "paid"),
        ("19-04", june(15), "paid"),
    ]
    assert sum(p["amount"] for p in records.payments) == 4 * Decimal("203.51")


def test_a_loan_in_grace_has_its_june_instalment_open_and_three_days_late(rows):
    # Mar-2018, 1102.83 / 571.47 = 1.93: two paid of the three due.
    loan = lc.read_loan(rows["38"])
    records = lc.loan_records(loan)

    assert [(i[0], i[1], i[2]) for i in invoices(records)] == [
        ("38-01", dt.date(2018, 4, 15), "paid"),
        ("38-02", dt.date(2018, 5, 15), "paid"),
        ("38-03", june(15), "open"),
        ("38-04", dt.date(2018, 7, 15), "open"),
    ]
    assert [p[0] for p in payments(records)] == ["38-01", "38-02"]
    assert lc.derived_days_late(loan) == 3
    assert lc.lateness_agrees(loan) is True
    assert records.customer["reported_late"] is True


def test_a_loan_31_to_120_days_late_has_two_instalments_overdue(rows):
    # Jan-2018, 2311.83 / 778.38 = 2.97: three paid of the five due.
    loan = lc.read_loan(rows["225"])
    records = lc.loan_records(loan)

    assert [(i[0], i[1], i[2]) for i in invoices(records)] == [
        ("225-01", dt.date(2018, 2, 15), "paid"),
        ("225-02", dt.date(2018, 3, 15), "paid"),
        ("225-03", dt.date(2018, 4, 15), "paid"),
        ("225-04", dt.date(2018, 5, 15), "open"),
        ("225-05", june(15), "open"),
        ("225-06", dt.date(2018, 7, 15), "open"),
    ]
    assert lc.derived_days_late(loan) == 34  # May 15th to June 18th
    assert lc.lateness_agrees(loan) is True


def test_a_charged_off_loan_has_its_unpaid_instalments_written_off(rows):
    # Jan-2018, 528.36 / 267.74 = 1.97: two paid of the five due.
    loan = lc.read_loan(rows["388"])
    records = lc.loan_records(loan)

    assert [(i[0], i[2]) for i in invoices(records)] == [
        ("388-01", "paid"),
        ("388-02", "paid"),
        ("388-03", "written_off"),
        ("388-04", "written_off"),
        ("388-05", "written_off"),
    ]
    assert records.invoices[-1]["due_date"] == june(15)
    assert lc.lateness_agrees(loan) is None
    assert records.customer["reported_late"] is False


def test_late_fees_mark_the_latest_instalments_that_could_be_paid_late(rows):
    # Current, Jan-2018, behind by one (first due March 15th). Fees 45.12 =
    # 2 x max(5% of 451.29, 15.00): instalments 2 and 3 were paid 16 days
    # late; instalment 4 (June 15th) could not be, before June 18th.
    loan = lc.read_loan(rows["191"])
    records = lc.loan_records(loan)
    amount = Decimal("451.29")

    assert lc.late_fee_count(loan) == 2
    assert payments(records) == [
        ("191-01", dt.date(2018, 3, 15), amount),
        ("191-02", dt.date(2018, 5, 1), amount),
        ("191-03", dt.date(2018, 5, 31), amount),
        ("191-04", june(15), amount),
    ]
    settled = {i["id"]: i["settled_on"] for i in records.invoices}
    assert settled["191-02"] == dt.date(2018, 5, 1)
    assert settled["191-05"] is None
    assert records.customer["late_fees_paid"] == Decimal("45.12")


def test_a_late_bucket_the_payments_contradict_is_reported_not_forced(rows):
    # Late (16-30 days), but (1040.09 - 30.00) / 260.15 = 3.88 rounds to the
    # four instalments due: nothing derived as late.
    loan = lc.read_loan(rows["485"])
    records = lc.loan_records(loan)

    assert lc.derived_days_late(loan) == 0
    assert lc.lateness_agrees(loan) is False
    assert [i["status"] for i in records.invoices] == ["paid"] * 4 + ["open"]
    assert [p[1] for p in payments(records)] == [
        dt.date(2018, 3, 15),
        dt.date(2018, 5, 1),  # April 15th + 16: one of the two fees
        dt.date(2018, 5, 31),  # May 15th + 16
        june(15),
    ]


def test_no_payment_is_dated_after_the_snapshot(rows):
    for loan_id in rows:
        for payment in records_of(rows, loan_id).payments:
            assert payment["paid_on"] <= lc.SNAPSHOT, (loan_id, payment)


@pytest.mark.parametrize(
    ("month", "term", "expected"),
    [(1, 36, 5), (2, 36, 4), (3, 60, 3)],
    ids=["jan", "feb", "mar"],
)
def test_instalments_due_by_the_snapshot_follow_the_issue_month(
    rows, month, term, expected
):
    row = dict(
        rows["1"], issue_month=f"{dt.date(2018, month, 1):%b}-2018", term=str(term)
    )
    row["paid_total"] = str(Decimal(row["installment"]) * expected)

    schedule = lc.build_schedule(lc.read_loan(row))

    assert (schedule.due, schedule.paid, schedule.shifted_months) == (
        expected,
        expected,
        0,
    )
    assert schedule.due_date(expected) == june(15)


def test_add_months_crosses_the_year():
    assert lc.add_months(dt.date(2018, 11, 15), 3) == dt.date(2019, 2, 15)
    assert lc.add_months(dt.date(2018, 3, 15), -3) == dt.date(2017, 12, 15)


# -- fake contact details --------------------------------------------------


def test_contact_details_are_fake_valid_and_fixed_by_the_id(rows):
    for loan_id in rows:
        customer = lc.customer_record(lc.read_loan(rows[loan_id]))
        again = lc.customer_record(lc.read_loan(rows[loan_id]))

        assert customer == again
        assert customer["first_name"] in lc.FIRST_NAMES
        if customer["email"] is not None:
            local, _, domain = customer["email"].partition("@")
            assert domain in ("example.com", "example.org")
            assert local == f"{customer['first_name'].lower()}.{loan_id}"
        if customer["mobile"] is not None:
            number = phonenumbers.parse(customer["mobile"])
            assert phonenumbers.is_valid_number(number)
            assert customer["mobile"][:-2].endswith("55501")  # 555-0100..0199


def test_contact_shares_over_the_whole_file_match_the_stated_percentages():
    with DATA.open(newline="", encoding="utf-8") as text:
        customers = [lc.customer_record(lc.read_loan(r)) for r in csv.DictReader(text)]
    count = len(customers)

    def share(predicate: Callable[[dict[str, object]], bool]) -> float:
        return sum(1 for c in customers if predicate(c)) / count

    assert share(lambda c: c["email"] is not None) == pytest.approx(
        lc.EMAIL_SHARE / 100, abs=0.02
    )
    assert share(lambda c: c["mobile"] is not None) == pytest.approx(
        lc.MOBILE_SHARE / 100, abs=0.02
    )
    assert share(lambda c: c["sms_consent"]) == pytest.approx(
        lc.SMS_CONSENT_SHARE / 100, abs=0.02
    )
    assert share(lambda c: c["call_consent"]) == pytest.approx(
        lc.CALL_CONSENT_SHARE / 100, abs=0.02
    )
    assert len(Counter(c["first_name"] for c in customers)) == len(lc.FIRST_NAMES)
    assert not any(c["hardship_plan"] for c in customers)


# -- the source ------------------------------------------------------------


def config_for(path: Path, limit: int | None = None) -> SourceConfig:
    return SourceConfig(
        kind="lendingclub_loans",
        origin=str(path.parent / "source.yaml"),
        base_dir=path.parent,
        file=path,
        limit=limit,
    )


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with DATA.open(newline="", encoding="utf-8") as text:
        header = next(csv.reader(text))
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_source_keeps_the_declared_fields_and_reports_bad_rows(
    tmp_path, rows, inputs
):
    bad = dict(rows["3"], installment="-71.40")
    path = write_rows(tmp_path / "loans.csv", [rows["1"], bad, rows["2"], rows["1"]])

    source = lc.LendingClubSource(config_for(path), inputs)
    customers = list(source.customers())

    assert [c.customer["id"] for c in customers] == ["1", "2"]
    assert set(customers[0].customer) == set(inputs.customer)
    assert set(customers[0].invoices[0]) == set(inputs.invoice)
    assert set(customers[0].payments[0]) == set(inputs.payment)
    assert [(p.source, p.row, p.record_id) for p in source.problems] == [
        ("loans.csv", 3, "3"),
        ("loans.csv", 5, "1"),
    ]
    assert "installment" in source.problems[0].message
    assert "duplicate rownames (first at line 2)" in source.problems[1].message


def test_a_row_with_missing_cells_is_reported_with_its_line(tmp_path, rows, inputs):
    path = write_rows(tmp_path / "loans.csv", [rows["1"]])
    with path.open("a", encoding="utf-8") as out:
        out.write("99,short row\n")

    source = lc.LendingClubSource(config_for(path), inputs)
    customers = list(source.customers())

    assert len(customers) == 1
    assert [(p.row, p.record_id) for p in source.problems] == [(3, "99")]
    assert "2 cells" in source.problems[0].message


def test_a_value_longer_than_declared_is_a_row_problem(tmp_path, rows, inputs):
    first_name = inputs.customer["first_name"]
    tight = InputSchema(
        customer={
            **inputs.customer,
            "first_name": dataclasses.replace(first_name, max_length=3),
        },
        invoice=inputs.invoice,
        payment=inputs.payment,
    )
    path = write_rows(tmp_path / "loans.csv", [rows[i] for i in FIRST_ROWS])

    source = lc.LendingClubSource(config_for(path), tight)
    kept = [c.customer["first_name"] for c in source.customers()]

    assert all(len(name) <= 3 for name in kept)
    assert len(kept) + len(source.problems) == len(FIRST_ROWS)
    assert all("max_length 3" in p.message for p in source.problems)


def test_a_field_the_mapping_cannot_fill_is_a_configuration_error(tmp_path, inputs):
    extra = dict(inputs.customer)
    extra["monthly_incme"] = inputs.customer["monthly_income"]
    schema = InputSchema(customer=extra, invoice=inputs.invoice, payment=inputs.payment)

    with pytest.raises(SourceConfigError, match="did you mean 'monthly_income'"):
        lc.LendingClubSource(config_for(DATA), schema)


def test_a_field_declared_with_another_type_is_a_configuration_error(inputs):
    customer = dict(inputs.customer)
    customer["monthly_income"] = dataclasses.replace(
        customer["monthly_income"], type=INT
    )
    schema = InputSchema(
        customer=customer, invoice=inputs.invoice, payment=inputs.payment
    )

    with pytest.raises(SourceConfigError, match="monthly_income is declared int"):
        lc.LendingClubSource(config_for(DATA), schema)


def test_another_file_is_refused_by_its_header(tmp_path, inputs):
    path = tmp_path / "loans.csv"
    path.write_text("rownames,state,annual_incom\n1,NJ,90000\n", encoding="utf-8")

    with pytest.raises(SourceConfigError, match="not the Lending Club loans file"):
        lc.LendingClubSource(config_for(path), inputs)


def test_the_digest_follows_the_bytes_of_the_file(tmp_path, inputs):
    copy = tmp_path / "loans.csv"
    shutil.copyfile(DATA, copy)
    original = lc.LendingClubSource(config_for(DATA), inputs).digest()
    same = lc.LendingClubSource(config_for(copy), inputs).digest()

    with copy.open("a", encoding="utf-8") as out:
        out.write("\n")
    changed = lc.LendingClubSource(config_for(copy), inputs).digest()

    assert original == same
    assert changed != original


def test_limit_reads_only_the_first_loans(inputs):
    source = lc.LendingClubSource(config_for(DATA, limit=3), inputs)

    assert [c.customer["id"] for c in source.customers()] == ["1", "2", "3"]


def test_the_whole_file_maps_without_problems_and_reads_like_the_lender(inputs):
    source = lc.LendingClubSource(config_for(DATA), inputs)
    statuses: Counter[str] = Counter()
    overdue = 0
    count = 0
    for records in source.customers():
        count += 1
        statuses.update(i["status"] for i in records.invoices)
        overdue += any(
            i["status"] == "open" and i["due_date"] <= lc.SNAPSHOT
            for i in records.invoices
        )

    assert count == 10_000
    assert source.problems == []
    # Only loans the lender reports as late have an instalment overdue.
    with DATA.open(newline="", encoding="utf-8") as text:
        reported = Counter(r["loan_status"] for r in csv.DictReader(text))
    late_reported = sum(reported[s] for s in lc.LATE_STATUSES)
    assert 0 < overdue <= late_reported
    assert statuses["written_off"] > 0
    assert any("agrees with the late bucket" in note for note in source.notes)


def test_open_source_reads_the_example_folder(inputs):
    source = open_source(ROOT / "examples" / "lendingclub", inputs)

    assert isinstance(source, lc.LendingClubSource)
    first = next(iter(source.customers()))
    assert first.customer["id"] == "1"


def test_open_source_refuses_an_unknown_key_for_this_kind(tmp_path, inputs):
    (tmp_path / "source.yaml").write_text(
        f"kind: lendingclub_loans\nfile: {DATA}\nsnapshot: '2018-07-01'\n",
        encoding="utf-8",
    )

    with pytest.raises(SourceConfigError, match="unknown key 'snapshot'"):
        open_source(tmp_path, inputs)


# -- the example policy on the whole file ----------------------------------


def test_the_us_loans_policy_validates_cleanly():
    result = CliRunner().invoke(main, ["validate", str(RULESET)])

    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


@pytest.fixture(scope="module")
def snapshot_plan(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    output = tmp_path_factory.mktemp("plan") / "plan.jsonl"
    arguments = ["plan", str(RULESET), "--data", str(DATA.parent)]
    arguments += ["--as-of", lc.SNAPSHOT.isoformat(), "--output", str(output)]

    result = CliRunner().invoke(main, arguments)

    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in output.read_text("utf-8").splitlines()]


def test_the_snapshot_plan_reminds_only_borrowers_the_lender_calls_late(snapshot_plan):
    with DATA.open(newline="", encoding="utf-8") as text:
        status = {r["rownames"]: r["loan_status"] for r in csv.DictReader(text)}
    header, actions = snapshot_plan[0], snapshot_plan[1:]
    sent = [a for a in actions if a["kind"] == "message" and a["decision"] == "send"]

    assert header["as_of"].startswith(lc.SNAPSHOT.isoformat())
    assert sent
    assert {status[str(a["customer"])] for a in sent} <= lc.LATE_STATUSES
    assert all(a["due_date"] <= lc.SNAPSHOT.isoformat() for a in sent)
    assert all(a["address"] for a in sent)


def test_the_snapshot_plan_offers_new_dates_to_slipped_borrowers_only(snapshot_plan):
    actions = snapshot_plan[1:]
    offers = [a for a in actions if a["kind"] == "offer"]
    suppressed = [a for a in actions if a["decision"] == "suppressed"]

    assert offers
    assert {a["segment"] for a in offers} == {"slipped"}
    for offer in offers:
        due = dt.date.fromisoformat(str(offer["due_date"]))
        new_date = dt.date.fromisoformat(offer["details"]["new_due_date"])
        assert new_date >= due + dt.timedelta(days=10)
    # Only instalments written off when a loan was charged off are held back.
    assert suppressed
    assert {a["why"]["suppressed_by"] for a in suppressed} == {"closed_loan"}
