"""The run configuration: how `ruleset run` reaches the outside world.

Policies say what to tell customers; the run configuration (operations,
not business) says where the data comes from, where the ledger lives,
which provider delivers each channel, how patiently to retry and how long
to wait for another run's lock. It is a YAML file given with `--config`;
without one the embedded default applies: data from `--data`, a SQLite
ledger at `.ruleset/ledger.sqlite3` and every channel into the outbox file
`.ruleset/outbox.jsonl`, both under `--state-dir` (default `.ruleset`,
relative to the current directory).

Secrets never sit in the file: provider options name environment
variables (`token_env: SMS_TOKEN`), and the ledger URL and data
specification may use `${VARIABLE}`. A key that looks like a secret
(`password`, `token`, `api_key`, ...) with a literal value, or a URL with
a literal password, is an error. So is an unknown key, with a "did you
mean" hint and the file, line and column.

docs/run.md lists every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapters.ledger import sqlite_url
from adapters.retry import RateLimiter, RetryPolicy

DEFAULT_STATE_DIR = Path(".ruleset")
LEDGER_FILE = "ledger.sqlite3"
OUTBOX_FILE = "outbox.jsonl"
DEFAULT_PROVIDER = "default"  # the providers entry for channels not listed
OUTBOX_KIND = "outbox"

DEFAULT_LOCK_LEASE = 300.0


def default_retries(lock_lease: float = DEFAULT_LOCK_LEASE) -> RetryPolicy:
    """The retry policy when the file sets none: a Retry-After is waited
    for up to half the lock's lease (the lease is renewed meanwhile, but a
    wait that outlasts it would hold the run for longer than another run
    is told to wait for it)."""
    return RetryPolicy(
        max_retry_after=min(RetryPolicy().max_retry_after, lock_lease / 2)
    )


ON_BAD_RECORD = ("fail", "skip")
UNKNOWN_OUTCOME = ("report", "resend")

_TOP_KEYS = (
    "data",
    "on_bad_record",
    "state_dir",
    "ledger",
    "outbox",
    "providers",
    "retries",
    "unknown_outcome",
    "lock_timeout",
    "lock_lease",
)
_LEDGER_KEYS = ("url", "table_prefix")
_RETRY_KEYS = ("attempts", "base_delay", "max_delay", "max_retry_after")
# Keys of a provider entry the runner itself reads; the rest are the
# provider's options.
_RUNNER_PROVIDER_KEYS = ("kind", "rate_limit", "retries")

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEY = re.compile(
    r"passw(or)?d|pwd|secret|token|api[_-]?key|private[_-]?key|credentials?"
    r"|access[_-]?key",
    re.IGNORECASE,
)
# The password part of scheme://user:password@host.
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:([^/@]*)@", re.IGNORECASE)
_TABLE_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,30}")

# The tags plain YAML data gets; anything else was written as an explicit
# tag (`!!python/name:...`, `!custom`) and is refused.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)
_PLAIN_NULL = {"", "~", "null", "Null", "NULL"}
_PLAIN_TRUE = {"true", "True", "TRUE"}
_PLAIN_FALSE = {"false", "False", "FALSE"}
_PLAIN_INT = re.compile(r"[-+]?[0-9]+")
_PLAIN_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


class RunConfigError(Exception):
    """A mistake in the run configuration, with its place in the file."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class ProviderSpec:
    """One entry of `providers`: a channel's provider, or with the name
    `default`, the provider of every channel not listed."""

    name: str  # the entry's key: the provider's name in the ledger
    kind: str
    options: dict[str, Any]  # handed to the provider registry, `kind` included
    rate_limit: str | None = None
    retries: RetryPolicy | None = None
    where: str | None = None  # file:line:col of the entry
    key_where: str | None = None  # file:line:col of its name


