"""CSV files: one per collection, a header row, any encoding we can name.

A UTF-8 byte order mark (Excel writes one) is dropped before the header is
read, whatever the configured encoding, so it never sticks to the first
column's name. The whole file is decoded once when the source is opened:
a file in the wrong encoding fails there, with the line, instead of
halfway through a run.
"""

from __future__ import annotations

import _csv
import codecs
import csv
import hashlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO

from adapters.sources.config import (
    SourceConfig,
    SourceConfigError,
    absent_note,
    map_columns,
    read_failures,
)
from adapters.sources.grouping import RawRow
from dsl.model import Field

_CHUNK = 1 << 16


def fingerprint(path: Path, encoding: str) -> str:
    """The sha256 of a file's bytes, after checking that they decode.

    Raises SourceConfigError naming the line of the first byte that is not
    valid in `encoding`.
    """
    return fingerprint_lines(path, encoding)[0]


def fingerprint_lines(path: Path, encoding: str) -> tuple[str, int]:
    """`fingerprint`, and the number of lines: at least the number of rows,
    which sizes the index's filters (adapters/sources/idfilter.py)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines_before = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line = lines_before + chunk[: exc.start].count(b"\n") + 1
                    raise SourceConfigError(
                        f"{path.name}:{line}: not valid {encoding}"
                        f" (byte 0x{chunk[exc.start]:02x}); if the file comes"
                        " from a spreadsheet on Windows, set encoding: cp1252"
                        " or latin-1 in the source configuration"
                    ) from exc
                lines_before += chunk.count(b"\n")
            decoder.decode(b"", final=True)
    except OSError as exc:
        raise SourceConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SourceConfigError(
            f"{path.name}: ends in the middle of a {encoding} character"
        ) from exc
    return digest.hexdigest(), lines_before + 1


def open_text(path: Path, encoding: str) -> IO[str]:
    """The file as text, without a leading UTF-8 byte order mark."""
    binary = path.open("rb")
    if binary.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        binary.seek(0)
    # newline="" lets the csv module see quoted line breaks and CRLF as is.
    return io.TextIOWrapper(binary, encoding=encoding, newline="")


class CsvTable:
    """One collection's CSV file, read as raw rows keyed by field name."""

    def __init__(
        self,
        path: Path,
        collection: str,
        fields: Mapping[str, Field],
        config: SourceConfig,
    ) -> None:
        self.name = path.name
        self.path = path
        self._config = config
        self.sha256, self._lines = fingerprint_lines(path, config.encoding)

        header = self._header()
        mapping = map_columns(config, collection, fields, header, self.name)
        self.notes = absent_note(self.name, collection, fields, mapping)
        self._width = len(header)
        # The first of two equal names wins; a second copy is reported.
        positions: dict[str, int] = {}
        for position, column in enumerate(header):
            positions.setdefault(column, position)
        used = set(mapping.values())
        repeated = sorted({c for c in header if header.count(c) > 1} & used)
        if repeated:
            raise SourceConfigError(
                f"{self.name}: column {repeated[0]!r} appears twice in the header"
            )
        self._positions = {name: positions[column] for name, column in mapping.items()}

    def _reader(self, text: IO[str]) -> _csv.Reader:
        return csv.reader(
            text,
            delimiter=self._config.delimiter,
            quotechar=self._config.quote,
            strict=True,
        )

    def _header(self) -> list[str]:
        with open_text(self.path, self._config.encoding) as text:
            try:
                header = next(self._reader(text), None)
            except csv.Error as exc:
                raise SourceConfigError(f"{self.name}:1: bad header: {exc}") from exc
        if not header:
            raise SourceConfigError(f"{self.name}: empty file, expected a header row")
        return [cell.strip() for cell in header]

    def rows(self) -> Iterator[RawRow]:
        positions = self._positions.items()
        for start, cells, error in self._cells():
            if error is not None:
                # What can still be read at its header position: the ids
                # that tell whose record this is, so that it holds its owner.
                partial: dict[str, object] = {
                    name: cells[position]
                    for name, position in positions
                    if position < len(cells)
                }
                yield RawRow(self.name, start, partial, error)
                continue
            values: dict[str, object] = {
                name: cells[position] for name, position in positions
            }
            yield RawRow(self.name, start, values)

    def keys(
        self, names: tuple[str, ...]
    ) -> Iterator[tuple[int, Sequence[object] | None]]:
        """(line, the cells of `names`) of each row; None for a row that
        cannot be read. What the index pass reads, without building rows."""
        pick: Callable[[list[str]], Sequence[object]]
        positions = [self._positions.get(name) for name in names]
        if None in positions:  # a field the schema does not declare
            pick = lambda cells: [  # noqa: E731 (the rare case)
                None if position is None else cells[position] for position in positions
            ]
        elif len(names) == 1:
            position = self._positions[names[0]]
            pick = itemgetter(slice(position, position + 1))
        elif names:
            pick = itemgetter(*(self._positions[name] for name in names))
        else:
            pick = itemgetter(slice(0, 0))
        for start, cells, error in self._cells():
            if error is None:
                yield start, pick(cells)
            elif cells:
                # A row of the wrong width: its ids where the header puts
                # them, as `rows` reads them.
                yield (
                    start,
                    [
                        cells[p] if p is not None and p < len(cells) else None
                        for p in positions
                    ],
                )
            else:
                yield start, None

    def size_hint(self) -> int:
        """At least the number of rows: the lines of the file."""
        return self._lines

    def _cells(self) -> Iterator[tuple[int, list[str], str | None]]:
        """(line, cells, None) of each row, or (line, the cells read, why
        the row cannot be read): no cells when nothing could be read.

        The line is where the row starts (a quoted cell may span lines).
        """
        with (
            read_failures(self.name),
            open_text(self.path, self._config.encoding) as text,
        ):
            reader = self._reader(text)
            line = 0
            while True:
                start = line + 1
                try:
                    cells = next(reader, None)
                except (csv.Error, UnicodeDecodeError) as exc:
                    # A decoding error here means the file changed after it
                    # was checked; either way nothing after it can be trusted.
                    yield (
                        start,
                        [],
                        f"unreadable ({exc}); the rest of the file is not read",
                    )
                    return
                if cells is None:
                    return
                line = reader.line_num
                if start == 1 or not cells:
                    continue  # the header (checked on opening), a blank line
                if len(cells) != self._width:
                    why = f"{len(cells)} cells, the header has {self._width}"
                    yield start, cells, why
                    continue
                yield start, cells, None
