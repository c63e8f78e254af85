"""What every built-in mapping of a public data set shares.

The UCI and Lending Club sources compute a fixed set of fields from their
files. A policy's input schema picks among them: this module checks the
choice against what the mapping provides and trims each mapped customer to
exactly the declared fields. It also opens the file itself: one CSV file
of a known layout, checked and fingerprinted once, read row by row.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence

from adapters.sources.config import (
    SourceConfig,
    SourceConfigError,
    did_you_mean,
    read_failures,
)
from adapters.sources.csvsource import fingerprint, open_text
from dsl.model import Field, InputSchema
from dsl.types import Type
from engine.records import CustomerRecords, RecordProblem

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


class MappedFile:
    """The one CSV file a mapping reads, in UTF-8 with a header row.

    Opening checks that the file exists, decodes and has every column the
    mapping needs (`what` names the file in that error); the digest covers
    the mapping's version, the file's bytes and the source configuration.
    """

    def __init__(
        self,
        config: SourceConfig,
        columns: Sequence[str],
        *,
        what: str,
        mapping_version: str,
    ) -> None:
        assert config.file is not None  # required by the configuration
        self.path = config.file
        self.name = config.file.name
        if not self.path.is_file():
            raise SourceConfigError(f"{config.origin}: file: no such file {self.path}")
        file_hash = fingerprint(self.path, "utf-8")
        self.header = self._read_header(columns, what)
        digest = hashlib.sha256(f"{mapping_version}\n{file_hash}\n".encode())
        digest.update(config.text)
        self.digest = "sha256:" + digest.hexdigest()

    def _read_header(self, columns: Sequence[str], what: str) -> list[str]:
        with open_text(self.path, "utf-8") as text:
            header = [cell.strip() for cell in next(csv.reader(text), [])]
        missing = [column for column in columns if column not in header]
        if missing:
            raise SourceConfigError(
                f"{self.name}: not {what}: no column"
                f" {missing[0]!r}{did_you_mean(missing[0], header)}"
            )
        return header

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(first line, cells) of each row after the header; blank lines
        are passed over."""
        with read_failures(self.name), open_text(self.path, "utf-8") as text:
            reader = csv.reader(text)
            next(reader, None)
            line = reader.line_num
            for cells in reader:
                start, line = line + 1, reader.line_num
                if cells:
                    yield start, cells

    def width_problem(
        self, line: int, cells: list[str], record_id: str | None
    ) -> RecordProblem | None:
        """The problem with a row whose cells do not match the header's."""
        if len(cells) == len(self.header):
            return None
        return RecordProblem(
            self.name,
            line,
            record_id,
            f"{len(cells)} cells, the header has {len(self.header)}",
        )
