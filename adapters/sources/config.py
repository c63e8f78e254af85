"""Source configuration: where the records are and how they are written.

A configuration is a `source.yaml` file, a mapping handed over by the run
configuration, or nothing at all (a folder of `customers`, `invoices` and
`payments` files with the default options). It is read strictly: an unknown
key, a value of the wrong kind or an environment variable that is not set is
a `SourceConfigError` naming the file and the key. docs/sources.md is the
reference.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from adapters.sources.parsing import (
    DEFAULT_FALSE_WORDS,
    DEFAULT_TRUE_WORDS,
    ParseOptions,
)
from dsl.model import Field

KINDS = ("csv", "jsonl", "sql", "uci_credit_card", "lendingclub_loans")
# Collections in the configuration, and the input-schema record each holds.
COLLECTIONS = {"customers": "customer", "invoices": "invoice", "payments": "payment"}
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "iso-8859-1", "cp1252")

_PARSING_KEYS = {
    "decimal",
    "thousands",
    "date_format",
    "datetime_format",
    "timezone",
    "true_values",
    "false_values",
    "null_values",
    "money_places",
    "list_separator",
}
_KEYS = {
    "csv": {"kind", "files", "encoding", "delimiter", "quote", "columns"}
    | _PARSING_KEYS,
    "jsonl": {"kind", "files", "file", "encoding", "columns"} | _PARSING_KEYS,
    "sql": {"kind", "url", "tables", "queries", "params", "columns"} | _PARSING_KEYS,
    "uci_credit_card": {"kind", "file", "limit"},
    "lendingclub_loans": {"kind", "file", "limit"},
}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SourceConfigError(Exception):
    """A data source that cannot be opened as configured.

    The message names the file (and key) at fault and, where it can, what
    was probably meant. Raised before any record is read.
    """


class SourceReadError(SourceConfigError):
    """The source broke while being read (a database connection lost).

    Unlike a bad record this stops the read: what comes after cannot be
    known. A subclass of SourceConfigError, so one `except` covers both.
    """


@contextmanager
def read_failures(name: str) -> Iterator[None]:
    """Turn a file that breaks while its rows are read (removed, a disk
    error, bytes that no longer decode) into a SourceReadError naming it.

    Files are checked when a source opens; failing here means the file
    changed or the disk failed since, so nothing after it can be trusted.
    """
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SourceReadError(f"{name}: reading failed: {reason}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise SourceReadError(f"{name}: reading failed: {exc}") from exc


@dataclass(frozen=True)
class SourceConfig:
    """A checked source configuration. Paths are absolute."""

    kind: str
    origin: str  # "path/to/source.yaml", or a description for messages
    base_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # collection -> file
    file: Path | None = None  # one file holding every record kind
    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str = '"'
    options: ParseOptions = field(default_factory=ParseOptions)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    url: str | None = None
    tables: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    text: bytes = b""  # the configuration as written, for the input digest
    limit: int | None = None  # uci_credit_card: read only the first N customers

    def columns_for(self, collection: str) -> dict[str, str]:
        """Field -> column renames of one collection (empty: same names)."""
        return self.columns.get(collection, {})


def did_you_mean(word: str, choices: Iterable[object]) -> str:
    """` (did you mean 'x'?)` when a choice is close to `word`, else ``."""
    names = [str(choice) for choice in choices]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _StrictLoader(yaml.SafeLoader):
    """YAML as a person means it: `no` is text, not False; duplicate keys fail.

    The default loader follows YAML 1.1 and reads `yes`, `no`, `on` and
    `off` as booleans and `2024-10-01` as a date, which turns a list of
    boolean words into booleans and a date format into surprises.
    """


_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_config_file(path: Path) -> SourceConfig:
    """Read and check a `source.yaml`."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SourceConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise SourceConfigError(f"{where}: not valid YAML: {reason}") from exc
    if not isinstance(data, dict):
        raise SourceConfigError(f"{path}: expected a mapping of settings")
    return parse_config(
        data,
        origin=str(path),
        base_dir=path.parent,
        text=text,
        positions=_key_positions(text),
    )


# Where each top-level key of a file was written: (line, column), 1-based,
# for the key itself and for its value.
Positions = dict[str, tuple[tuple[int, int], tuple[int, int]]]


def _key_positions(text: bytes) -> Positions:
    """The places of the top-level keys (the text already loaded cleanly)."""
    root = yaml.compose(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    if not isinstance(root, yaml.MappingNode):
        return {}
    positions: Positions = {}
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode):
            key_mark, value_mark = key.start_mark, value.start_mark
            positions[str(key.value)] = (
                (key_mark.line + 1, key_mark.column + 1),
                (value_mark.line + 1, value_mark.column + 1),
            )
    return positions


