"""`ruleset test`: reading test files, checking plans, coverage, exit codes."""

from __future__ import annotations

import json
import shutil
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.policytest import COVERAGE_KINDS, load_test_file, run_tests
from dsl.diagnostics import PolicyError
from dsl.loader import load_ruleset

ROOT = Path(__file__).resolve().parents[2]
RULESETS = ROOT / "rulesets"
VAREJO = RULESETS / "varejo"

# Every record field varejo declares, so that cases below only say what
# matters to them.
DEFAULTS = """\
defaults:
  customer:
    name: Ana Souza
    first_name: Ana
    phone: "+5511987654321"
    email: ana@example.com
    credit_limit: 1000.00
    whatsapp_opt_in: true
    sms_opt_out: false
    in_negotiation: false
  invoice:
    amount: 150.00
    due_date: "2026-03-12"
    status: open
    payment_link: https://pagar.example/f1
"""

# A case that holds: a pontual customer's WhatsApp reminder on D-3.
PASSING_CASE = """\
  - name: reminder three days before
    as_of: "2026-03-09"
    customer: {id: c1}
    invoices:
      - {id: f1}
    expect:
      segment: pontual
      actions:
        - {step: lembrete, channel: whatsapp, contains: "R$ 150,00"}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def varejo(tmp_path: Path) -> Path:
    """A copy of the varejo policy without its test files."""
    target = tmp_path / "varejo"
    shutil.copytree(VAREJO, target, ignore=shutil.ignore_patterns("tests"))
    (target / "tests").mkdir()
    return target


def write_test(ruleset: Path, cases: str, *, name: str = "a.test.yaml") -> Path:
    path = ruleset / "tests" / name
    path.write_text(DEFAULTS + "cases:\n" + cases, encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` holding `text`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


# -- the example rulesets ---------------------------------------------------


def test_example_rulesets_pass_with_full_coverage() -> None:
    """The done-when of the issue: every segment, step, channel and
    suppression rule of both example policies is exercised by a case."""
    outcome = run_tests([RULESETS])

    assert outcome.ruleset_errors == []
    assert outcome.file_errors == []
    failures = [(r.case.name, r.failures) for r in outcome.failed]
    assert failures == []
    names = sorted(coverage.ruleset for coverage in outcome.coverage)
    assert names == ["us_loans", "varejo"]
    for coverage in outcome.coverage:
        for kind in COVERAGE_KINDS:
            assert coverage.missing(kind) == [], (coverage.ruleset, kind)


def test_cli_min_coverage_100_passes_on_the_examples() -> None:
    code, out, _ = run("test", str(RULESETS), "--min-coverage", "100")
    assert code == 0, out
    assert "0 failed" in out


# -- reading test files -----------------------------------------------------


def test_unknown_key_is_an_error_with_location_and_hint(varejo: Path) -> None:
    path = write_test(
        varejo, PASSING_CASE.replace("segment: pontual", "segmnet: pontual")
    )
    ruleset = load_ruleset(varejo)

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, ruleset)

    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "T101"
    assert diagnostic.location.line == line_of(path, "segmnet")
    assert diagnostic.location.column == 7
    assert diagnostic.hint == "did you mean `segment`?"


def test_unknown_record_field_suggests_a_declared_one(varejo: Path) -> None:
    path = write_test(
        varejo, PASSING_CASE.replace("{id: c1}", "{id: c1, fist_name: Bia}")
    )

    code, out, _ = run("test", str(path))

    assert code == 1
    line = line_of(path, "fist_name")
    assert f"a.test.yaml:{line}:" in out
    assert "error[T101]: unknown key `fist_name` in customer" in out
    assert "did you mean `first_name`?" in out


def test_a_value_of_the_wrong_type_points_at_the_value(varejo: Path) -> None:
    path = write_test(
        varejo, PASSING_CASE.replace("{id: f1}", '{id: f1, due_date: "12/03/2026"}')
    )

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, load_ruleset(varejo))

    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "T103"
    assert diagnostic.location.line == line_of(path, "12/03/2026")
    assert "invoice.due_date" in diagnostic.message
    assert "is not a date" in diagnostic.message


def test_a_misspelt_segment_name_is_caught_before_anything_runs(varejo: Path) -> None:
    path = write_test(
        varejo, PASSING_CASE.replace("segment: pontual", "segment: pontal")
    )

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, load_ruleset(varejo))

    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "T105"
    assert diagnostic.hint == "did you mean `pontual`?"


def test_a_missing_required_field_says_where_to_give_it(varejo: Path) -> None:
    path = varejo / "tests" / "bare.test.yaml"
    path.write_text("cases:\n" + PASSING_CASE, encoding="utf-8")

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, load_ruleset(varejo))

    messages = [d.message for d in raised.value.diagnostics]
    assert any("customer has no `first_name`" in m for m in messages)
    assert any("invoice has no `amount` (declared money)" in m for m in messages)
    assert {d.code for d in raised.value.diagnostics} == {"T104"}


def test_money_is_read_from_the_text_never_through_float(varejo: Path) -> None:
    path = write_test(
        varejo, PASSING_CASE.replace("{id: f1}", "{id: f1, amount: 0.10}")
    )

    test_file = load_test_file(path, load_ruleset(varejo))

    [case] = test_file.cases
    amount = case.customers[0].invoices[0]["amount"]
    assert isinstance(amount, Decimal)
    assert amount == Decimal("0.10")
    assert str(amount) == "0.10"


def test_yaml_11_booleans_are_not_booleans_here(varejo: Path) -> None:
    path = write_test(
        varejo, PASSING_CASE.replace("{id: c1}", "{id: c1, sms_opt_out: no}")
    )

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, load_ruleset(varejo))

    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "T103"
    assert "customer.sms_opt_out 'no' is not a boolean" in diagnostic.message


@pytest.mark.parametrize(
    ("quoted", "unquoted"),
    [
        ("{id: f1}", "{id: f1, due_date: 2026-03-12}"),
        ('as_of: "2026-03-09"', "as_of: 2026-03-09"),
    ],
    ids=["record-field", "as_of"],
)
def test_an_unquoted_date_is_an_error_as_in_policies(
    varejo: Path, quoted: str, unquoted: str
) -> None:
    path = write_test(varejo, PASSING_CASE.replace(quoted, unquoted))

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, load_ruleset(varejo))

    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "T103"
    assert "unquoted date 2026-03" in diagnostic.message
    assert diagnostic.location.line == line_of(path, unquoted)


def test_a_bare_date_is_the_first_instant_of_the_day_in_the_rulesets_zone(
    varejo: Path,
) -> None:
    path = write_test(varejo, PASSING_CASE)

    [case] = load_test_file(path, load_ruleset(varejo)).cases

    assert case.as_of.isoformat() == "2026-03-09T00:00:00-03:00"


# -- checking plans ---------------------------------------------------------


def test_a_failure_names_the_case_and_the_expected_and_actual_values(
    varejo: Path,
) -> None:
    cases = PASSING_CASE.replace("channel: whatsapp", "channel: sms").replace(
        "segment: pontual", "segment: risco"
    )
    path = write_test(varejo, cases)

    code, out, _ = run("test", str(path))

    assert code == 1
    case_line = line_of(path, "- name: reminder three days before")
    assert f"a.test.yaml:{case_line}:5: FAIL reminder three days before" in out
    assert (
        f"a.test.yaml:{line_of(path, 'segment: risco')}:16:"
        " segment: expected risco, got pontual"
    ) in out
    assert "lembrete: channel: expected sms, got whatsapp" in out
    assert "1 case(s): 0 passed, 1 failed" in out


def test_a_missing_phrase_shows_what_the_message_says(varejo: Path) -> None:
    path = write_test(varejo, PASSING_CASE.replace('"R$ 150,00"', '"R$ 151,00"'))

    code, out, _ = run("test", str(path))

    assert code == 1
    assert "message should contain 'R$ 151,00'; it says: 'Oi Ana! Sua fatura" in out


def test_an_action_nobody_expected_fails_unless_the_case_allows_it(
    varejo: Path,
) -> None:
    # Two invoices due the same day: a message for the first, and a "capped"
    # entry (per_day: 1) for the second that the case does not list.
    two_invoices = PASSING_CASE.replace(
        "      - {id: f1}\n", "      - {id: f1}\n      - {id: f2, amount: 60.00}\n"
    )
    strict = write_test(varejo, two_invoices, name="strict.test.yaml")
    loose = write_test(
        varejo,
        two_invoices.replace(
            "      actions:\n", "      exact: false\n      actions:\n"
        ),
        name="loose.test.yaml",
    )

    code, out, _ = run("test", str(strict))
    assert code == 1
    assert (
        "unexpected action lembrete invoice f2: capped by whatsapp (over the cap" in out
    )

    code, out, _ = run("test", str(loose))
    assert code == 0, out


def test_no_action_with_its_reason(varejo: Path) -> None:
    case = PASSING_CASE.replace("{id: c1}", "{id: c1, in_negotiation: true}").replace(
        '{step: lembrete, channel: whatsapp, contains: "R$ 150,00"}',
        "{step: lembrete, decision: suppressed, reason: em_negociacao}",
    )
    path = write_test(varejo, case)
    code, out, _ = run("test", str(path))
    assert code == 0, out

    wrong = write_test(
        varejo, case.replace("reason: em_negociacao", "reason: fatura_encerrada")
    )
    code, out, _ = run("test", str(wrong))
    assert code == 1
    assert "reason: expected 'fatura_encerrada', got 'em_negociacao'" in out


def test_cases_from_a_fixture_data_source(varejo: Path) -> None:
    data = varejo / "tests" / "fixtures" / "book"
    data.mkdir(parents=True)
    header = "id,name,first_name,phone,email,credit_limit,whatsapp_opt_in"
    (data / "customers.csv").write_text(
        f"{header},sms_opt_out,in_negotiation\n"
        "k1,Ana Lima,Ana,+5511987650001,,1000.00,true,false,false\n"
        "k2,Rui Lima,Rui,+5511987650002,,1000.00,false,true,false\n",
        encoding="utf-8",
    )
    (data / "invoices.csv").write_text(
        "id,customer_id,amount,due_date,status,settled_on,payment_link,pix_code\n"
        "n1,k1,80.00,2026-03-12,open,,https://pagar.example/n1,\n"
        "n2,k2,90.00,2026-03-12,open,,https://pagar.example/n2,\n",
        encoding="utf-8",
    )
    path = varejo / "tests" / "book.test.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            cases:
              - name: a small book
                as_of: "2026-03-09"
                data: fixtures/book
                expect:
                  - customer: k1
                    actions:
                      - {step: lembrete, channel: whatsapp, contains: "R$ 80,00"}
                  - customer: k2
                    actions:
                      - {step: lembrete, decision: unreachable}
            """
        ),
        encoding="utf-8",
    )

    code, out, _ = run("test", str(path))

    assert code == 0, out
    assert "1 case(s): 1 passed" in out


