"""From policy files to a validated `Ruleset`, or to diagnostics.

A ruleset is one YAML file, or a directory holding exactly one file with a
top-level `ruleset:` key plus further files. Reading one goes through these
passes, in this order:

1. read   every file as YAML with positions (`dsl.yamlread`);
2. merge  the files into one tree: files named by `inputs:`/`templates:`
          take the place of the name, other files add their top-level
          keys (each key in one file only);
3. shape  the tree against the JSON Schema (`dsl.structure`);
4. build  the model, type-checking every expression (`dsl.build`);
5. cross  references between the parts (`dsl.crosscheck`), and on the
          model the copy of steps whose reminders may be combined;
6. sms    length and encoding of SMS copy (`dsl.sms`), on the built model.

Every pass runs even when an earlier one found problems (as far as the tree
allows), so that one `validate` run reports everything.

Public entry points: `load_ruleset`, `check_ruleset`, `find_rulesets`.

Codes of the reading side (E2xx/E3xx expressions: `dsl.library`; E4xx/W4xx
cross checks: `dsl.crosscheck`; W5xx SMS: `dsl.sms`):

| code | problem | found by |
|------|---------|----------|
| E101 | YAML syntax error, or a second document | yamlread |
| E102 | the file is not UTF-8 | yamlread |
| E103 | the file is empty | yamlread |
| E104 | duplicate key (both places in the message) | yamlread |
| E105 | anchor, alias or merge key | yamlread |
| E106 | explicit tag | yamlread |
| E107 | yes/no/on/off/y/n as a key or where a boolean is meant | yamlread, build |
| E108 | an unquoted date | build |
| E109 | a number with a leading zero (010), in hex (0x10) or octal (0o10) | structure |
| E110 | unknown key, with "did you mean" | structure |
| E111 | missing required key | structure |
| E112 | wrong type | structure |
| E113 | value not among the allowed ones | structure |
| E114 | invalid name | structure |
| E115 | value out of range, list too short | structure |
| E116 | malformed value: offset, hours, day range, time, duration | structure |
| E117 | referenced file missing, unreadable or outside the ruleset | loader |
| E118 | a key in two files; no or several `ruleset:` files | loader |
| E119 | a date that does not exist | build |
| E120 | unknown time zone | build |
| E121 | unknown locale | build |
| E122 | unknown currency | build |
| E123 | unknown holiday country or subdivision | build |
| E124 | unknown input field type, `max_length` on a non-string | build |
| E125 | a field the engine needs is missing or of another type | build |
| E126 | an input field named like a computed invoice field | build |
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from dsl import crosscheck, sms
from dsl.build import ModelBuilder
from dsl.diagnostics import Diagnostic, Location, PolicyError, Severity
from dsl.model import Ruleset
from dsl.structure import check_structure
from dsl.yamlread import YMap, YNode, YScalar, read, wide_encoding

logger = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml")
# Top-level keys whose value may name a file holding it.
REFERENCE_KEYS = ("inputs", "templates")
_RULESET_KEY = re.compile(rb"^ruleset[ \t]*:", re.MULTILINE)


def load_ruleset(path: str | os.PathLike[str]) -> Ruleset:
    """The validated model of the ruleset at `path` (a file or a directory).

    Raises PolicyError carrying every error found; warnings alone do not
    stop loading.
    """
    ruleset, diagnostics = check_ruleset(path)
    if ruleset is None:
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        raise PolicyError(errors or diagnostics)
    return ruleset


def check_ruleset(
    path: str | os.PathLike[str],
) -> tuple[Ruleset | None, list[Diagnostic]]:
    """The model (None when there is an error) and every diagnostic, sorted.

    `path` is a ruleset file or a ruleset directory; file names in the
    diagnostics are built from it as given, so relative stays relative.
    """
    started = time.perf_counter()
    files, diagnostics = _read_ruleset(Path(path))
    root = _merge(files, diagnostics) if files else None
    ruleset: Ruleset | None = None
    _log_pass("read", path, started)

    if root is not None:
        started = time.perf_counter()
        diagnostics.extend(check_structure(root))
        _log_pass("shape", path, started)

        started = time.perf_counter()
        builder = ModelBuilder(root)
        built = builder.build()
        diagnostics.extend(builder.diagnostics)
        _log_pass("build", path, started)

        started = time.perf_counter()
        diagnostics.extend(crosscheck.cross_check(root))
        if built is not None:
            diagnostics.extend(crosscheck.check_combined(built))
        _log_pass("cross", path, started)

        # The builder skips what the schema rejected, so a model may come
        # out of a tree with errors; it is only trusted when there are none.
        if built is not None and not _has_error(diagnostics):
            started = time.perf_counter()
            diagnostics.extend(sms.check_sms(built))
            _log_pass("sms", path, started)
            ruleset = dataclasses.replace(
                built,
                digest=_digest(files),
                files=tuple(sorted(f.relative for f in files)),
                file_paths=tuple(sorted((f.shown, f.relative) for f in files)),
            )

    diagnostics = sorted(set(diagnostics), key=Diagnostic.sort_key)
    if _has_error(diagnostics):
        ruleset = None
    return ruleset, diagnostics


def _log_pass(name: str, path: str | os.PathLike[str], started: float) -> None:
    elapsed = (time.perf_counter() - started) * 1000
    logger.debug("%s: pass %s took %.1f ms", path, name, elapsed)


def _has_error(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def find_rulesets(path: str | os.PathLike[str]) -> list[Path]:
    """The rulesets at or under `path`: files and ruleset directories.

    A directory with exactly one file holding a top-level `ruleset:` key
    and other policy files besides is a ruleset directory. A directory whose
    policy files are all rulesets holds single-file rulesets, and its
    subdirectories are searched too. Files named `*.test.yaml` and folders
    named `tests` (or starting with a dot) are never rulesets.
    """
    start = Path(path)
    if start.is_file():
        return [start]
    if not start.is_dir():
        raise FileNotFoundError(f"no such file or directory: {start}")
    found: list[Path] = []
    _search(start, found)
    return sorted(found)


def is_policy_file(path: Path) -> bool:
    """A YAML file that may belong to a ruleset (not a policy test file)."""
    name = path.name
    return name.endswith(YAML_SUFFIXES) and not name.endswith(
        (".test.yaml", ".test.yml")
    )


def _search(directory: Path, found: list[Path]) -> None:
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        logger.debug("cannot list %s: %s", directory, exc)
        return
    policy_files = [p for p in entries if p.is_file() and is_policy_file(p)]
    heads = [p for p in policy_files if _declares_ruleset(p)]
    if len(heads) == 1 and len(policy_files) > 1:
        found.append(directory)
        return
    found.extend(heads)
    for sub in entries:
        if sub.is_dir() and sub.name != "tests" and not sub.name.startswith("."):
            _search(sub, found)


def _declares_ruleset(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    # A ruleset saved as UTF-16 is still found, so that loading it says
    # what is wrong with it (E102) rather than "no ruleset here".
    wide = wide_encoding(data)
    if wide is not None:
        text = data.decode(wide, errors="replace").removeprefix("\ufeff")
        data = text.encode("utf-8")
    return _RULESET_KEY.search(data) is not None


@dataclass
class _File:
    """One file of a ruleset: its bytes and its node tree."""

    path: Path
    shown: str  # the path as diagnostics show it
    relative: str  # relative to the ruleset's directory, with "/"
    data: bytes
    root: YNode | None


def _read_ruleset(path: Path) -> tuple[list[_File], list[Diagnostic]]:
    """Read the ruleset's own files: the head file first, then the others
    in name order. Referenced files are read later, while merging."""
    diagnostics: list[Diagnostic] = []
    if path.is_dir():
        base = path
        candidates = sorted(p for p in path.iterdir() if p.is_file())
        policy = [p for p in candidates if is_policy_file(p)]
        heads = [p for p in policy if _declares_ruleset(p)]
        if len(heads) != 1:
            message = (
                "no file with a top-level `ruleset:` key"
                if not heads
                else "more than one file has a top-level `ruleset:` key: "
                + ", ".join(p.name for p in heads)
            )
            at = Location(str(path), 1, 1)
            return [], [Diagnostic(at, Severity.ERROR, "E118", message)]
        ordered = heads + [p for p in policy if p != heads[0]]
    else:
        base = path.parent
        ordered = [path]

    files: list[_File] = []
    for file_path in ordered:
        loaded = _read_file(file_path, base, _shown(path, file_path), diagnostics)
        if loaded is not None:
            files.append(loaded)
    return files, diagnostics


def _shown(ruleset_path: Path, file_path: Path) -> str:
    if ruleset_path.is_dir():
        return str(ruleset_path / file_path.name)
    return str(ruleset_path)


def _read_file(
    path: Path, base: Path, shown: str, diagnostics: list[Diagnostic]
) -> _File | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        at = Location(shown, 1, 1)
        reason = exc.strerror or str(exc)
        diagnostics.append(
            Diagnostic(at, Severity.ERROR, "E117", f"cannot read the file: {reason}")
        )
        return None
    root, found = read(shown, data)
    diagnostics.extend(found)
    relative = os.path.relpath(path, base).replace(os.sep, "/")
    return _File(path, shown, relative, data, root)


def _merge(files: list[_File], diagnostics: list[Diagnostic]) -> YMap | None:
    """One tree for the whole ruleset, with referenced files in place."""
    head = files[0]
    if not isinstance(head.root, YMap):
        if head.root is not None:
            diagnostics.append(_top_level_not_mapping(head))
        return None
    base = head.path.parent.resolve()

    # References first: a file named by `templates:` is not a fragment, in
    # whatever order the file names sort.
    substitutes: dict[int, YNode] = {}
    referenced: set[Path] = set()
    for file in list(files):
        if isinstance(file.root, YMap) and file.path.resolve() not in referenced:
            for key, value in file.root:
                if key.text in REFERENCE_KEYS and isinstance(value, YScalar):
                    substitutes[id(value)] = _reference(
                        file, value, base, files, referenced, diagnostics
                    )

    items: list[tuple[YScalar, YNode]] = []
    first_place: dict[str, Location] = {}
    for file in files:
        if file.path.resolve() in referenced:
            continue
        if not isinstance(file.root, YMap):
            if file.root is not None:
                diagnostics.append(_top_level_not_mapping(file))
            continue
        for key, value in file.root:
            earlier = first_place.get(key.text)
            if earlier is not None:
                diagnostics.append(
                    Diagnostic(
                        key.location,
                        Severity.ERROR,
                        "E118",
                        f"`{key.text}` is already defined at {earlier}",
                        "a top-level key may appear in one file only",
                    )
                )
                continue
            first_place[key.text] = key.location
            items.append((key, substitutes.get(id(value), value)))

    return YMap(items, head.root.location)


def _reference(
    file: _File,
    name_node: YScalar,
    base: Path,
    files: list[_File],
    referenced: set[Path],
    diagnostics: list[Diagnostic],
) -> YNode:
    """The tree of the file that `name_node` names, or the node itself when
    the file cannot be used (with a diagnostic)."""
    name = name_node.value
    if not isinstance(name, str) or not name.endswith(YAML_SUFFIXES):
        return name_node  # not a file name: the schema says what is wrong

    def problem(message: str, hint: str | None = None) -> YNode:
        diagnostics.append(
            Diagnostic(name_node.location, Severity.ERROR, "E117", message, hint)
        )
        return name_node

    target = (file.path.parent / name).resolve()
    if not target.is_relative_to(base):
        return problem(
            f"`{name}` lies outside the ruleset's directory",
            "keep a ruleset's files together",
        )
    if not target.is_file():
        return problem(f"the file `{name}` does not exist")
    if target in referenced:
        return problem(f"`{name}` is already used by another key")

    loaded = next((f for f in files if f.path.resolve() == target), None)
    if loaded is None:
        shown = os.path.normpath(os.path.join(os.path.dirname(file.shown), name))
        loaded = _read_file(target, base, shown, diagnostics)
        if loaded is None:
            return name_node
        files.append(loaded)
    referenced.add(target)
    if loaded.root is None:
        return name_node  # its own diagnostics say why
    return loaded.root


def _top_level_not_mapping(file: _File) -> Diagnostic:
    assert file.root is not None
    return Diagnostic(
        file.root.location,
        Severity.ERROR,
        "E112",
        "a policy file holds a mapping of keys at the top level",
    )


def _digest(files: list[_File]) -> str:
    """sha256 over the ruleset's files: for each, in name order, its
    relative path, a NUL, its length in bytes, a NUL, then its bytes."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.relative):
        digest.update(f"{file.relative}\0{len(file.data)}\0".encode())
        digest.update(file.data)
    return digest.hexdigest()