def parse_config(
    data: Mapping[str, Any],
    *,
    origin: str,
    base_dir: Path,
    text: bytes | None = None,
    positions: Positions | None = None,
) -> SourceConfig:
    """Check a configuration mapping; relative paths are under `base_dir`.

    With `positions` (a file's), errors about a top-level key or its value
    name the line and column.
    """
    reader = _Reader(data, origin, positions or {})
    kind = reader.choice("kind", KINDS, default="csv")
    reader.only(_KEYS[kind])

    settings: dict[str, Any] = {
        "kind": kind,
        "origin": origin,
        "base_dir": base_dir,
        "text": text if text is not None else _canonical_bytes(data),
    }
    if kind in ("uci_credit_card", "lendingclub_loans"):
        settings["file"] = base_dir / reader.text("file")
        if "limit" in data:
            settings["limit"] = reader.integer("limit", 0, low=1, high=10**9)
        return SourceConfig(**settings)

    settings["options"] = _parse_options(reader)
    settings["columns"] = _columns(reader)
    if kind in ("csv", "jsonl"):
        files = reader.collections("files", required=False)
        settings["files"] = {name: base_dir / value for name, value in files.items()}
        settings["encoding"] = reader.choice("encoding", ENCODINGS, default="utf-8")
    if kind == "csv":
        settings["delimiter"] = reader.single_char("delimiter", ",")
        settings["quote"] = reader.single_char("quote", '"')
    if kind == "jsonl" and "file" in data:
        if "files" in data:
            raise SourceConfigError(f"{origin}: give either 'file' or 'files'")
        settings["file"] = base_dir / reader.text("file")
    if kind == "sql":
        settings.update(_sql_settings(reader, origin))
    return SourceConfig(**settings)


def _canonical_bytes(data: Mapping[str, Any]) -> bytes:
    return repr(sorted((str(k), repr(v)) for k, v in data.items())).encode()


def _parse_options(reader: _Reader) -> ParseOptions:
    decimal = {"point": ".", "comma": ","}[
        reader.choice("decimal", ("point", "comma"), default="point")
    ]
    default_thousands = "." if decimal == "," else None
    thousands_name = reader.choice(
        "thousands",
        ("none", "point", "comma", "space", "apostrophe", "underscore"),
        default=None,
    )
    thousands = (
        default_thousands
        if thousands_name is None
        else {
            "none": None,
            "point": ".",
            "comma": ",",
            "space": " ",
            "apostrophe": "'",
            "underscore": "_",
        }[thousands_name]
    )
    if thousands == decimal:
        raise SourceConfigError(
            f"{reader.at('thousands')}: thousands and decimal separators are both"
            f" {decimal!r}"
        )
    timezone = reader.optional_text("timezone")
    if timezone is not None:
        _check_timezone(timezone, reader.at("timezone"))
    true_words = reader.words("true_values", DEFAULT_TRUE_WORDS)
    false_words = reader.words("false_values", DEFAULT_FALSE_WORDS)
    # Words compare without case: a word in both lists makes no value true
    # or false for certain, and every boolean holding it would be refused.
    both = sorted({w.lower() for w in true_words} & {w.lower() for w in false_words})
    if both:
        key = "false_values" if "false_values" in reader.data else "true_values"
        raise SourceConfigError(
            f"{reader.at(key)}: true_values and false_values both hold"
            f" {', '.join(repr(w) for w in both)}: a word can mean only one"
            " (when you set one list, set the other too)"
        )
    return ParseOptions(
        decimal=decimal,
        thousands=thousands,
        date_format=reader.optional_text("date_format"),
        datetime_format=reader.optional_text("datetime_format"),
        timezone=timezone,
        true_words=true_words,
        false_words=false_words,
        null_words=reader.words("null_values", ("",)),
        money_places=reader.integer("money_places", 2, low=0, high=8),
        list_separator=reader.optional_text("list_separator") or "|",
    )