def test_a_broken_fixture_source_fails_the_case_with_its_location(varejo: Path) -> None:
    path = varejo / "tests" / "gone.test.yaml"
    path.write_text(
        'cases:\n  - name: no data\n    as_of: "2026-03-09"\n'
        "    data: fixtures/nowhere\n    expect: {customer: k1, segment: pontual}\n",
        encoding="utf-8",
    )

    code, out, _ = run("test", str(path))

    assert code == 1
    assert "gone.test.yaml:4:11: data: " in out
    assert "no such file or folder" in out


# -- coverage and exit codes ------------------------------------------------


def test_coverage_lists_what_no_case_exercised_and_min_coverage_fails(
    varejo: Path,
) -> None:
    write_test(varejo, PASSING_CASE)

    code, out, _ = run("test", str(varejo))
    assert code == 0, out
    # One case: one of three segments, one of eight steps.
    assert "segments 1/3, steps 1/8, channels 1/3, suppressions 0/2" in out
    assert "no case exercised segments: risco, ocasional" in out

    code, out, _ = run("test", str(varejo), "--min-coverage", "30")
    assert code == 1
    assert "coverage of segments in varejo is 33%, below --min-coverage 30" not in out
    assert "coverage of steps in varejo is 12%, below --min-coverage 30" in out


