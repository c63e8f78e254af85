"""What expressions can name: root names, record fields, history aggregates
and functions, with their types and where each one is available.

This is the one place that says what the language offers; the checker
(`dsl.checker`) reads it, and the engine's code generator maps the same names
onto `engine.scope.Scope`.

Diagnostic codes of expressions and templates (stable; tests and CI rely on
them):

| code | meaning |
|------|---------|
| E201 | unexpected token or character; a call of something that is not a function |
| E202 | unexpected end of the expression |
| E203 | bad literal: invalid date, unknown escape, unclosed string, unknown unit |
| E204 | template brace: unclosed `{`, stray `}`, empty `{}` |
| E301 | unknown name or field (with a "did you mean" hint) |
| E302 | operand types do not fit the operator (`invoice.amount > "10"`) |
| E303 | wrong number or types of arguments to a function |
| E304 | unknown function or history aggregate |
| E305 | a value that may be empty where a value is required |
| E306 | a name not available in this place (`invoice` in a segment rule) |
| E307 | the result is not of the type the place expects |
| W301 | an HTML placeholder in `<script>`/`<style>`: escaping does not protect |
| W302 | `between` with constant bounds, the low one above the high one |
| W303 | an invisible character in policy text (bidi override, zero-width space) |
"""

from __future__ import annotations

from dataclasses import dataclass

from dsl.model import InputSchema
from dsl.types import DATE, DATETIME, DECIMAL, INT, MONEY, STRING, Type

CODES = {
    "E201": "unexpected token or character",
    "E202": "unexpected end of the expression",
    "E203": "bad literal",
    "E204": "unclosed or stray brace in a template",
    "E301": "unknown name or field",
    "E302": "operand types do not fit the operator",
    "E303": "wrong arguments to a function",
    "E304": "unknown function",
    "E305": "a value that may be empty where a value is required",
    "E306": "name not available here",
    "E307": "result is not of the expected type",
    "W301": "HTML placeholder where escaping does not protect",
    "W302": "between with its bounds the wrong way round",
    "W303": "invisible character in policy text",
}


@dataclass(frozen=True)
class ExprContext:
    """Where an expression stands in a policy, and so what it may name."""

    inputs: InputSchema
    per_invoice: bool = False  # `invoice` and `segment` available
    score: bool = False  # `score` and `grade` available
    offer: bool = False  # `offer.*` available (templates of a step with offer:)
    template: bool = False  # money()/date()/number() formatting functions available


@dataclass(frozen=True)
class RootName:
    """A name an expression may start with.

    `type` is None for records (`customer`, `invoice`, `offer`) and for
    `history`, which are only reached through a field or an aggregate.
    `needs` names the `ExprContext` flag that makes it available.
    """

    type: Type | None
    needs: str | None
    where: str  # said in the "not available here" message


ROOT_NAMES: dict[str, RootName] = {
    "customer": RootName(None, None, "everywhere"),
    "invoice": RootName(
        None, "per_invoice", "per invoice: suppress, offers, step `when`, templates"
    ),
    "history": RootName(None, None, "everywhere"),
    "offer": RootName(None, "offer", "in templates of a step with `offer:`"),
    "today": RootName(DATE, None, "everywhere"),
    "now": RootName(DATETIME, None, "everywhere"),
    "exposure": RootName(MONEY, None, "everywhere"),
    "open_invoices": RootName(INT, None, "everywhere"),
    "score": RootName(
        INT, "score", "after the scorecard: segments, credit, per invoice"
    ),
    "grade": RootName(
        STRING, "score", "after the scorecard: segments, credit, per invoice"
    ),
    "segment": RootName(STRING, "per_invoice", "per invoice"),
    # The invoices one message stands for: more than 1 only when
    # `same_day: combine` merged several into it.
    "invoice_count": RootName(INT, "template", "in templates"),
}

# Names that exist in a policy but can never be used in an expression.
UNAVAILABLE_NAMES = {
    "payment": "payments are not available in expressions; use history.paid_total",
}

RECORDS = ("customer", "invoice", "offer")

# Fields the engine computes for every invoice. The same table, with the
# engine's comments, is engine.records.COMPUTED_INVOICE_FIELDS; dsl must not
# import engine, so the two are kept in step by tests/dsl/test_checker.py.
COMPUTED_INVOICE_FIELDS: dict[str, Type] = {
    "amount_paid": MONEY,
    "amount_due": MONEY,
    "due_date_effective": DATE,
    "days_past_due": INT,
}

# `offer.<field>` in templates of a step with `offer:`.
OFFER_FIELDS: dict[str, Type] = {
    "instalments": INT,
    "instalment_amount": MONEY,
    "total": MONEY,
    "new_due_date": DATE,
}

# `history.<aggregate>(window)`: engine.scope.History, method for method.
HISTORY_AGGREGATES: dict[str, Type] = {
    "invoice_count": INT,
    "late_count": INT,
    "max_days_late": INT,
    "sum_days_late": INT,
    "avg_days_late": DECIMAL,
    "billed_total": MONEY,
    "max_billed": MONEY,
    "avg_billed": MONEY,
    "paid_total": MONEY,
}


@dataclass(frozen=True)
class Function:
    """A function of the library. The checker holds each one's type rule."""

    signature: str  # as shown in messages
    min_args: int
    max_args: int | None  # None: any number
    template_only: bool = False


FUNCTIONS: dict[str, Function] = {
    "min": Function("min(a, b, ...)", 2, None),
    "max": Function("max(a, b, ...)", 2, None),
    "abs": Function("abs(number)", 1, 1),
    "round": Function("round(number, digits)", 2, 2),
    "coalesce": Function("coalesce(value, fallback, ...)", 2, None),
    "len": Function("len(text or list)", 1, 1),
    "lower": Function("lower(text)", 1, 1),
    "upper": Function("upper(text)", 1, 1),
    "days_between": Function("days_between(first_date, second_date)", 2, 2),
    "money": Function("money(amount)", 1, 1, template_only=True),
    "date": Function("date(date, 'dd/MM/yyyy')", 1, 2, template_only=True),
    "number": Function("number(value)", 1, 1, template_only=True),
}


def record_fields(record: str, context: ExprContext) -> dict[str, Type]:
    """The fields of `customer`, `invoice` or `offer`, with their types."""
    if record == "customer":
        return {name: f.type for name, f in context.inputs.customer.items()}
    if record == "invoice":
        declared = {name: f.type for name, f in context.inputs.invoice.items()}
        return declared | COMPUTED_INVOICE_FIELDS
    if record == "offer":
        return dict(OFFER_FIELDS)
    raise KeyError(record)


def is_available(root: RootName, context: ExprContext) -> bool:
    return root.needs is None or bool(getattr(context, root.needs))


def available_names(context: ExprContext) -> list[str]:
    """Root names usable in this context, for "did you mean" hints."""
    return [name for name, root in ROOT_NAMES.items() if is_available(root, context)]
