"""`--outcome FIELD`: the outcome rate per segment, in `ruleset plan
--format table` and the `ruleset run` summary, on the UCI data."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import exitcodes
from adapters.cli import main
from adapters.outcome import OutcomeFieldError, OutcomeTally, outcome_field
from engine.planner import CustomerPlan, CustomerTrace
from engine.records import CustomerRecords
from tests.adapters.fixtures.schemas import make_schema

ROOT = Path(__file__).resolve().parents[2]
VAREJO = str(ROOT / "rulesets" / "varejo")
UCI_FILE = ROOT / "examples" / "uci" / "uci_credit_card_taiwan.csv"
CUSTOMERS = 300


def customer(
    segment: str | None, value: bool | None
) -> tuple[CustomerRecords, CustomerPlan]:
    records = CustomerRecords({"id": "c", "defaulted": value})
    trace = CustomerTrace("c", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.date.min)
    return records, CustomerPlan("c", segment, [], trace)


def test_the_tally_counts_customers_outcomes_and_rates_per_segment() -> None:
    tally = OutcomeTally("defaulted")
    for segment, value in [
        ("risco", True),
        ("risco", True),
        ("risco", False),
        ("pontual", False),
        ("pontual", None),  # empty: counted apart, out of the rate
        (None, True),
    ]:
        tally.add(*customer(segment, value))

    rows = [
        (r.segment, r.customers, r.outcome, r.unknown, r.rate) for r in tally.rows()
    ]

    assert rows == [
        ("pontual", 2, 0, 1, Decimal("0.0")),
        ("risco", 3, 2, 0, Decimal("66.7")),
        ("(no segment)", 1, 1, 0, Decimal("100.0")),
        ("all", 6, 3, 1, Decimal("60.0")),
    ]
    assert tally.lines()[1].split() == ["segment", "customers", "true", "rate", "empty"]


SCHEMA = make_schema(
    {
        "customer": {
            "id": "string",
            "name": "string",
            "defaulted": "bool?",
            "late": "bool",
        }
    }
)


@pytest.mark.parametrize("name", ["defaulted", "customer.defaulted", "late"])
def test_a_bool_customer_field_is_accepted(name: str) -> None:
    assert outcome_field(SCHEMA, name) == name.removeprefix("customer.")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("defaulted_next", "declares no customer field 'defaulted_next'"),
        ("name", "customer.name is string, not bool"),
    ],
)
def test_other_fields_are_refused_naming_the_bool_ones(name: str, message: str) -> None:
    with pytest.raises(OutcomeFieldError, match=message) as error:
        outcome_field(SCHEMA, name)
    assert "bool customer fields: defaulted, late" in str(error.value)


# --- the commands on the UCI data ------------------------------------------


@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """The first customers of the UCI file, and how many of them defaulted."""
    folder = tmp_path_factory.mktemp("uci")
    (folder / "source.yaml").write_text(
        f"kind: uci_credit_card\nfile: {UCI_FILE}\nlimit: {CUSTOMERS}\n",
        encoding="utf-8",
    )
    with UCI_FILE.open(encoding="utf-8", newline="") as stream:
        rows = list(itertools.islice(csv.DictReader(stream), CUSTOMERS))
    return str(folder / "source.yaml"), sum(row["target"] == "1" for row in rows)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def outcome_rows(lines: list[str], title: str) -> dict[str, list[str]]:
    """The rows of the tally under `title`, by segment."""
    start = lines.index(title) + 2
    rows: dict[str, list[str]] = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        segment, *numbers = line.split()
        rows[segment] = numbers
    return rows


def check_rows(rows: dict[str, list[str]], defaulted: int) -> None:
    assert rows["all"][:2] == [str(CUSTOMERS), str(defaulted)]
    segments = [numbers for name, numbers in rows.items() if name != "all"]
    assert len(segments) >= 2  # the policy does split these customers
    assert sum(int(n[0]) for n in segments) == CUSTOMERS
    assert sum(int(n[1]) for n in segments) == defaulted
    for customers, true, rate in (n[:3] for n in rows.values()):
        expected = (Decimal(100 * int(true)) / int(customers)).quantize(Decimal("0.1"))
        assert rate == f"{expected}%"


def test_plan_table_shows_the_default_rate_per_segment(uci: tuple[str, int]) -> None:
    data, defaulted = uci

    code, stdout, stderr = invoke(
        "plan",
        VAREJO,
        "--data",
        data,
        "--as-of",
        "2005-10-07",
        "--format",
        "table",
        "--outcome",
        "defaulted_next_month",
    )

    assert code == 0, stderr
    lines = stdout.splitlines()
    check_rows(
        outcome_rows(lines, "Outcome defaulted_next_month by segment"), defaulted
    )


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_the_run_summary_shows_segments_rates_and_sample_messages(
    uci: tuple[str, int], tmp_path: Path, output_format: str
) -> None:
    data, defaulted = uci

    code, stdout, stderr = invoke(
        "run",
        VAREJO,
        "--data",
        data,
        "--as-of",
        "2005-10-07T10:00",
        "--dry-run",
        "--state-dir",
        str(tmp_path),
        "--outcome",
        "defaulted_next_month",
        "--format",
        output_format,
    )

    assert code == 0, stderr
    if output_format == "json":
        report = json.loads(stdout)
        assert sum(s["customers"] for s in report["segments"]) == CUSTOMERS
        [everyone] = [s for s in report["outcome"]["segments"] if s["segment"] == "all"]
        assert (everyone["customers"], everyone["outcome"]) == (CUSTOMERS, defaulted)
        assert len(report["samples"]) == 3
        assert all(sample["body"] for sample in report["samples"])
        return
    lines = stdout.splitlines()
    assert lines[lines.index(f"customers by segment ({CUSTOMERS}):") + 1].startswith(
        "  "
    )
    check_rows(
        outcome_rows(lines, "Outcome defaulted_next_month by segment"), defaulted
    )
    samples = lines[lines.index("sample messages:") + 1 :][:3]
    assert all(line.startswith("  [") and "R$" in line for line in samples)


def test_without_outcome_the_run_summary_still_shows_segments_and_samples(
    uci: tuple[str, int], tmp_path: Path
) -> None:
    data, _ = uci

    code, stdout, _ = invoke(
        "run",
        VAREJO,
        "--data",
        data,
        "--as-of",
        "2005-10-07T10:00",
        "--dry-run",
        "--state-dir",
        str(tmp_path),
    )

    assert code == 0
    assert f"customers by segment ({CUSTOMERS}):" in stdout.splitlines()
    assert "sample messages:" in stdout.splitlines()
    assert "Outcome" not in stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "table", "--outcome", "first_name"], "is string, not bool"),
        (["--format", "table", "--outcome", "defaulted"], "declares no customer"),
        (["--outcome", "defaulted_next_month"], "add --format table"),
    ],
)
def test_plan_usage_errors(
    uci: tuple[str, int], extra: list[str], message: str
) -> None:
    data, _ = uci

    code, stdout, stderr = invoke("plan", VAREJO, "--data", data, *extra)

    assert code == exitcodes.USAGE
    assert message in stderr
    assert stdout == ""


def test_run_refuses_a_field_that_is_not_bool(uci: tuple[str, int]) -> None:
    data, _ = uci

    code, _, stderr = invoke(
        "run", VAREJO, "--data", data, "--dry-run", "--outcome", "credit_limit"
    )

    assert code == exitcodes.USAGE
    assert "customer.credit_limit is money, not bool" in stderr