def test_json_output(varejo: Path) -> None:
    write_test(
        varejo,
        PASSING_CASE
        + PASSING_CASE.replace("three days", "again").replace(
            "channel: whatsapp", "channel: sms"
        ),
    )

    code, out, _ = run("test", str(varejo), "--format", "json")

    assert code == 1
    report = json.loads(out)
    assert report["summary"] == {
        "cases": 2,
        "passed": 1,
        "failed": 1,
        "below_min_coverage": [],
    }
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    assert failed[0]["name"] == "reminder again before"
    assert failed[0]["failures"][0]["message"].endswith("expected sms, got whatsapp")
    [coverage] = report["coverage"]
    assert coverage["segments"]["missing"] == ["risco", "ocasional"]


def test_an_invalid_ruleset_exits_4(varejo: Path) -> None:
    write_test(varejo, PASSING_CASE)
    ruleset = varejo / "ruleset.yaml"
    ruleset.write_text(
        ruleset.read_text(encoding="utf-8").replace("segments:", "segmentos:"),
        encoding="utf-8",
    )

    code, out, _ = run("test", str(varejo))

    assert code == 4
    assert "ruleset.yaml:" in out


def test_a_test_file_with_mistakes_exits_1_and_other_files_still_run(
    varejo: Path,
) -> None:
    write_test(varejo, PASSING_CASE, name="good.test.yaml")
    write_test(varejo, PASSING_CASE.replace("as_of:", "as-of:"), name="bad.test.yaml")

    code, out, _ = run("test", str(varejo))

    assert code == 1
    assert "bad.test.yaml:" in out and "unknown key `as-of`" in out
    assert "1 case(s): 1 passed, 0 failed; 1 problem(s) in test files" in out


