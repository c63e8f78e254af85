"""Invoice state as of today and the payment-history aggregates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from engine.calendar import BusinessCalendar
from engine.history import CustomerHistory, InvoiceState, prepare_invoices
from engine.records import COMPUTED_INVOICE_FIELDS
from engine.scope import Duration
from tests.engine import builders

D = dt.date.fromisoformat
SIX_MONTHS = Duration(6, "months")
YEAR = Duration(12, "months")


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return BusinessCalendar(builders.calendar("BR"), language="pt_BR")


def states(
    calendar: BusinessCalendar,
    today: str,
    invoices: list[dict[str, Any]],
    payments: Sequence[dict[str, Any]] = (),
) -> dict[str, InvoiceState]:
    records = builders.records({"id": "c1"}, invoices, payments)
    return {s.id: s for s in prepare_invoices(records, calendar, D(today))}


def history(
    calendar: BusinessCalendar,
    today: str,
    invoices: list[dict[str, Any]],
    payments: Sequence[dict[str, Any]] = (),
) -> CustomerHistory:
    records = builders.records({"id": "c1"}, invoices, payments)
    prepared = prepare_invoices(records, calendar, D(today))
    return CustomerHistory(prepared, records.payments, D(today), calendar)


def test_partly_paid(calendar: BusinessCalendar) -> None:
    [state] = states(
        calendar,
        "2024-11-18",
        [builders.invoice("i1", "2024-11-21", "1000.00")],
        [
            builders.payment("i1", "2024-11-10", "250.00"),
            builders.payment("i1", "2024-11-12", "150.00"),
        ],
    ).values()
    assert state.amount_paid == Decimal("400.00")
    assert state.amount_due == Decimal("600.00")
    assert state.is_open and state.settled is None and state.days_late == 0
    assert state.record["amount_due"] == Decimal("600.00")
    assert set(COMPUTED_INVOICE_FIELDS) <= set(state.record)
    assert state.record["days_past_due"] == -3


def test_computed_fields_do_not_touch_the_input_record(
    calendar: BusinessCalendar,
) -> None:
    invoice = builders.invoice("i1", "2024-11-21", "10.00")
    records = builders.records({"id": "c1"}, [invoice])
    prepare_invoices(records, calendar, D("2024-11-18"))
    assert "amount_due" not in records.invoices[0]


def test_overpaid_invoice_owes_nothing(calendar: BusinessCalendar) -> None:
    [state] = states(
        calendar,
        "2024-11-18",
        [builders.invoice("i1", "2024-11-21", "100.00")],
        [builders.payment("i1", "2024-11-10", "130.00")],
    ).values()
    assert state.amount_due == Decimal("0") and not state.is_open
    assert state.settled == D("2024-11-10")


def test_the_settled_date_is_when_payments_reach_the_amount(
    calendar: BusinessCalendar,
) -> None:
    # Due Friday 15 Nov 2024 (a holiday): effective Monday the 18th.
    [state] = states(
        calendar,
        "2024-12-31",
        [builders.invoice("i1", "2024-11-15", "100.00")],
        [
            builders.payment("i1", "2024-11-20", "60.00"),
            builders.payment("i1", "2024-11-25", "40.00"),
        ],
    ).values()
    assert state.due_effective == D("2024-11-18")
    assert state.settled == D("2024-11-25")
    assert state.days_late == 7


def test_a_declared_settled_on_wins_when_it_is_not_after_today(
    calendar: BusinessCalendar,
) -> None:
    invoice = builders.invoice(
        "i1", "2024-10-10", "100.00", status="closed", settled_on="2024-11-09"
    )
    [known] = states(calendar, "2024-11-30", [invoice]).values()
    assert known.settled == D("2024-11-09") and known.days_late == 30
    assert not known.is_open
    # Before that day, the engine does not know it yet: still unsettled and
    # late by as many days as have passed.
    [unknown] = states(calendar, "2024-10-31", [invoice]).values()
    assert unknown.settled is None and unknown.days_late == 21


def test_a_settled_status_without_a_date_is_not_late(
    calendar: BusinessCalendar,
) -> None:
    [state] = states(
        calendar,
        "2024-11-30",
        [builders.invoice("i1", "2024-10-10", "100.00", status="Paid ")],
    ).values()
    assert state.status == "paid"
    assert state.settled == D("2024-10-10") and state.days_late == 0
    assert not state.is_open


def test_an_unpaid_invoice_is_late_until_today(calendar: BusinessCalendar) -> None:
    [state] = states(
        calendar, "2024-10-31", [builders.invoice("i1", "2024-10-10", "100.00")]
    ).values()
    assert state.settled is None and state.days_late == 21 and state.is_open


def test_a_credit_note_is_never_late_nor_open(calendar: BusinessCalendar) -> None:
    [state] = states(
        calendar, "2024-10-31", [builders.invoice("i1", "2024-10-10", "-50.00")]
    ).values()
    assert state.days_late == 0 and not state.is_open


def test_aggregates_over_windows(calendar: BusinessCalendar) -> None:
    today = "2024-08-31"
    invoices = [
        # Due before the 6-month window's start (Feb 29), inside 12 months.
        builders.invoice("a", "2024-02-28", "100.00"),
        # Due Feb 29, 2024: the 6-month window is (Feb 29, Aug 31], so out.
        builders.invoice("b", "2024-02-29", "200.00"),
        builders.invoice("c", "2024-03-01", "300.00"),  # in: a Friday
        builders.invoice("d", "2024-08-30", "400.00"),  # in, unpaid, 1 day late
        builders.invoice("e", "2024-09-10", "999.00"),  # future: in no window
        builders.invoice("x", "2024-07-10", "50.00", status="cancelled"),
    ]
    payments = [
        builders.payment("a", "2024-03-10", "100.00"),  # 11 days late
        builders.payment("b", "2024-02-29", "200.00"),  # on time
        builders.payment("c", "2024-04-15", "300.00"),  # 45 days late
        builders.payment("e", "2024-09-01", "999.00"),  # after today: unseen
    ]
    result = history(calendar, today, invoices, payments)
    assert result.invoice_count(SIX_MONTHS) == 2
    assert result.late_count(SIX_MONTHS) == 2
    assert result.max_days_late(SIX_MONTHS) == 45
    assert result.sum_days_late(SIX_MONTHS) == 46
    assert result.avg_days_late(SIX_MONTHS) == Decimal(23)
    assert result.billed_total(SIX_MONTHS) == Decimal("700.00")
    assert result.max_billed(SIX_MONTHS) == Decimal("400.00")
    assert result.avg_billed(SIX_MONTHS) == Decimal("350.00")
    # Payments dated in (Feb 29, Aug 31]: a's and c's.
    assert result.paid_total(SIX_MONTHS) == Decimal("400.00")

    assert result.invoice_count(YEAR) == 4
    assert result.late_count(YEAR) == 3
    assert result.sum_days_late(YEAR) == 57
    assert result.paid_total(YEAR) == Decimal("600.00")
    assert result.used["late_count(6 months)"] == 2


def test_windows_in_days_weeks_and_business_days(calendar: BusinessCalendar) -> None:
    invoices = [
        builders.invoice("a", "2024-11-14", "10.00"),  # Thursday
        builders.invoice("b", "2024-11-18", "20.00"),  # Monday
    ]
    result = history(calendar, "2024-11-19", invoices)
    assert result.invoice_count(Duration(1, "days")) == 0
    assert result.invoice_count(Duration(1, "weeks")) == 2
    # Two business days back from Tuesday the 19th: Thursday the 14th (the
    # 15th is a holiday), which the window (14th, 19th] leaves out.
    assert result.invoice_count(Duration(2, "business_days")) == 1
    assert result.billed_total(Duration(3, "business_days")) == Decimal("30.00")


def test_empty_history(calendar: BusinessCalendar) -> None:
    result = history(calendar, "2024-11-19", [])
    assert result.invoice_count(YEAR) == 0
    assert result.max_days_late(YEAR) == 0
    assert result.avg_days_late(YEAR) == Decimal(0)
    assert result.avg_billed(YEAR) == Decimal(0)
    assert result.max_billed(YEAR) == Decimal(0)
    assert result.paid_total(YEAR) == Decimal(0)


def test_a_thousand_invoices_stay_fast(calendar: BusinessCalendar) -> None:
    """Suffix sums: no aggregate rescans the list (a quadratic history would
    take seconds here)."""
    invoices = [
        builders.invoice(
            f"i{n}", str(dt.date(2020, 1, 1) + dt.timedelta(days=n)), "1.00"
        )
        for n in range(1000)
    ]
    result = history(calendar, "2022-12-31", invoices)
    windows = [Duration(n, "days") for n in range(1, 1001)]
    counts = [result.invoice_count(w) for w in windows]
    assert counts == sorted(counts)
    assert result.invoice_count(Duration(3, "years")) == 1000
