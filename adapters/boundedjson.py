"""JSON from outside (callbacks, provider answers, data files), with a
bound on nesting.

Python's JSON decoder recurses once per level: a few thousand `[` in a
small body raise RecursionError, which no caller expects. `loads` refuses a
document nested deeper than `MAX_DEPTH` with a ValueError, the error every
caller already handles for JSON that does not parse.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Far deeper than any payload a provider or a data file has.
MAX_DEPTH = 100

# A string (whose brackets do not count) or one bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class TooDeep(ValueError):
    """A JSON document nested deeper than the bound."""


def nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def loads(text: str, *, max_depth: int = MAX_DEPTH, **options: Any) -> Any:
    """`json.loads(text, **options)`, refusing documents nested deeper
    than `max_depth` (TooDeep, a ValueError)."""
    # Counting brackets is cheap; only a document with enough of them to be
    # too deep is scanned token by token.
    brackets = text.count("[") + text.count("{")
    if brackets > max_depth and nesting(text) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return json.loads(text, **options)
