"""Data sources: CSV, JSON Lines, SQL, and mappings of two real data sets.

`open_source` turns a source specification into a `RecordSource` (see
engine/records.py). A specification is one of:

- a folder holding `customers`, `invoices` and (optionally) `payments`
  files, all `.csv` or all `.jsonl`, and optionally a `source.yaml`;
- a `source.yaml` file;
- a `.jsonl` file whose objects carry a `"record"` key;
- a mapping with the keys of a `source.yaml` (from a run configuration).

docs/sources.md describes the configuration, and what stays in memory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.sources.config import (
    COLLECTIONS,
    SourceConfig,
    SourceConfigError,
    SourceReadError,
    load_config_file,
    parse_config,
)
from adapters.sources.csvsource import CsvTable
from adapters.sources.grouping import ON_ERROR, EmptyStream, GroupedSource, RowStream
from adapters.sources.jsonl import JsonLinesFile
from dsl.model import InputSchema
from engine.records import RecordSource

__all__ = ("SourceConfigError", "SourceReadError", "open_source")

CONFIG_NAMES = ("source.yaml", "source.yml")
_EXTENSIONS = (".csv", ".jsonl")


def open_source(
    spec: str | os.PathLike[str] | Mapping[str, Any],
    inputs: InputSchema,
    *,
    on_error: str = "fail",
    base_dir: Path | None = None,
) -> RecordSource:
    """Open a data source for the fields `inputs` declares.

    Relative paths in `spec` are taken from `base_dir` (default: the current
    directory). Everything that can be checked without reading the records
    is checked here (files, headers, encodings, columns): a problem raises
    `SourceConfigError`. Bad records never raise: read `problems` on the
    returned source after consuming `customers()`. `on_error` is kept on
    the source for the caller (`"fail"`: stop before acting; `"skip"`: go
    on without the bad records); either way bad records are left out and
    listed.

    Example::

        source = open_source("examples/uci", ruleset.inputs)
        for customer in source.customers():
            ...
        if source.problems and source.on_error == "fail":
            ...
    """
    if on_error not in ON_ERROR:
        raise SourceConfigError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    config = resolve_config(spec, base_dir or Path.cwd())
    return _open(config, inputs, on_error)


def resolve_config(
    spec: str | os.PathLike[str] | Mapping[str, Any], base_dir: Path
) -> SourceConfig:
    """The configuration a specification stands for."""
    if isinstance(spec, Mapping):
        return parse_config(spec, origin="source configuration", base_dir=base_dir)

    path = base_dir / Path(spec)
    if path.is_dir():
        for name in CONFIG_NAMES:
            if (path / name).is_file():
                return load_config_file(path / name)
        return _folder_config(path)
    if path.is_file():
        if path.suffix in (".yaml", ".yml"):
            return load_config_file(path)
        if path.suffix == ".jsonl":
            return parse_config(
                {"kind": "jsonl", "file": path.name},
                origin=str(path),
                base_dir=path.parent,
            )
        raise SourceConfigError(
            f"{path}: a data source is a folder (customers, invoices, payments"
            " files), a source.yaml or a .jsonl file"
        )
    raise SourceConfigError(f"{path}: no such file or folder")


def _folder_config(folder: Path) -> SourceConfig:
    """A folder without source.yaml: its files name the kind."""
    kinds = {
        extension
        for extension in _EXTENSIONS
        if (folder / f"customers{extension}").is_file()
    }
    if len(kinds) != 1:
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:20]) or "nothing"
        reason = "both .csv and .jsonl" if kinds else "no customers.csv or .jsonl"
        raise SourceConfigError(
            f"{folder}: {reason} files; a data folder holds customers, invoices"
            f" and payments files of one kind, or a source.yaml (found: {found})"
        )
    kind = kinds.pop().lstrip(".")
    return parse_config({"kind": kind}, origin=str(folder), base_dir=folder)


def _collection_files(config: SourceConfig) -> dict[str, Path | None]:
    """The file of each collection; None for an absent payments file."""
    extension = f".{config.kind}"
    files: dict[str, Path | None] = {}
    for collection in COLLECTIONS:
        path = config.files.get(collection)
        if path is None:
            default = config.base_dir / f"{collection}{extension}"
            path = default if default.is_file() or collection != "payments" else None
        if path is not None and not path.is_file():
            raise SourceConfigError(
                f"{config.origin}: {collection}: no such file {path}"
            )
        files[collection] = path
    return files


def _schema_fields(inputs: InputSchema) -> dict[str, dict[str, Any]]:
    return {
        "customers": dict(inputs.customer),
        "invoices": dict(inputs.invoice),
        "payments": dict(inputs.payment),
    }


def _open(config: SourceConfig, inputs: InputSchema, on_error: str) -> RecordSource:
    if config.kind == "uci_credit_card":
        from adapters.sources.uci import UciCreditCardSource

        return UciCreditCardSource(config, inputs, on_error=on_error)
    if config.kind == "lendingclub_loans":
        from adapters.sources.lendingclub import LendingClubSource

        return LendingClubSource(config, inputs, on_error=on_error)
    if config.kind == "sql":
        from adapters.sources.sql import open_sql

        return open_sql(config, inputs, on_error=on_error)

    fields = _schema_fields(inputs)
    streams: dict[str, RowStream] = {}
    hashes: list[tuple[str, str]] = []
    notes: list[str] = []
    if config.kind == "jsonl" and config.file is not None:
        if not config.file.is_file():
            raise SourceConfigError(
                f"{config.origin}: file: no such file {config.file}"
            )
        for collection in COLLECTIONS:
            shared = JsonLinesFile(
                config.file, collection, fields[collection], config, shared=True
            )
            streams[collection] = shared
        hashes.append(("all", shared.sha256))
    else:
        for collection, path in _collection_files(config).items():
            if path is None:
                streams[collection] = EmptyStream(collection)
                notes.append(f"no {collection} file: no payments are known")
                continue
            table = _table(config, path, collection, fields[collection])
            streams[collection] = table
            hashes.append((collection, table.sha256))
            if isinstance(table, CsvTable):
                notes.extend(table.notes)

    return GroupedSource(
        inputs,
        config.options,
        streams,
        _digest_of(config, hashes),
        on_error=on_error,
        notes=notes,
    )


def _table(
    config: SourceConfig, path: Path, collection: str, fields: dict[str, Any]
) -> CsvTable | JsonLinesFile:
    if config.kind == "csv":
        return CsvTable(path, collection, fields, config)
    return JsonLinesFile(path, collection, fields, config)


def _digest_of(
    config: SourceConfig, hashes: list[tuple[str, str]]
) -> Callable[[], str]:
    """sha256 over the configuration and each file's bytes.

    File names and folders are left out, so the same data moved elsewhere
    keeps its digest.
    """
    digest = hashlib.sha256(b"ruleset-source-v1\n")
    digest.update(hashlib.sha256(config.text).hexdigest().encode() + b"\n")
    for collection, file_hash in hashes:
        digest.update(f"{collection} {file_hash}\n".encode())
    value = "sha256:" + digest.hexdigest()
    return lambda: value