@dataclass(frozen=True)
class RunConfig:
    """Everything `ruleset run` needs besides the ruleset itself."""

    origin: str = "the embedded default"
    data: str | dict[str, Any] | None = None
    on_bad_record: str = "fail"
    state_dir: Path = DEFAULT_STATE_DIR
    ledger_url: str | None = None  # None: SQLite in the state dir
    ledger_prefix: str = "ruleset_"
    outbox: Path | None = None  # None: outbox.jsonl in the state dir
    outbox_only: bool = False  # --outbox: every channel to the outbox
    providers: dict[str, ProviderSpec] = field(default_factory=dict)
    retries: RetryPolicy = field(default_factory=default_retries)
    unknown_outcome: str = "report"
    lock_timeout: float = 10.0
    lock_lease: float = DEFAULT_LOCK_LEASE

    @property
    def ledger(self) -> str:
        """The ledger's database URL."""
        return self.ledger_url or sqlite_url(self.state_dir / LEDGER_FILE)

    @property
    def outbox_path(self) -> Path:
        return self.outbox or self.state_dir / OUTBOX_FILE

    @property
    def resend_unknown(self) -> bool:
        return self.unknown_outcome == "resend"

    def provider_for(self, channel: str) -> ProviderSpec | None:
        """The provider entry serving `channel` in this run, or None when
        the file gives none. Channels served by one entry share its
        provider; with `--outbox` every channel goes to the outbox."""
        if self.outbox_only:
            return self.outbox_spec()
        return self.configured_for(channel)

    def configured_for(self, channel: str) -> ProviderSpec | None:
        """The entry the configuration gives `channel`, `--outbox` or not;
        None when the file has providers but none for it."""
        if not self.providers:
            return self.outbox_spec()
        spec = self.providers.get(channel) or self.providers.get(DEFAULT_PROVIDER)
        return None if spec is None else self.resolved(spec)

    def resolved(self, spec: ProviderSpec) -> ProviderSpec:
        """`spec` ready to build: an outbox entry without a `path` writes
        to this configuration's outbox file."""
        if spec.kind == OUTBOX_KIND and "path" not in spec.options:
            options = {**spec.options, "path": str(self.outbox_path)}
            return dataclasses.replace(spec, options=options)
        return spec

    def outbox_spec(self) -> ProviderSpec:
        """Every channel into the outbox file."""
        return ProviderSpec(
            OUTBOX_KIND,
            OUTBOX_KIND,
            {"kind": OUTBOX_KIND, "path": str(self.outbox_path)},
        )

    def overridden(
        self,
        *,
        data: str | None = None,
        ledger: str | None = None,
        outbox: Path | None = None,
        state_dir: Path | None = None,
        on_bad_record: str | None = None,
        resend_unknown: bool = False,
        lock_timeout: float | None = None,
    ) -> RunConfig:
        """This configuration with command-line flags applied."""
        changes: dict[str, Any] = {}
        if data is not None:
            changes["data"] = data
        if ledger is not None:
            changes["ledger_url"] = ledger_url_of(ledger)
        if outbox is not None:
            changes["outbox"] = outbox
            changes["outbox_only"] = True
        if state_dir is not None:
            changes["state_dir"] = state_dir
        if on_bad_record is not None:
            changes["on_bad_record"] = on_bad_record
        if resend_unknown:
            changes["unknown_outcome"] = "resend"
        if lock_timeout is not None:
            changes["lock_timeout"] = lock_timeout
        return dataclasses.replace(self, **changes)


def ledger_url_of(text: str) -> str:
    """A ledger URL, or a plain file path taken as a SQLite file.

    Raises RunConfigError for a database that lives only in memory: the
    ledger is what keeps runs exactly-once, so it must outlive the run.
    """
    url = text if "://" in text else sqlite_url(text)
    if _in_memory(url):
        raise RunConfigError(
            f"ledger {text!r} lives only in memory and is lost when the run "
            "ends, so a later run would send everything again; give a "
            "database URL or a SQLite file path"
        )
    return url