def _check_timezone(name: str, origin: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SourceConfigError(
            f"{origin}: timezone: {name!r} is not an IANA time zone"
            " (e.g. America/Sao_Paulo)"
        ) from exc


def _columns(reader: _Reader) -> dict[str, dict[str, str]]:
    raw = reader.collections("columns", required=False, values=dict)
    columns: dict[str, dict[str, str]] = {}
    for collection, mapping in raw.items():
        renames: dict[str, str] = {}
        for field_name, column in mapping.items():
            if not isinstance(field_name, str) or not isinstance(column, str):
                raise SourceConfigError(
                    f"{reader.at('columns')}: columns.{collection}: write each entry as"
                    f" 'field: column name' (got {field_name!r}: {column!r})"
                )
            renames[field_name] = column
        columns[collection] = renames
    return columns


def _sql_settings(reader: _Reader, origin: str) -> dict[str, Any]:
    url = substitute_environment(reader.text("url"), f"{origin}: url")
    password = urlsplit(url).password if "://" in url else None
    raw_url = str(reader.data["url"])
    if password and "${" not in raw_url:
        raise SourceConfigError(
            f"{origin}: url: a literal password does not belong in a file;"
            " write it as ${ENV_VAR} and set the variable"
        )
    tables = reader.collections("tables", required=False)
    queries = reader.collections("queries", required=False)
    overlap = sorted(set(tables) & set(queries))
    if overlap:
        raise SourceConfigError(
            f"{origin}: {overlap[0]} has both a table and a query; give one"
        )
    missing = [name for name in ("customers", "invoices") if name not in tables]
    missing = [name for name in missing if name not in queries]
    if missing:
        raise SourceConfigError(
            f"{origin}: no table or query for {', '.join(missing)}"
            " (set tables.<name> or queries.<name>)"
        )
    params = reader.data.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise SourceConfigError(f"{origin}: params: expected a mapping name: value")
    return {
        "url": url,
        "tables": tables,
        "queries": queries,
        "params": {
            name: substitute_environment(value, f"{origin}: params.{name}")
            if isinstance(value, str)
            else value
            for name, value in params.items()
        },
    }


def substitute_environment(text: str, where: str) -> str:
    """Replace each `${NAME}` with the environment variable NAME."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SourceConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(value, text)


class _Reader:
    """Typed access to a configuration mapping, with errors naming the key."""

    def __init__(
        self, data: Mapping[str, Any], origin: str, positions: Positions
    ) -> None:
        self.data = data
        self.origin = origin
        self.positions = positions

    def at(self, key: str, *, value: bool = True) -> str:
        """`source.yaml:3:12` for the value of `key` (or the key itself),
        when the file's positions are known; else the origin alone."""
        place = self.positions.get(key)
        if place is None:
            return self.origin
        line, column = place[1] if value else place[0]
        return f"{self.origin}:{line}:{column}"

    def fail(self, key: str, message: str) -> SourceConfigError:
        return SourceConfigError(f"{self.at(key)}: {key}: {message}")

    def only(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                hint = did_you_mean(str(key), sorted(allowed))
                kind = self.data.get("kind", "csv")
                where = self.at(str(key), value=False)
                raise SourceConfigError(
                    f"{where}: unknown key {key!r} for a {kind} source{hint}"
                )

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if value is None:
            raise SourceConfigError(f"{self.origin}: {key} is required")
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected text, got {value!r}")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.data.get(key) is not None else None

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return None
        if value not in choices:
            hint = did_you_mean(str(value), choices)
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}{hint}")
        return value

    def single_char(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if value == "tab":
            return "\t"
        if not isinstance(value, str) or len(value) != 1:
            raise self.fail(key, f"expected one character (or 'tab'), got {value!r}")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"expected {low} to {high}, got {value}")
        return value

    def words(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
            raise self.fail(
                key,
                f"expected a list of words in quotes, e.g. ['sim', 's'], got {value!r}",
            )
        return tuple(w.strip() for w in value)

    def collections(
        self, key: str, *, required: bool, values: type = str
    ) -> dict[str, Any]:
        """A mapping keyed by customers/invoices/payments."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise SourceConfigError(f"{self.origin}: {key} is required")
            return {}
        if not isinstance(value, dict):
            raise self.fail(
                key, "expected a mapping with customers, invoices, payments"
            )
        for name, item in value.items():
            if name not in COLLECTIONS:
                hint = did_you_mean(str(name), COLLECTIONS)
                raise self.fail(
                    key,
                    f"{name!r} is not customers, invoices or payments{hint}",
                )
            if not isinstance(item, values) or not item:
                expected = "text" if values is str else "a mapping"
                raise self.fail(f"{key}.{name}", f"expected {expected}, got {item!r}")
        return dict(value)


def map_columns(
    config: SourceConfig,
    collection: str,
    fields: Mapping[str, Field],
    found: list[str] | None,
    source: str,
) -> dict[str, str]:
    """Field -> column (or key) of one collection.

    A rename names a field of the schema; with `found` (the header of a CSV
    file, the columns of a query), every declared field must have a column,
    except an optional one (`bool?`), which is then empty in every record
    and left out of the mapping (`absent_note` says so). Undeclared columns
    are ignored.
    """
    renames = config.columns_for(collection)
    for name in renames:
        if name not in fields:
            raise SourceConfigError(
                f"{config.origin}: columns.{collection}.{name}: the input schema"
                f" declares no {COLLECTIONS[collection]} field {name!r}"
                + did_you_mean(name, fields)
            )
    mapping = {name: renames.get(name, name) for name in fields}
    if found is None:
        return mapping
    for name, column in list(mapping.items()):
        if column not in found and name not in renames and fields[name].type.nullable:
            del mapping[name]
        elif column not in found:
            hint = did_you_mean(column, found)
            listed = ", ".join(found) if len(found) <= 30 else f"{len(found)} columns"
            raise SourceConfigError(
                f"{source}: no column {column!r} for the {COLLECTIONS[collection]}"
                f" field {name!r}{hint}; columns found: {listed}"
                f" (map it with columns.{collection}.{name} in the source"
                " configuration)"
            )
    return mapping


def absent_note(
    source: str, collection: str, fields: Iterable[str], mapping: Mapping[str, str]
) -> list[str]:
    """A note for each optional field `map_columns` found no column for."""
    record = COLLECTIONS[collection]
    return [
        f"{source}: no column for the optional {record} field {name!r}: it is"
        f" empty for every {record}"
        for name in fields
        if name not in mapping
    ]
