"""The terms of a payment offer for one invoice.

Instalments: n is the policy's `instalments`, lowered so that each one is at
least `min_instalment`; an offer that cannot make two such instalments does
not apply. Without interest the total is the amount due; with a monthly rate
i it is n times the Price-table payment `due * i / (1 - (1 + i) ** -n)`, the
way Brazilian lenders quote fixed instalments. The total is rounded half up
to the currency's digits, each instalment is total / n rounded half up, and
the last one takes the remainder, so the instalments always add up to the
total. The first instalment (`new_due_date`) is due one month after today,
rolled like a due date.

A new date moves the due date `days` ahead (rolled); with interest, the
total grows pro rata by days / 30 (simple interest).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal

from dsl.model import Offer
from engine.calendar import BusinessCalendar, add_months
from engine.formatting import round_money
from engine.scope import Record

ZERO = Decimal(0)


def offer_terms(
    offer: Offer,
    amount_due: Decimal,
    today: dt.date,
    calendar: BusinessCalendar,
    digits: int,
) -> tuple[Record | None, str]:
    """The terms `offer.*` shows in a template, or None and why the offer
    does not apply to this amount."""
    if offer.kind == "new_date":
        return new_date_terms(offer, amount_due, today, calendar, digits), ""
    return instalment_terms(offer, amount_due, today, calendar, digits)


def instalment_terms(
    offer: Offer,
    amount_due: Decimal,
    today: dt.date,
    calendar: BusinessCalendar,
    digits: int,
) -> tuple[Record | None, str]:
    wanted = offer.instalments or 1
    count = wanted
    if offer.min_instalment:
        fitting = amount_due / offer.min_instalment
        count = min(count, int(fitting.to_integral_value(ROUND_FLOOR)))
    if count < min(2, wanted):
        return None, (
            f"offer {offer.name} does not apply: {amount_due} is less than two "
            f"instalments of {offer.min_instalment}"
        )

    rate = offer.interest_monthly or ZERO
    exact = amount_due
    if rate:
        exact = amount_due * rate * count / (1 - (1 + rate) ** -count)
    total = round_money(exact, digits)
    instalment = round_money(total / count, digits)
    return (
        {
            "instalments": count,
            "instalment_amount": instalment,
            "last_instalment": total - instalment * (count - 1),
            "total": total,
            "new_due_date": calendar.roll(add_months(today, 1)),
            "interest_monthly": rate,
        },
        "",
    )


def new_date_terms(
    offer: Offer,
    amount_due: Decimal,
    today: dt.date,
    calendar: BusinessCalendar,
    digits: int,
) -> Record:
    days = offer.new_date_days or 0
    rate = offer.interest_monthly or ZERO
    total = round_money(amount_due * (1 + rate * Decimal(days) / 30), digits)
    return {
        "instalments": 1,
        "instalment_amount": total,
        "last_instalment": total,
        "total": total,
        "new_due_date": calendar.roll(today + dt.timedelta(days=days)),
        "interest_monthly": rate,
    }
