"""The benchmark's own pieces, on small sizes: data, floors and the policy tree.

The benchmark itself is not a test (it takes minutes and its numbers depend
on the machine); these check that what it measures is what it claims.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from adapters.commands.planning import parse_as_of
from adapters.sources import open_source
from dsl.diagnostics import Severity
from dsl.loader import check_ruleset, load_ruleset
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset, compile_ruleset
from tests.benchmark.expressions import compare, engine_segmenter, prepare_scopes
from tests.benchmark.floors import parse_only, plain_segment
from tests.benchmark.generate import AS_OF, Dataset, write_dataset
from tests.benchmark.rulesets import write_ruleset_tree

VAREJO = Path(__file__).resolve().parents[2] / "rulesets" / "varejo"


def _digests(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob("*.csv"))
    }


Varejo = tuple[Ruleset, CompiledRuleset]


@pytest.fixture(scope="module")
def varejo() -> Varejo:
    ruleset = load_ruleset(VAREJO)
    return ruleset, compile_ruleset(ruleset)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return write_dataset(tmp_path_factory.mktemp("data"), invoices=600)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a", invoices=300, seed=7)
    again = write_dataset(tmp_path / "b", invoices=300, seed=7)
    other = write_dataset(tmp_path / "c", invoices=300, seed=8)

    assert _digests(first.folder) == _digests(again.folder)
    assert _digests(first.folder) != _digests(other.folder)
    assert first.invoices == 300


def test_counts_match_the_rows_written(small_dataset: Dataset) -> None:
    rows = {}
    for name in ("customers", "invoices", "payments"):
        with (small_dataset.folder / f"{name}.csv").open(newline="") as file:
            rows[name] = sum(1 for _ in csv.reader(file)) - 1  # the header

    assert rows == {
        "customers": small_dataset.customers,
        "invoices": small_dataset.invoices,
        "payments": small_dataset.payments,
    }
    assert 3 <= small_dataset.invoices / small_dataset.customers <= 7


def test_data_is_grouped_by_customer_and_reads_without_problems(
    small_dataset: Dataset, varejo: Varejo
) -> None:
    ruleset, _ = varejo
    source = open_source(small_dataset.folder, ruleset.inputs)

    customers = list(source.customers())

    assert source.problems == []
    assert not any("not in the customers' order" in note for note in source.notes)
    assert len(customers) == small_dataset.customers
    assert sum(len(c.invoices) for c in customers) == small_dataset.invoices
    assert sum(len(c.payments) for c in customers) == small_dataset.payments
    # Grouped input streams: one customer's records at a time.
    assert source.max_records_held <= 1 + 7 + 14


def test_parse_only_reads_every_record(small_dataset: Dataset) -> None:
    assert parse_only(small_dataset.folder) == small_dataset.records


def test_hand_written_segments_agree_with_the_engine(
    small_dataset: Dataset, varejo: Varejo
) -> None:
    ruleset, compiled = varejo
    scopes = prepare_scopes(
        ruleset, compiled, small_dataset.folder, parse_as_of(AS_OF, compiled.zone)
    )
    engine = engine_segmenter(compiled)

    segments = {engine(scope) for scope in scopes}
    result = compare(compiled, scopes, rounds=1, passes=2)

    assert all(engine(scope) == plain_segment(scope) for scope in scopes)
    # The data exercises every segment, so the comparison covers each rule.
    assert segments == {"pontual", "risco", "ocasional"}
    assert result.evaluations == 2 * len(scopes)
    assert result.engine_per_second > 0 and result.plain_per_second > 0


def test_policy_tree_has_fifty_valid_files(tmp_path: Path) -> None:
    directories = write_ruleset_tree(tmp_path, files=50)

    assert len(list(tmp_path.rglob("*.yaml"))) == 50
    names = set()
    for directory in directories:
        model, diagnostics = check_ruleset(directory)
        assert [d for d in diagnostics if d.severity is Severity.ERROR] == []
        assert model is not None
        names.add(model.name)
    assert len(names) == len(directories)


def test_policy_tree_refuses_a_count_it_cannot_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 5"):
        write_ruleset_tree(tmp_path, files=12)
