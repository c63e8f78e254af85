"""Diagnostics: what `validate` reports, as data with a location."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Location:
    """A place in a policy file. Lines and columns count from 1."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def shifted(self, offset: int) -> Location:
        """The location `offset` characters further on the same line."""
        return Location(self.path, self.line, self.column + offset)


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a ruleset.

    `code` is stable per kind of problem (E101, W301, ...) so that CI
    configurations and tests can rely on it.
    """

    location: Location
    severity: Severity
    code: str
    message: str
    hint: str | None = field(default=None)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location
        return (loc.path, loc.line, loc.column, self.code, self.message)

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity.value}[{self.code}]: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class PolicyError(Exception):
    """Raised when a ruleset cannot be turned into a model.

    It carries every diagnostic found, sorted by location, never only the
    first one.
    """

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        first = self.diagnostics[0] if self.diagnostics else "no diagnostics"
        super().__init__(str(first))
