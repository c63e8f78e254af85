"""A source that breaks while it is being read, not when it opens.

Two real ways: a SQLite query that fails at row 150 of 199 (json_extract
on malformed JSON is only evaluated as rows are produced, so opening the
source, which asks for no rows, succeeds), and files removed after the
source checked them. Each command stops with a message naming the source
and exit 4, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import exitcodes
from adapters.cli import main
from adapters.ledger import Ledger, sqlite_url
from adapters.sources import SourceReadError, open_source
from dsl.loader import load_ruleset

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "providers" / "fixtures" / "sms_run"
RULESET = FIXTURES / "ruleset.yaml"
AS_OF = "2024-10-01"
BROKEN_ROW = 150


@pytest.fixture
def breaking_sql(tmp_path: Path) -> Path:
    """A source.yaml whose customers query fails at row 150 of 199."""
    database = tmp_path / "data.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            """
            CREATE TABLE customers (id TEXT, meta TEXT, phone TEXT);
            CREATE TABLE invoices (id TEXT, customer_id TEXT, amount TEXT,
                                   due_date TEXT);
            CREATE TABLE payments (invoice_id TEXT, amount TEXT, paid_on TEXT);
            """
        )
        for number in range(1, 200):
            meta = "{broken" if number == BROKEN_ROW else json.dumps({"n": "Ana"})
            customer = f"C{number:03d}"
            connection.execute(
                "INSERT INTO customers VALUES (?, ?, ?)",
                (customer, meta, f"+55119876{number:05d}"),
            )
            connection.execute(
                "INSERT INTO invoices VALUES (?, ?, '100.00', ?)",
                (f"F{number:03d}", customer, AS_OF),
            )
    source = tmp_path / "source.yaml"
    source.write_text(
        """\
kind: sql
url: sqlite:///data.sqlite3
queries:
  customers: >-
    SELECT id, json_extract(meta, '$.n') AS name, phone
    FROM customers ORDER BY id
  invoices: SELECT * FROM invoices ORDER BY customer_id
  payments: SELECT * FROM payments
""",
        encoding="utf-8",
    )
    return source


def invoke(*args: str) -> tuple[int, str, str]:
    # catch_exceptions=False: a traceback would fail the test as itself.
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_reported(code: int, stdout: str, stderr: str) -> None:
    assert code == exitcodes.CONFIG_ERROR, stderr
    assert "query customers: reading failed: malformed JSON" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""  # no partial plan, summary or report


@pytest.mark.parametrize("output_format", ["jsonl", "table"])
def test_plan(breaking_sql: Path, output_format: str) -> None:
    assert_reported(
        *invoke(
            "plan",
            str(RULESET),
            "--data",
            str(breaking_sql),
            "--as-of",
            AS_OF,
            "--format",
            output_format,
        )
    )


def test_explain(breaking_sql: Path) -> None:
    assert_reported(
        *invoke(
            "explain",
            str(RULESET),
            "--data",
            str(breaking_sql),
            "--as-of",
            AS_OF,
            "--customer",
            "C199",  # after the broken row: the read must get there
        )
    )


@pytest.mark.parametrize("dry_run", [True, False])
def test_run(breaking_sql: Path, tmp_path: Path, dry_run: bool) -> None:
    state = tmp_path / "state"
    flags = ["--dry-run"] if dry_run else []

    assert_reported(
        *invoke(
            "run",
            str(RULESET),
            "--data",
            str(breaking_sql),
            "--as-of",
            f"{AS_OF}T10:00",
            "--state-dir",
            str(state),
            *flags,
        )
    )

    assert not (state / "outbox.jsonl").exists()  # nothing was sent
    if not dry_run:
        ledger = Ledger.open(sqlite_url(state / "ledger.sqlite3"))
        assert ledger is not None
        try:
            with ledger.engine.connect() as connection:
                runs = ledger.tables["runs"]
                statuses = [row.status for row in connection.execute(runs.select())]
        finally:
            ledger.close()
        assert statuses == ["aborted"]


def test_diff(breaking_sql: Path) -> None:
    assert_reported(
        *invoke(
            "diff",
            str(RULESET),
            str(RULESET),
            "--data",
            str(breaking_sql),
            "--from",
            AS_OF,
            "--to",
            AS_OF,
        )
    )


def test_a_test_case_on_the_source_fails_with_the_reason(
    breaking_sql: Path, tmp_path: Path
) -> None:
    test_file = tmp_path / "broken.test.yaml"
    test_file.write_text(
        f"""\
ruleset: {RULESET}
cases:
  - name: reads the database
    as_of: "{AS_OF}"
    data: {breaking_sql.name}
    expect:
      - {{customer: C001, segment: todos}}
""",
        encoding="utf-8",
    )

    code, stdout, stderr = invoke("test", str(test_file))

    assert code == exitcodes.PROBLEMS
    assert "reading failed: malformed JSON" in stdout + stderr
    assert "Traceback" not in stdout + stderr


# --- files that change after the source opened ------------------------------


@pytest.mark.parametrize(
    ("folder", "removed"),
    [
        ("csv", "invoices.csv"),
        ("jsonl", "payments.jsonl"),
    ],
)
def test_a_file_removed_after_opening_is_a_read_error(
    tmp_path: Path, folder: str, removed: str
) -> None:
    data = tmp_path / folder
    data.mkdir()
    for name in ("customers", "invoices", "payments"):
        rows = (FIXTURES / "data" / f"{name}.csv").read_text(encoding="utf-8")
        if folder == "csv":
            (data / f"{name}.csv").write_text(rows, encoding="utf-8")
        else:
            header, *lines = rows.splitlines()
            keys = header.split(",")
            objects = [dict(zip(keys, line.split(","), strict=True)) for line in lines]
            (data / f"{name}.jsonl").write_text(
                "".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8"
            )
    source = open_source(data, load_ruleset(RULESET).inputs)

    (data / removed).unlink()

    with pytest.raises(SourceReadError, match=f"{removed}: reading failed"):
        list(source.customers())


@pytest.mark.parametrize(
    ("kind", "example", "ruleset"),
    [
        ("uci_credit_card", "uci/uci_credit_card_taiwan.csv", "varejo"),
        ("lendingclub_loans", "lendingclub/lendingclub_loans_2018q1.csv", "us_loans"),
    ],
)
def test_a_data_set_file_removed_after_opening_is_a_read_error(
    tmp_path: Path, kind: str, example: str, ruleset: str
) -> None:
    original = ROOT / "examples" / example
    copy = tmp_path / original.name
    with original.open("rb") as stream:
        copy.write_bytes(b"".join(stream.readline() for _ in range(5)))
    config = tmp_path / "source.yaml"
    config.write_text(f"kind: {kind}\nfile: {copy.name}\n", encoding="utf-8")
    source = open_source(config, load_ruleset(ROOT / "rulesets" / ruleset).inputs)

    copy.unlink()

    with pytest.raises(SourceReadError, match=f"{copy.name}: reading failed"):
        list(source.customers())
