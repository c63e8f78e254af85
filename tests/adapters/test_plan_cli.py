"""`ruleset plan` and `ruleset explain` on the engine's test policy and data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from adapters import exitcodes
from adapters.cli import main
from adapters.commands.planning import parse_as_of

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "engine" / "fixtures"
POLICY = str(FIXTURES / "regua")
DATA = str(FIXTURES / "regua_data")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def run(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def plan_lines(*extra: str) -> list[dict[str, object]]:
    code, out, err = run("plan", POLICY, "--data", DATA, *extra)
    assert code == 0, err
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


def test_the_plan_is_canonical_json_lines_with_the_header_first() -> None:
    code, out, _ = run("plan", POLICY, "--data", DATA, "--as-of", "2024-11-19T10:00")
    assert code == 0
    lines = out.decode("utf-8").split("\n")
    assert lines[-1] == ""  # one newline after the last line
    records = [json.loads(line) for line in lines[:-1]]
    header = records[0]
    assert header["ruleset"] == "regua" and header["plan_format"] == 1
    assert header["as_of"] == "2024-11-19T10:00:00-03:00"
    assert str(header["input_digest"]).startswith("sha256:")
    for line, record in zip(lines, records, strict=False):
        assert line == json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    customers = [r["customer"] for r in records[1:]]
    assert customers == sorted(customers)
    assert {r["kind"] for r in records[1:]} == {"message", "offer", "credit"}


def test_the_plan_for_the_test_data() -> None:
    actions = plan_lines("--as-of", "2024-11-19T10:00")[1:]
    summary = sorted(
        (str(a["customer"]), str(a["kind"]), str(a["decision"]), str(a["step"]))
        for a in actions
    )
    assert summary == [
        ("c1", "message", "send", "lembrete"),
        ("c2", "message", "send", "lembrete"),
        ("c3", "message", "unreachable", "lembrete"),
        ("c4", "message", "suppressed", "vencimento"),
        ("c5", "credit", "flag", "None"),
        ("c5", "message", "send", "atraso"),
        ("c5", "message", "send", "atraso"),
        ("c5", "offer", "offer", "atraso"),
        ("c5", "offer", "offer", "atraso"),
    ]
    [bruno] = [a for a in actions if a["customer"] == "c2"]
    message = bruno["message"]
    assert isinstance(message, dict)
    assert message["body"] == (
        "Olá, Bru {c} <script>alert(1)</script> fim. Valor: R$\xa0250,00."
    )
    assert "<script>" not in message["html"]


@pytest.mark.parametrize(
    ("when", "instant"),
    [
        ("2024-11-19", "2024-11-19T00:00:00-03:00"),
        ("2024-11-19T10:30", "2024-11-19T10:30:00-03:00"),
        ("2024-11-19T01:30:00Z", "2024-11-18T22:30:00-03:00"),
        ("2024-11-19T10:30:00+01:00", "2024-11-19T06:30:00-03:00"),
        # Midnight did not exist on 2018-11-04 in São Paulo.
        ("2018-11-04", "2018-11-04T01:00:00-02:00"),
    ],
)
def test_as_of(when: str, instant: str) -> None:
    assert parse_as_of(when, SAO_PAULO).isoformat() == instant


def test_as_of_defaults_to_now() -> None:
    assert parse_as_of(None, SAO_PAULO).tzinfo is not None


def test_a_bad_as_of_is_a_usage_error() -> None:
    with pytest.raises(click.BadParameter):
        parse_as_of("19/11/2024", SAO_PAULO)
    code, _, err = run("plan", POLICY, "--data", DATA, "--as-of", "amanhã")
    assert code == exitcodes.USAGE
    assert "'amanhã' is not an ISO date" in err


@pytest.mark.parametrize(
    "when", ["9999-12-31T23:59", "0001-01-01", "9999-12-31T23:59+05:00", "1899-12-31"]
)
@pytest.mark.parametrize("command", ["plan", "explain", "run"])
def test_an_as_of_beyond_the_supported_days_is_a_usage_error(
    command: str, when: str, tmp_path: Path
) -> None:
    extra = {
        "explain": ["--customer", "c1"],
        "run": ["--dry-run", "--state-dir", str(tmp_path)],
    }.get(command, [])
    code, _, err = run(command, POLICY, "--data", DATA, "--as-of", when, *extra)
    assert code == exitcodes.USAGE
    assert "outside the supported days (1900-01-01 to 2199-12-31)" in err


def test_the_ends_of_the_supported_days_plan() -> None:
    for when in ("1900-01-01", "2199-12-31T23:59"):
        assert plan_lines("--as-of", when)[0]["ruleset"] == "regua"


def test_since_beyond_the_supported_days_is_a_usage_error() -> None:
    code, _, err = run("plan", POLICY, "--data", DATA, "--since", "0001-01-01")
    assert code == exitcodes.USAGE
    assert "--since" in err and "outside the supported days" in err


@pytest.mark.parametrize(
    "target",
    [
        "missing-folder/plan.jsonl",
        pytest.param(
            "/dev/full",
            marks=pytest.mark.skipif(
                not Path("/dev/full").exists(), reason="no /dev/full here"
            ),
        ),
    ],
)
def test_an_output_file_that_cannot_be_written_is_a_clear_error(
    target: str, tmp_path: Path
) -> None:
    path = target if target.startswith("/") else str(tmp_path / target)
    for output_format in ("jsonl", "table"):
        code, _, err = run(
            "plan", POLICY, "--data", DATA, "--format", output_format, "-o", path
        )
        assert code == exitcodes.USAGE
        assert f"error: --output {path}: cannot write the file:" in err


def test_output_file_and_table(tmp_path: Path) -> None:
    target = tmp_path / "plan.jsonl"
    code, out, _ = run(
        "plan", POLICY, "--data", DATA, "--as-of", "2024-11-19T10:00", "-o", str(target)
    )
    assert code == 0 and out == b""
    assert len(target.read_text(encoding="utf-8").splitlines()) == 10

    code, out, _ = run(
        "plan",
        POLICY,
        "--data",
        DATA,
        "--as-of",
        "2024-11-19T10:00",
        "--format",
        "table",
    )
    assert code == 0
    text = out.decode("utf-8")
    assert "Customers planned: 6" in text
    assert "  (no segment)                   1" in text
    assert "  atraso                whatsapp           2  R$\xa00,16" in text
    assert "vencimento            suppressed         1  negociando" in text
    assert "no address; no consent; phone number has the wrong length" in text, (
        "rejection reasons are grouped without the address"
    )
    assert "[c1 lembrete whatsapp] Oi Ana, sua fatura de R$\xa0600,00" in text


def test_an_invalid_ruleset_exits_4_with_its_diagnostics(tmp_path: Path) -> None:
    target = tmp_path / "regua"
    shutil.copytree(FIXTURES / "regua", target)
    policy = target / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(text.replace("score >= 80", "scor >= 80"), encoding="utf-8")
    code, out, err = run("plan", str(target), "--data", DATA)
    assert code == exitcodes.CONFIG_ERROR and out == b""
    assert "ruleset.yaml:" in err and "error[E301]" in err
    assert "the ruleset is not valid" in err


def test_a_bad_data_source_exits_4(tmp_path: Path) -> None:
    code, out, err = run("plan", POLICY, "--data", str(tmp_path))
    assert code == exitcodes.CONFIG_ERROR and out == b""
    assert err.startswith(f"error: --data {tmp_path}: ")


@pytest.fixture
def bad_data(tmp_path: Path) -> Path:
    """The test data with one invoice whose due date cannot be read."""
    target = tmp_path / "data"
    shutil.copytree(FIXTURES / "regua_data", target)
    invoices = target / "invoices.csv"
    text = invoices.read_text(encoding="utf-8")
    invoices.write_text(text.replace("i3,c3,80.00,2024-11-21", "i3,c3,80.00,21/11"))
    return target


def test_bad_records_stop_the_plan_by_default(bad_data: Path) -> None:
    code, out, err = run(
        "plan", POLICY, "--data", str(bad_data), "--as-of", "2024-11-19"
    )
    assert code == exitcodes.INPUT_ERRORS and out == b""
    assert "bad record: invoices.csv:4 (i3): " in err
    assert "no plan written" in err


def test_bad_records_can_be_skipped(bad_data: Path) -> None:
    code, out, err = run(
        "plan",
        POLICY,
        "--data",
        str(bad_data),
        "--as-of",
        "2024-11-19T10:00",
        "--on-bad-record",
        "skip",
    )
    assert code == 0
    assert "bad record: invoices.csv:4 (i3): " in err
    actions = [json.loads(line) for line in out.splitlines()[1:]]
    # c3's only invoice is bad: c3 is held, the others are planned.
    c3 = [a["decision"] for a in actions if a["customer"] == "c3"]
    assert c3 == ["held"]
    assert any(a["customer"] == "c1" and a["decision"] == "send" for a in actions)


def test_explain_one_customer() -> None:
    code, out, _ = run(
        "explain",
        POLICY,
        "--data",
        DATA,
        "--customer",
        "c5",
        "--as-of",
        "2024-11-19T10:00",
    )
    assert code == 0
    lines = out.decode("utf-8").splitlines()
    assert lines[0] == "customer c5, ruleset regua"
    assert any(
        line.startswith("  h5: due 2024-06-10, amount R$\xa0100,00, paid R$\xa0100,00")
        for line in lines
    )
    assert "  history.max_days_late(12 months) = 40" in lines
    assert "  risco: history.max_days_late(12 months) > 30 -> matched" in lines
    assert any(line.startswith("credit: limit R$\xa050,00") for line in lines)
    assert "  i5 risco/lembrete (D-3) on 2024-11-15: before 2024-11-17" in lines
    assert any(line.startswith("  i5 risco/mesa (D+10 business) on ") for line in lines)


def test_explain_an_unknown_customer_exits_2() -> None:
    code, out, err = run("explain", POLICY, "--data", DATA, "--customer", "c99")
    assert code == exitcodes.USAGE and out == b""
    assert f"customer 'c99' is not in {DATA}" in err


# -- the same bytes anywhere ------------------------------------------------------

ENVIRONMENTS = [
    {"TZ": "UTC", "LANG": "C", "LC_ALL": "C", "PYTHONHASHSEED": "0"},
    {
        "TZ": "America/Sao_Paulo",
        "LANG": "pt_BR.UTF-8",
        "LC_ALL": "pt_BR.UTF-8",
        "PYTHONHASHSEED": "1",
    },
    {
        "TZ": "Asia/Tokyo",
        "LANG": "en_US.ISO-8859-1",
        "LC_ALL": "en_US.ISO-8859-1",
        "PYTHONHASHSEED": "4242",
    },
]


def test_the_plan_is_byte_identical_across_tz_locale_and_hash_seed() -> None:
    script = Path(sys.executable).with_name("ruleset")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from adapters.cli import main; main()"]
    )
    outputs = set()
    for environment in ENVIRONMENTS:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("TZ", "LANG", "LC_ALL", "LANGUAGE", "PYTHONHASHSEED")
        }
        env.update(environment)
        result = subprocess.run(
            [
                *command,
                "plan",
                POLICY,
                "--data",
                DATA,
                "--as-of",
                "2024-11-15T10:00:00-03:00",
            ],
            env=env,
            capture_output=True,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
        outputs.add(result.stdout)
    assert len(outputs) == 1
    plan = outputs.pop().decode("utf-8")
    # Locale-dependent text did come out, the same each time: a holiday's
    # name (the `holidays` package follows LANG unless told) and money.
    assert "closed on holidays (2024-11-15: Proclamação da República)" in plan
    assert "sua fatura de R$\xa01.000,00 vence em 15/11" in plan


def test_error_locations_do_not_depend_on_how_the_ruleset_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Carla's income of 800.00 makes the credit limit divide by zero: her
    # plan is one error action, whose location names the policy file.
    policy = tmp_path / "policies" / "regua"
    shutil.copytree(POLICY, policy)
    ruleset = policy / "ruleset.yaml"
    text = ruleset.read_text(encoding="utf-8").replace(
        "limit: min(customer.income * 0.5, 5000.00)",
        "limit: customer.income / (customer.income - 800.00)",
    )
    ruleset.write_text(text, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    outputs = []
    for folder, given in [
        (tmp_path, "policies/regua"),
        (tmp_path, "./policies/regua/"),
        (tmp_path, "policies/regua/ruleset.yaml"),
        (elsewhere, str(policy)),
        (elsewhere, "../policies/regua"),
    ]:
        monkeypatch.chdir(folder)
        code, out, err = run("plan", given, "--data", DATA, "--as-of", "2024-11-19")
        assert code == 0, err
        outputs.append(out)

    assert len(set(outputs)) == 1
    errors = [
        json.loads(line)
        for line in outputs[0].decode("utf-8").splitlines()
        if '"decision":"error"' in line
    ]
    assert [e["why"]["location"] for e in errors] == ["ruleset.yaml:101:10"]
