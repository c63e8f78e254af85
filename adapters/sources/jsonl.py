"""JSON Lines: one JSON object per line.

Either one file per collection, or one file whose objects say what they are
with a `"record": "customer" | "invoice" | "payment"` key. JSON numbers
with a fraction are read from their digits, never through a binary float;
writing money as a string (`"9.99"`) works as well. A number in scientific
notation (`1e2`) or a key written twice in one object makes the line a bad
record (`adapters.sources.parsing.json_number`, `unique_keys`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from adapters import boundedjson
from adapters.sources.config import (
    COLLECTIONS,
    SourceConfig,
    map_columns,
    read_failures,
)
from adapters.sources.csvsource import fingerprint_lines, open_text
from adapters.sources.grouping import RawRow
from adapters.sources.parsing import json_number, unique_keys
from dsl.model import Field

RECORD_KEY = "record"
_KINDS = {record: collection for collection, record in COLLECTIONS.items()}


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def _numbered_lines(text: IO[str]) -> Iterator[tuple[int, str | None]]:
    """(number, line) from 1; (number, None) last if a line cannot be
    decoded, which means the file changed after it was checked."""
    number = 0
    try:
        for number, line in enumerate(text, start=1):
            yield number, line
    except UnicodeDecodeError:
        yield number + 1, None


class JsonLinesFile:
    """One JSON Lines file, read as raw rows of one collection.

    With `only` set, the file holds every collection and this reader yields
    the objects whose `record` key names `only`.
    """

    def __init__(
        self,
        path: Path,
        collection: str,
        fields: Mapping[str, Field],
        config: SourceConfig,
        *,
        shared: bool = False,
    ) -> None:
        self.name = path.name
        self.path = path
        self._collection = collection
        self._shared = shared
        self._encoding = config.encoding
        self._keys = map_columns(config, collection, fields, None, self.name)
        self.sha256, self._lines = fingerprint_lines(path, config.encoding)

    def rows(self) -> Iterator[RawRow]:
        keys = self._keys.items()
        for number, obj in self._objects():
            if isinstance(obj, str):
                yield RawRow(self.name, number, {}, obj)
                continue
            values = {name: obj[key] for name, key in keys if key in obj}
            yield RawRow(self.name, number, values)

    def keys(
        self, names: tuple[str, ...]
    ) -> Iterator[tuple[int, Sequence[object] | None]]:
        """(line, the values of `names`) of each record, None where a key is
        missing; None for a line that cannot be read. What the index pass
        reads, without building rows."""
        keys = [self._keys.get(name) for name in names]
        for number, obj in self._objects():
            if isinstance(obj, str):
                yield number, None
            else:
                yield number, [None if key is None else obj.get(key) for key in keys]

    def size_hint(self) -> int:
        """At least the number of records: the lines of the file."""
        return self._lines

    def _objects(self) -> Iterator[tuple[int, dict[str, object] | str]]:
        """(line, object) of each record of this collection, or (line, why
        the line is no record)."""
        with read_failures(self.name), open_text(self.path, self._encoding) as text:
            for number, line in _numbered_lines(text):
                if line is None:
                    if self._belongs_to_first():
                        yield (
                            number,
                            f"not valid {self._encoding}; the rest of the file is"
                            " not read",
                        )
                    return
                if not line.strip():
                    continue
                try:
                    obj = boundedjson.loads(
                        line,
                        parse_float=json_number,
                        parse_constant=_reject_constant,
                        object_pairs_hook=unique_keys,
                    )
                except ValueError as exc:
                    if self._belongs_to_first():
                        yield number, f"not valid JSON: {exc}"
                    continue
                if not isinstance(obj, dict):
                    if self._belongs_to_first():
                        yield number, "expected a JSON object"
                    continue
                if self._shared:
                    kind = obj.get(RECORD_KEY)
                    if kind not in _KINDS:
                        if self._belongs_to_first():
                            yield (
                                number,
                                f"{RECORD_KEY!r} must be customer, invoice or"
                                f" payment, got {kind!r}",
                            )
                        continue
                    if _KINDS[kind] != self._collection:
                        continue
                yield number, obj

    def _belongs_to_first(self) -> bool:
        """A line that is nobody's record is reported once, by the customers
        reader, not by each of the three readers of a shared file."""
        return not self._shared or self._collection == "customers"
