"""What every built-in mapping of a public data set shares.

The UCI and Lending Club sources compute a fixed set of fields from their
files. A policy's input schema picks among them: this module checks the
choice against what the mapping provides and trims each mapped customer to
exactly the declared fields.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.sources.config import SourceConfigError, did_you_mean
from dsl.model import Field, InputSchema
from dsl.types import Type
from engine.records import CustomerRecords

RECORD_KINDS = ("customer", "invoice", "payment")


def _fits(declared: Type, provided: Type) -> bool:
    """Whether the mapping's values satisfy a declared type."""
    nullable_ok = declared.nullable or not provided.nullable
    if declared.as_required() == provided.as_required():
        return nullable_ok
    # Money values are Decimals: a schema may call them plain decimals.
    return provided.name == "money" and declared.name == "decimal" and nullable_ok


class MappedFields:
    """The declared fields of a schema, checked against a mapping's offer."""

    def __init__(
        self,
        inputs: InputSchema,
        provided: Mapping[str, Mapping[str, Type]],
        *,
        mapping: str,
        origin: str,
    ) -> None:
        self.fields: dict[str, Mapping[str, Field]] = {
            "customer": inputs.customer,
            "invoice": inputs.invoice,
            "payment": inputs.payment,
        }
        for record in RECORD_KINDS:
            offer = provided[record]
            for name, declared in self.fields[record].items():
                if name not in offer:
                    raise SourceConfigError(
                        f"{origin}: the {mapping} mapping cannot fill"
                        f" {record}.{name}{did_you_mean(name, offer)}; it provides:"
                        f" {', '.join(offer)}"
                    )
                if not _fits(declared.type, offer[name]):
                    empty_hint = (
                        f" (some records have none: declare it"
                        f" {declared.type.as_nullable()})"
                        if offer[name].nullable
                        else ""
                    )
                    raise SourceConfigError(
                        f"{origin}: {record}.{name} is declared {declared.type}, the"
                        f" {mapping} mapping gives {offer[name]}{empty_hint}"
                    )

    def too_long(self, records: CustomerRecords) -> str | None:
        """A value longer than its declared max_length: the engine relies on
        it for SMS lengths, so such a record is a problem, not a surprise."""
        for record, values in (
            ("customer", [records.customer]),
            ("invoice", records.invoices),
        ):
            for name, declared in self.fields[record].items():
                if declared.max_length is None:
                    continue
                for value in values:
                    text = value.get(name)
                    if isinstance(text, str) and len(text) > declared.max_length:
                        return (
                            f"{record}.{name}: {text!r} has {len(text)} characters,"
                            f" more than the declared max_length {declared.max_length}"
                        )
        return None

    def select(self, records: CustomerRecords) -> CustomerRecords:
        """The same records with exactly the declared fields."""
        fields = self.fields
        return CustomerRecords(
            customer={name: records.customer[name] for name in fields["customer"]},
            invoices=[
                {name: invoice[name] for name in fields["invoice"]}
                for invoice in records.invoices
            ],
            payments=[
                {name: payment[name] for name in fields["payment"]}
                for payment in records.payments
            ],
        )
