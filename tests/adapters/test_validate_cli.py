"""`ruleset validate` and `ruleset schema` through the real command line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from adapters.cli import main
from dsl.yamlread import read, to_data

ROOT = Path(__file__).resolve().parents[2]
VAREJO = ROOT / "rulesets" / "varejo"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a copy of the example policy."""
    shutil.copytree(VAREJO, tmp_path / "rulesets" / "varejo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def edit(path: Path, old: str, new: str, count: int = 1) -> str:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    text = text.replace(old, new, count)
    path.write_text(text, encoding="utf-8")
    return text


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1


# Clean runs and exit codes ----------------------------------------------


def test_the_repository_rulesets_validate_clean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    status, out, _ = run("validate")
    assert status == 0, out
    assert "error[" not in out
    assert out.splitlines()[-1].endswith("checked: no problems") or "warning" in out


def test_a_clean_ruleset_exits_0(workdir: Path) -> None:
    status, out, _ = run("validate", "rulesets/varejo")
    assert status == 0
    assert out == "1 ruleset checked: no problems\n"


def test_a_missing_path_is_a_usage_error(workdir: Path) -> None:
    status, _, err = run("validate", "nowhere")
    assert status == 2
    assert "nowhere does not exist" in err


def test_a_path_without_rulesets_is_a_usage_error(workdir: Path) -> None:
    (workdir / "empty").mkdir()
    status, _, err = run("validate", "empty")
    assert status == 2
    assert "no ruleset in empty" in err


def test_a_bad_option_is_a_usage_error(workdir: Path) -> None:
    status, _, _ = run("validate", "--format", "xml")
    assert status == 2


def test_without_a_path_rulesets_is_checked(workdir: Path) -> None:
    status, out, _ = run("validate")
    assert status == 0
    assert out.startswith("1 ruleset checked")
    shutil.rmtree(workdir / "rulesets")
    status, _, err = run("validate")
    assert status == 2 and "does not exist" in err


# Mutations of the example policy ---------------------------------------

RULESET = "rulesets/varejo/ruleset.yaml"
TEMPLATES = "rulesets/varejo/templates.yaml"
INPUTS = "rulesets/varejo/inputs.yaml"

Mutation = Callable[[Path], tuple[str, int, str]]


def duplicate_key(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, "frequency:\n", "segments: []\nfrequency:\n")
    return RULESET, line_of(text, "segments: []"), "E104"


def misspelt_field(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, "when: customer.in_negotiation", "when: customer.in_negociation")
    return RULESET, line_of(text, "in_negociation"), "E301"


def string_for_money(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    old = "when: invoice.amount_due >= 150.00"
    text = edit(path, old, 'when: invoice.amount_due >= "150.00"')
    return RULESET, line_of(text, '"150.00"'), "E302"


def misspelt_placeholder(root: Path) -> tuple[str, int, str]:
    path = root / TEMPLATES
    text = edit(path, "{customer.first_name}", "{customer.firstname}")
    return TEMPLATES, line_of(text, "firstname"), "E301"


def suppress_typo(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, "suppress:\n", "suppres:\n")
    return RULESET, line_of(text, "suppres:"), "E110"


def on_as_key(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, "    mon-fri:", '    on: "08:00-09:00"\n    mon-fri:')
    return RULESET, line_of(text, "    on:"), "E107"


def no_as_boolean(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, "when: true", "when: no")
    return RULESET, line_of(text, "when: no"), "E107"


def unquoted_date(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, '- "2005-02-07"', "- 2005-02-07")
    return RULESET, line_of(text, "- 2005-02-07"), "E108"


def number_for_name(root: Path) -> tuple[str, int, str]:
    path = root / RULESET
    text = edit(path, "template: vence_hoje", "template: 2024")
    return RULESET, line_of(text, "template: 2024"), "E112"


def unknown_type(root: Path) -> tuple[str, int, str]:
    path = root / INPUTS
    text = edit(path, "due_date: date", "due_date: dat")
    return INPUTS, line_of(text, "due_date: dat"), "E124"


@pytest.mark.parametrize(
    "mutation",
    [
        duplicate_key,
        misspelt_field,
        string_for_money,
        misspelt_placeholder,
        suppress_typo,
        on_as_key,
        no_as_boolean,
        unquoted_date,
        number_for_name,
        unknown_type,
    ],
)
def test_a_mutated_example_fails_on_the_right_line(
    workdir: Path, mutation: Mutation
) -> None:
    path, line, code = mutation(workdir)
    status, out, _ = run("validate")
    assert status == 1
    assert f"{path}:{line}:" in out
    reported = [row for row in out.splitlines() if row.startswith(f"{path}:{line}:")]
    assert any(f"error[{code}]" in row for row in reported), out
    assert "Traceback" not in out


# Output formats --------------------------------------------------------


def test_text_lists_errors_sorted_then_warnings_then_a_summary(workdir: Path) -> None:
    edit(workdir / RULESET, "currency: BRL", "currency: BRX")
    edit(workdir / RULESET, "  sms:\n    address", "  sms:\n    kind: sms\n    adress")
    edit(workdir / TEMPLATES, "vence_hoje:\n", 'sobra:\n  sms: "oi"\nvence_hoje:\n')
    status, out, _ = run("validate", "rulesets")
    rows = out.splitlines()
    assert status == 1
    errors = [r for r in rows if ": error[" in r]
    warnings = [r for r in rows if ": warning[" in r]
    assert rows == errors + warnings + [rows[-1]]
    assert len(errors) >= 2 and len(warnings) == 1

    def key(row: str) -> tuple[str, int, int]:
        path, line, column = row.split(":")[:3]
        return path, int(line), int(column)

    assert errors == sorted(errors, key=key)
    line = line_of((workdir / RULESET).read_text(), "BRX")
    assert errors[0].startswith(
        f"rulesets/varejo/ruleset.yaml:{line}:11: error[E122]: unknown currency `BRX`"
    )
    assert rows[-1] == (f"1 ruleset checked: {len(errors)} errors, 1 warning")


def test_warnings_alone_pass_unless_strict(workdir: Path) -> None:
    edit(workdir / TEMPLATES, "vence_hoje:\n", 'sobra:\n  sms: "oi"\nvence_hoje:\n')
    status, out, _ = run("validate")
    assert status == 0
    assert "warning[W401]: template `sobra` is never used" in out
    status, _, _ = run("validate", "--strict")
    assert status == 1


def test_json_is_a_list_of_objects(workdir: Path) -> None:
    text = edit(workdir / RULESET, "currency: BRL", "currency: BRX")
    status, out, err = run("validate", "--format", "json")
    assert status == 1
    items = json.loads(out)
    errors = [i for i in items if i["severity"] == "error"]
    assert errors == [
        {
            "path": RULESET,
            "line": line_of(text, "BRX"),
            "column": 11,
            "severity": "error",
            "code": "E122",
            "message": "unknown currency `BRX`",
            "hint": "e.g. BRL",
        }
    ]
    assert "1 error" in err


def test_json_reports_sms_segment_counts(workdir: Path) -> None:
    status, out, _ = run("validate", "--format", "json")
    assert status == 0
    infos = [i for i in json.loads(out) if i["severity"] == "info"]
    assert {i["sms"]["template"] for i in infos} == {
        "lembrete",
        "vence_hoje",
        "atraso",
        "atraso_parcelamento",
    }
    assert all(i["sms"]["segments"] <= i["sms"]["max_segments"] for i in infos)


def test_github_annotations(workdir: Path) -> None:
    text = edit(workdir / RULESET, "currency: BRL", "currency: BRX")
    status, out, _ = run("validate", "--format", "github")
    assert status == 1
    line = line_of(text, "BRX")
    assert out.splitlines()[0] == (
        f"::error file={RULESET},line={line},col=11,title=E122::"
        "unknown currency `BRX` (e.g. BRL)"
    )


def test_github_annotations_escape_their_data(workdir: Path) -> None:
    edit(workdir / RULESET, "ruleset: varejo", "ruleset: varejo\nfoo%: 1")
    _, out, _ = run("validate", "--format", "github")
    assert "unknown key `foo%25`" in out


def test_absolute_paths_below_the_working_directory_are_shown_relative(
    workdir: Path,
) -> None:
    edit(workdir / RULESET, "currency: BRL", "currency: BRX")
    _, out, _ = run("validate", str(workdir / "rulesets"))
    assert out.startswith("rulesets/varejo/ruleset.yaml:")


def test_every_ruleset_under_the_paths_is_checked(workdir: Path) -> None:
    shutil.copytree(workdir / "rulesets/varejo", workdir / "rulesets/copia")
    edit(workdir / "rulesets/copia/ruleset.yaml", "currency: BRL", "currency: BRX")
    status, out, _ = run("validate", "rulesets/varejo", "rulesets")
    assert status == 1
    assert out.splitlines()[-1] == "2 rulesets checked: 1 error, 0 warnings"


def test_a_broken_file_is_reported_not_raised(workdir: Path) -> None:
    (workdir / RULESET).write_bytes(b"ruleset: varejo\nname: Jo\xe3o\n")
    status, out, _ = run("validate")
    assert status == 1
    assert "rulesets/varejo/ruleset.yaml:2:9: error[E102]" in out


def test_a_ruleset_saved_as_utf16_is_found_and_reported(workdir: Path) -> None:
    # Alone in its folder: found by its `ruleset:` key all the same.
    folder = workdir / "utf16"
    folder.mkdir()
    (folder / "politica.yaml").write_bytes("ruleset: x\n".encode("utf-16"))
    status, out, _ = run("validate", "utf16")
    assert status == 1
    assert "utf16/politica.yaml:1:1: error[E102]" in out
    assert "it is UTF-16LE text" in out
    assert out.splitlines()[-1] == "1 ruleset checked: 1 error, 0 warnings"


# The schema ------------------------------------------------------------


def test_schema_prints_a_valid_draft_2020_12_schema() -> None:
    status, out, _ = run("schema")
    assert status == 0
    schema = json.loads(out)
    Draft202012Validator.check_schema(schema)
    assert (
        out == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def test_the_example_policy_passes_the_printed_schema() -> None:
    _, out, _ = run("schema")
    schema = json.loads(out)
    merged = {}
    for name in ("ruleset.yaml", "inputs.yaml", "templates.yaml"):
        root, problems = read(name, (VAREJO / name).read_bytes())
        assert problems == [] and root is not None
        merged[name] = to_data(root)
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(merged["ruleset.yaml"])) == []
    inputs = {**schema, "$ref": "#/$defs/inputs"}
    del inputs["required"]
    templates = {**schema, "$ref": "#/$defs/templates"}
    del templates["required"]
    assert list(Draft202012Validator(inputs).iter_errors(merged["inputs.yaml"])) == []
    assert (
        list(Draft202012Validator(templates).iter_errors(merged["templates.yaml"]))
        == []
    )


def test_the_schema_describes_every_top_level_key() -> None:
    _, out, _ = run("schema")
    fragment = json.loads(out)["$defs"]["fragment"]["properties"]
    for name, prop in fragment.items():
        described = "description" in prop or "$ref" in prop
        assert described, name


# Many rulesets -----------------------------------------------------------


def single_file_varejo(name: str) -> str:
    """The example policy as one file, with its inputs and templates inline."""
    text = (VAREJO / "ruleset.yaml").read_text(encoding="utf-8")
    for key in ("inputs", "templates"):
        body = (VAREJO / f"{key}.yaml").read_text(encoding="utf-8")
        indented = "".join("  " + line for line in body.splitlines(keepends=True))
        text = text.replace(f"{key}: {key}.yaml\n", f"{key}:\n{indented}")
    return text.replace("ruleset: varejo", f"ruleset: {name}")


def test_fifty_ruleset_files_in_one_run(tmp_path: Path) -> None:
    """Timed by hand for the issue's closing note; no time is asserted."""
    for number in range(50):
        path = tmp_path / f"varejo_{number:02}.yaml"
        path.write_text(single_file_varejo(f"varejo_{number:02}"), encoding="utf-8")
    status, out, _ = run("validate", str(tmp_path))
    assert status == 0, out
    assert out == "50 rulesets checked: no problems\n"