def _in_memory(url: str) -> bool:
    """Whether `url` names a SQLite database kept in memory."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # Ledger.open reports a malformed URL
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    )


def load_run_config(path: str | Path | None, env: Mapping[str, str]) -> RunConfig:
    """Read and check a run configuration file; None gives the default.

    Raises RunConfigError with the file, line and column of the mistake.
    """
    if path is None:
        return RunConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RunConfigError(f"cannot read: {exc.strerror or exc}", str(file)) from exc
    except UnicodeDecodeError as exc:
        raise RunConfigError("not UTF-8 text", str(file)) from exc
    document = _Document(str(file), text)
    return _Reader(document, env).config()


class _Document:
    """The YAML of one file as plain data, with the place of every node."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.places: dict[tuple[Any, ...], str] = {}
        self.key_places: dict[tuple[Any, ...], str] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = self._place(mark) if mark is not None else name
            problem = getattr(exc, "problem", None) or str(exc)
            raise RunConfigError(f"not valid YAML: {problem}", where) from exc
        if node is None:
            self.data: Any = {}
            self.places[()] = f"{name}:1:1"
        else:
            self.data = self._convert(node, ())

    def _place(self, mark: Any) -> str:
        return f"{self.name}:{mark.line + 1}:{mark.column + 1}"

    def where(self, path: tuple[Any, ...]) -> str:
        """The place of the value at `path` (or of its nearest parent)."""
        while path and path not in self.places:
            path = path[:-1]
        return self.places.get(path, self.name)

    def key_where(self, path: tuple[Any, ...]) -> str:
        """The place of the key that ends `path`."""
        return self.key_places.get(path) or self.where(path)

    def _convert(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.places[path] = self._place(node.start_mark)
        if node.tag not in _PLAIN_TAGS:
            raise RunConfigError(
                f"tags such as {node.tag} are not allowed", self.where(path)
            )
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                place = self._place(key_node.start_mark)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise RunConfigError("keys must be plain words", place)
                key = key_node.value
                if key in result:
                    raise RunConfigError(f"duplicate key {key!r}", place)
                self.key_places[(*path, key)] = place
                result[key] = self._convert(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [
                self._convert(item, (*path, index))
                for index, item in enumerate(node.value)
            ]
        assert isinstance(node, yaml.ScalarNode)
        return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    """YAML 1.2 core resolution: `yes`/`no`/`on` stay words."""
    text: str = node.value
    if node.style is not None:
        return text
    if text in _PLAIN_NULL:
        return None
    if text in _PLAIN_TRUE:
        return True
    if text in _PLAIN_FALSE:
        return False
    if _PLAIN_INT.fullmatch(text):
        return int(text)
    if _PLAIN_FLOAT.fullmatch(text):
        return float(text)
    return text


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    def __init__(self, document: _Document, env: Mapping[str, str]) -> None:
        self.document = document
        self.env = env
        self.lock_lease = DEFAULT_LOCK_LEASE

    def fail(self, path: tuple[Any, ...], message: str) -> RunConfigError:
        return RunConfigError(message, self.document.where(path))

    def config(self) -> RunConfig:
        data = self.document.data
        if not isinstance(data, dict):
            raise self.fail((), "a run configuration is a mapping of settings")
        self._check_secrets(data, ())
        self._only(data, (), _TOP_KEYS)

        settings: dict[str, Any] = {"origin": self.document.name}
        if "data" in data:
            settings["data"] = self._data(data["data"])
        if "on_bad_record" in data:
            settings["on_bad_record"] = self._choice(
                data, "on_bad_record", ON_BAD_RECORD
            )
        if "unknown_outcome" in data:
            settings["unknown_outcome"] = self._choice(
                data, "unknown_outcome", UNKNOWN_OUTCOME
            )
        if "state_dir" in data:
            settings["state_dir"] = Path(self._text(data, ("state_dir",)))
        if "outbox" in data:
            settings["outbox"] = Path(self._text(data, ("outbox",)))
        if "ledger" in data:
            settings.update(self._ledger(data["ledger"]))
        if "lock_lease" in data:
            self.lock_lease = self._seconds(data, "lock_lease", minimum=1.0)
            settings["lock_lease"] = self.lock_lease
        settings["retries"] = default_retries(self.lock_lease)
        if "retries" in data:
            settings["retries"] = self._retries(data["retries"], ("retries",))
        if "lock_timeout" in data:
            settings["lock_timeout"] = self._seconds(data, "lock_timeout", minimum=0.0)
        if "providers" in data:
            settings["providers"] = self._providers(data["providers"])
        return RunConfig(**settings)

    # -- checks shared by every key -----------------------------------------

    def _only(
        self, data: dict[str, Any], path: tuple[Any, ...], keys: tuple[str, ...]
    ) -> None:
        for key in data:
            if key not in keys:
                raise RunConfigError(
                    f"unknown key {key!r}{_did_you_mean(key, keys)}",
                    self.document.key_where((*path, key)),
                )

    def _check_secrets(self, value: Any, path: tuple[Any, ...]) -> None:
        """No secret may be written in the file itself."""
        if isinstance(value, dict):
            for key, item in value.items():
                if (
                    _SECRET_KEY.search(key)
                    and not key.endswith("_env")
                    and isinstance(item, str | int | float)
                    and not (isinstance(item, str) and _ENV_REFERENCE.search(item))
                ):
                    raise self.fail(
                        (*path, key),
                        f"{key!r} looks like a secret written in the file; "
                        f"secrets come from the environment: write "
                        f'`{key}_env: VARIABLE_NAME` or "${{VARIABLE_NAME}}"',
                    )
                self._check_secrets(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._check_secrets(item, (*path, index))
        elif isinstance(value, str):
            password = _URL_PASSWORD.match(value)
            if password and not _ENV_REFERENCE.fullmatch(password.group(1)):
                raise self.fail(
                    path,
                    "this URL has a password written in the file; take it "
                    "from the environment: user:${VARIABLE_NAME}@host",
                )

    def _expand(self, text: str, path: tuple[Any, ...], *, url: bool = False) -> str:
        """Replace `${VAR}` by the variable's value (URL-quoted inside a
        URL, so a password with `@` or `/` stays a password)."""

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            found = self.env.get(name)
            if found is None:
                raise self.fail(path, f"environment variable {name} is not set")
            whole = match.group(0) == text
            return quote(found, safe="") if url and not whole else found

        return _ENV_REFERENCE.sub(value, text)

    def _text(
        self, data: dict[str, Any], path: tuple[Any, ...], *, url: bool = False
    ) -> str:
        value = data[path[-1]]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"{path[-1]!r} must be a non-empty string")
        return self._expand(value, path, url=url)

    def _choice(self, data: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
        value = data[key]
        if value not in choices:
            allowed = " or ".join(choices)
            hint = _did_you_mean(value, choices) if isinstance(value, str) else ""
            raise self.fail((key,), f"{key!r} must be {allowed}, not {value!r}{hint}")
        return str(value)

    def _seconds(
        self,
        data: dict[str, Any],
        key: str,
        *,
        minimum: float,
        path: tuple[Any, ...] = (),
    ) -> float:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail((*path, key), f"{key!r} is a number of seconds")
        if value < minimum:
            raise self.fail((*path, key), f"{key!r} must be at least {minimum:g}")
        return float(value)

    # -- sections -------------------------------------------------------------

    def _data(self, value: Any) -> str | dict[str, Any]:
        if isinstance(value, str) and value.strip():
            return self._expand(value, ("data",))
        if isinstance(value, dict):
            # An inline source configuration; adapters.sources checks it
            # (and resolves its own ${VAR} references).
            return value
        raise self.fail(
            ("data",), "'data' is a source specification (a path) or a source mapping"
        )

    def _ledger(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            text = self._text({"ledger": value}, ("ledger",), url=True)
            return {"ledger_url": self._ledger_url(text, ("ledger",))}
        if not isinstance(value, dict):
            raise self.fail(
                ("ledger",), "'ledger' is a database URL or {url, table_prefix}"
            )
        self._only(value, ("ledger",), _LEDGER_KEYS)
        settings: dict[str, Any] = {}
        if "url" in value:
            url = self._text(value, ("ledger", "url"), url=True)
            settings["ledger_url"] = self._ledger_url(url, ("ledger", "url"))
        if "table_prefix" in value:
            prefix = value["table_prefix"]
            if not isinstance(prefix, str) or not _TABLE_PREFIX.fullmatch(prefix):
                raise self.fail(
                    ("ledger", "table_prefix"),
                    "table_prefix is lower-case letters, digits and '_' "
                    "(a letter first, at most 31)",
                )
            settings["ledger_prefix"] = prefix
        return settings

    def _ledger_url(self, text: str, path: tuple[Any, ...]) -> str:
        try:
            return ledger_url_of(text)
        except RunConfigError as error:
            raise self.fail(path, error.message) from error

    def _retries(self, value: Any, path: tuple[Any, ...]) -> RetryPolicy:
        if not isinstance(value, dict):
            raise self.fail(path, "'retries' is a mapping: " + ", ".join(_RETRY_KEYS))
        self._only(value, path, _RETRY_KEYS)
        settings: dict[str, Any] = {}
        if "attempts" in value:
            attempts = value["attempts"]
            if (
                isinstance(attempts, bool)
                or not isinstance(attempts, int)
                or attempts < 1
            ):
                raise self.fail(
                    (*path, "attempts"), "'attempts' is a whole number, at least 1"
                )
            settings["attempts"] = attempts
        for key in _RETRY_KEYS[1:]:
            if key in value:
                settings[key] = self._seconds(value, key, minimum=0.0, path=path)
        wait = settings.get("max_retry_after")
        if wait is None:
            settings["max_retry_after"] = default_retries(
                self.lock_lease
            ).max_retry_after
        elif wait >= self.lock_lease:
            raise self.fail(
                (*path, "max_retry_after"),
                f"max_retry_after ({wait:g}s) must be shorter than lock_lease "
                f"({self.lock_lease:g}s): a run waiting that long would hold the "
                "lock past what other runs are told to expect; lower it or "
                "raise lock_lease",
            )
        return RetryPolicy(**settings)

    def _providers(self, value: Any) -> dict[str, ProviderSpec]:
        if not isinstance(value, dict):
            raise self.fail(
                ("providers",), "'providers' maps channel names to providers"
            )
        providers: dict[str, ProviderSpec] = {}
        for channel, entry in value.items():
            path = ("providers", channel)
            if not isinstance(entry, dict):
                raise self.fail(
                    path, f"provider of {channel!r} must be a mapping with a 'kind'"
                )
            kind = entry.get("kind")
            if not isinstance(kind, str) or not kind:
                raise self.fail(path, f"provider of {channel!r} needs a 'kind'")
            rate_limit = entry.get("rate_limit")
            if rate_limit is not None:
                if not isinstance(rate_limit, str):
                    raise self.fail(
                        (*path, "rate_limit"), "rate_limit is COUNT/UNIT, e.g. 10/s"
                    )
                try:
                    RateLimiter.parse(rate_limit)
                except ValueError as exc:
                    raise self.fail((*path, "rate_limit"), str(exc)) from exc
            retries = (
                self._retries(entry["retries"], (*path, "retries"))
                if "retries" in entry
                else None
            )
            options = {key: item for key, item in entry.items() if key != "retries"}
            if kind == OUTBOX_KIND and "path" in options:
                options["path"] = self._text(options, (*path, "path"))
            providers[channel] = ProviderSpec(
                name=channel,
                kind=kind,
                options=options,
                rate_limit=rate_limit,
                retries=retries,
                where=self.document.where(path),
                key_where=self.document.key_where(path),
            )
        return providers