def test_no_test_files_is_a_failure_not_a_silent_pass(varejo: Path) -> None:
    code, out, _ = run("test", str(varejo))
    assert code == 1
    assert "no test cases found" in out


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("test", str(tmp_path / "nowhere"))
    assert code == 2
    assert "does not exist" in err


@pytest.mark.parametrize("command", ["test", "validate"])
def test_a_missing_default_path_is_a_usage_error(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no rulesets/ here
    code, _, err = run(command)
    assert code == 2
    assert "the default, rulesets/, does not exist here" in err


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31T23:59"])
def test_an_as_of_beyond_the_supported_days_is_a_mistake_in_the_file(
    varejo: Path, as_of: str
) -> None:
    path = write_test(varejo, PASSING_CASE.replace('"2026-03-09"', f'"{as_of}"'))

    with pytest.raises(PolicyError) as raised:
        load_test_file(path, load_ruleset(varejo))

    [diagnostic] = raised.value.diagnostics
    assert diagnostic.location.line == line_of(path, as_of)
    assert "outside the supported days" in diagnostic.message


def test_a_single_file_ruleset_is_named_by_its_test_file(tmp_path: Path) -> None:
    shutil.copy(
        ROOT / "tests" / "adapters" / "fixtures" / "diff" / "ruleset" / "ruleset.yaml",
        tmp_path / "demo.yaml",
    )
    case = textwrap.dedent(
        """\
        cases:
          - name: no history is pontual
            as_of: "2026-03-09"
            customer: {id: c1, first_name: Ana, whatsapp_opt_in: true}
            expect: {segment: pontual, actions: []}
        """
    )
    test_path = tmp_path / "demo.test.yaml"
    test_path.write_text(case, encoding="utf-8")

    code, out, _ = run("test", str(tmp_path))
    assert code == 1
    assert "demo.test.yaml:1:1: error[T105]: tests" in out
    assert "which is not a ruleset" in out

    test_path.write_text("ruleset: demo.yaml\n" + case, encoding="utf-8")
    code, out, _ = run("test", str(tmp_path))
    assert code == 0, out
    assert "diffdemo" in out and "segments 1/2" in out
