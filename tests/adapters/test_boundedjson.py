"""JSON from outside with a bound on nesting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.boundedjson import TooDeep, loads, nesting


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "\\"[[["]', 1),  # brackets inside strings do not nest
    ],
)
def test_nesting_counts_arrays_and_objects_only(text: str, depth: int) -> None:
    assert nesting(text) == depth


def test_a_document_deeper_than_the_bound_is_a_value_error() -> None:
    with pytest.raises(TooDeep, match="deeper than 5 levels"):
        loads("[" * 6 + "]" * 6, max_depth=5)
    with pytest.raises(ValueError):
        loads("[" * 100_000 + "]" * 100_000)


def test_at_the_bound_and_with_many_flat_brackets_it_parses() -> None:
    assert loads("[" * 5 + "]" * 5, max_depth=5) == [[[[[]]]]]
    flat = "[" + ",".join(["[]"] * 1000) + "]"
    assert len(loads(flat, max_depth=5)) == 1000
    assert loads('{"a": 1.10}', parse_float=Decimal) == {"a": Decimal("1.10")}
