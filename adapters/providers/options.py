"""Reading a provider's options from the run configuration.

Every provider reads its options through `Options`, which checks types,
resolves secrets from environment variables (never from the file) and, at
the end, rejects keys nobody asked for, with a "did you mean" hint. A
mistake becomes a `ProviderConfigError` naming the provider and the key.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import string
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

# Keys the runner reads from a provider's entry; a provider accepts them
# without using them (`rate_limit` feeds the runner's RateLimiter).
RUNNER_KEYS = ("kind", "rate_limit")

# A `${NAME}` reference to an environment variable inside an option value.
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Header names whose values are credentials: they must come from the
# environment (`${VAR}`), never be written in the configuration file.
_SECRET_HEADER = re.compile(r"authorization|token|secret|key|signature", re.I)

_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")

_MISSING: Any = object()


class ProviderConfigError(ValueError):
    """A provider's options are wrong: unknown key, bad value, unset secret."""

    def __init__(self, provider: str, message: str, *, key: str | None = None):
        self.provider = provider
        self.key = key
        self.message = message
        where = f"provider {provider!r}" + (f", option {key!r}" if key else "")
        super().__init__(f"{where}: {message}")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Options:
    """One provider's options, read key by key, then `finish()`ed."""

    def __init__(
        self, provider: str, options: Mapping[str, Any], env: Mapping[str, str]
    ) -> None:
        self.provider = provider
        self._options = dict(options)
        self._env = env
        self._read: set[str] = set(RUNNER_KEYS)

    def error(self, message: str, key: str | None = None) -> ProviderConfigError:
        return ProviderConfigError(self.provider, message, key=key)

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        value = self._options.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise self.error("is required", key)
            return default
        return value

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value as written, for options with a shape of their own."""
        return self._get(key, default)

    def text(self, key: str, default: Any = _MISSING) -> Any:
        """A non-empty string (or `default`, which may be None)."""
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error("must be a non-empty string", key)
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise self.error("must not contain control characters", key)
        return value

    def header_name(self, key: str, default: Any = _MISSING) -> Any:
        """An HTTP header name (letters, digits, '-')."""
        value = self.text(key, default)
        if value is not None and not _HEADER_NAME.fullmatch(value):
            raise self.error(
                "must be a header name (letters, digits and '-'), or false for none",
                key,
            )
        return value

    def number(self, key: str, default: float) -> float:
        """A positive number of seconds, items, ..."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error("must be a number", key)
        if value <= 0:
            raise self.error("must be greater than zero", key)
        return float(value)

    def choice(self, key: str, choices: Collection[str], default: str) -> str:
        value = self._get(key, default)
        if value not in choices:
            allowed = ", ".join(sorted(choices))
            raise self.error(f"must be one of {allowed}, not {value!r}", key)
        return str(value)

    def mapping(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, Mapping):
            raise self.error("must be a mapping", key)
        return dict(value)

    def url(self, key: str, default: Any = _MISSING) -> Any:
        """An https URL; plain http only to a loopback host (local tests,
        a sidecar), so credentials never cross a network in clear text."""
        value = self.text(key, default)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(f"must be an http(s) URL, not {value!r}", key)
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise self.error(
                "must use https (plain http is allowed only to a loopback host)",
                key,
            )
        return value

    def secret(
        self, key: str, *, required: bool = True, literal_allowed: bool = False
    ) -> str | None:
        """The value of the environment variable an `*_env` option names.
        `literal_allowed` for identifiers that may also be written out."""
        if not key.endswith("_env"):
            raise AssertionError(f"secret option {key!r} must end in _env")
        literal = key.removesuffix("_env")
        if literal in self._options and not literal_allowed:
            raise self._literal_secret(literal)
        variable = self.text(key, _MISSING if required else None)
        if variable is None:
            return None
        return self._variable(variable, key)

    def _variable(self, name: str, key: str) -> str:
        """An environment variable's value; it goes into headers, so a line
        break in it is refused here rather than mid-run."""
        value = self._env.get(name)
        if not value:
            raise self.error(f"environment variable {name} is not set", key)
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise self.error(
                f"environment variable {name} contains control characters", key
            )
        return value

    def expand(self, text: str, key: str) -> str:
        """Replace `${VAR}` references in an option value by their values."""

        def resolve(match: re.Match[str]) -> str:
            return self._variable(match.group(1), key)

        return _ENV_REFERENCE.sub(resolve, text)

    def headers(self, key: str) -> dict[str, str]:
        """Extra HTTP headers; values may reference `${VAR}` and must when
        the header carries a credential."""
        raw = self.mapping(key, {})
        headers: dict[str, str] = {}
        for name, value in raw.items():
            where = f"{key}.{name}"
            if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                raise self.error("header names are letters, digits and '-'", where)
            if not isinstance(value, str) or any(ord(c) < 32 for c in value):
                raise self.error("must be a one-line string", where)
            if _SECRET_HEADER.search(name) and not _ENV_REFERENCE.search(value):
                raise self.error(
                    "credentials come from the environment: write the value as "
                    '"${VARIABLE}" (for example "Bearer ${SMS_TOKEN}")',
                    where,
                )
            headers[name] = self.expand(value, where)
        return headers

    def _literal_secret(self, key: str) -> ProviderConfigError:
        return self.error(
            "secrets come from the environment, never from the configuration "
            f"file: write `{key}_env: VARIABLE_NAME`",
            key,
        )

    def finish(self) -> None:
        """Reject keys that no reader asked for, with a hint."""
        for key in sorted(set(self._options) - self._read, key=str):
            if f"{key}_env" in self._read:
                raise self._literal_secret(str(key))
            hint = difflib.get_close_matches(str(key), sorted(self._read), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.error(f"unknown option{suffix}", str(key))


def check_placeholders(
    template: str, allowed: Collection[str], options: Options, key: str
) -> None:
    """Fail at configuration time on `${name}` placeholders we cannot fill."""
    parsed = string.Template(template)
    if not parsed.is_valid():
        raise options.error("bad placeholder syntax (use ${name}, $$ for $)", key)
    names = parsed.get_identifiers()
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        known = ", ".join("${" + name + "}" for name in sorted(allowed))
        raise options.error(
            f"unknown placeholder ${{{unknown[0]}}}; known: {known}", key
        )
