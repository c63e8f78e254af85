"""Loading rulesets: files, merging, structure, model building."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from dsl.build import REQUIRED_FIELDS
from dsl.diagnostics import PolicyError, Severity
from dsl.loader import check_ruleset, find_rulesets, load_ruleset
from dsl.model import Offset, TimeRange
from dsl.types import MONEY, STRING
from tests.dsl.policy_text import MINI, check_text, codes, only, place, replaced

ROOT = Path(__file__).resolve().parents[2]
VAREJO = ROOT / "rulesets" / "varejo"


@pytest.fixture
def varejo(tmp_path: Path) -> Path:
    """A copy of the example policy that a test may change."""
    target = tmp_path / "varejo"
    shutil.copytree(VAREJO, target)
    return target


# The example policy ---------------------------------------------------


def test_the_example_policy_loads_into_the_full_model() -> None:
    ruleset = load_ruleset(VAREJO)

    assert (ruleset.name, ruleset.timezone, ruleset.locale, ruleset.currency) == (
        "varejo",
        "America/Sao_Paulo",
        "pt_BR",
        "BRL",
    )
    assert ruleset.inputs.invoice["amount"].type == MONEY
    assert ruleset.inputs.customer["phone"].type == STRING.as_nullable()
    assert ruleset.inputs.customer["name"].max_length == 40
    assert ruleset.calendar.holidays == "BR"
    assert ruleset.calendar.extra_holidays == (dt.date(2005, 2, 7), dt.date(2005, 2, 8))
    assert ruleset.windows["comercial"].hours[5] == (
        TimeRange(dt.time(9), dt.time(14)),
    )
    assert 6 not in ruleset.windows["comercial"].hours
    assert ruleset.delivery.catch_up_days == 2
    assert ruleset.channels["sms"].kind == "sms"
    assert ruleset.channels["sms"].cost == Decimal("0.05")
    assert ruleset.channels["whatsapp"].consent is not None
    assert [s.name for s in ruleset.segments] == ["pontual", "risco", "ocasional"]
    assert [s.ladder for s in ruleset.segments] == ["pontual", "risco", "ocasional"]
    assert ruleset.scorecard is not None
    assert [g.min_score for g in ruleset.scorecard.grades] == [80, 40, 0]
    assert ruleset.credit is not None and ruleset.credit.limit.type == MONEY
    assert [s.name for s in ruleset.suppressions] == [
        "fatura_encerrada",
        "em_negociacao",
    ]
    assert ruleset.offers["parcelamento"].instalments == 3
    steps = ruleset.ladders["risco"].steps
    assert [s.offset for s in steps] == [
        Offset(-3, False),
        Offset(0, False),
        Offset(2, True),
        Offset(10, True),
    ]
    assert steps[3].escalate == "mesa_de_negociacao" and steps[3].channels == ()
    email = ruleset.templates["atraso"].variants["email"]
    assert email.subject is not None
    assert ruleset.files == ("inputs.yaml", "ruleset.yaml", "templates.yaml")
    assert len(ruleset.digest) == 64


def test_same_day_only_is_read_per_step(tmp_path: Path) -> None:
    text = replaced(
        "template: lembrete", "template: lembrete\n      same_day_only: true"
    )
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None, diagnostics
    assert ruleset.ladders["todos"].steps[0].same_day_only is True
    plain, _ = check_text(tmp_path, MINI)
    assert plain is not None
    assert plain.ladders["todos"].steps[0].same_day_only is False
    varejo = load_ruleset(VAREJO).ladders["risco"].steps
    assert [s.name for s in varejo if s.same_day_only] == ["vencimento"]


def test_the_example_policy_is_clean() -> None:
    ruleset, diagnostics = check_ruleset(VAREJO)
    assert ruleset is not None
    assert diagnostics == []


def test_the_required_fields_table_matches_the_engine() -> None:
    from engine.records import REQUIRED_FIELDS as ENGINE_REQUIRED

    assert REQUIRED_FIELDS == ENGINE_REQUIRED


def test_positions_point_into_the_file_that_holds_the_text(varejo: Path) -> None:
    ruleset = load_ruleset(varejo)
    subject = ruleset.templates["atraso"].variants["email"].subject
    assert subject is not None
    text = (varejo / "templates.yaml").read_text(encoding="utf-8")
    line, column = place(text, "Fatura em aberto")
    assert subject.location.path == str(varejo / "templates.yaml")
    assert (subject.location.line, subject.location.column) == (line, column)


def test_portable_locations_name_files_from_the_ruleset_directory(
    varejo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(varejo.parent)
    portable = set()
    for given in (varejo, Path("varejo"), Path("varejo") / ".." / "varejo"):
        ruleset = load_ruleset(given)
        subject = ruleset.templates["atraso"].variants["email"].subject
        assert subject is not None
        portable.add(ruleset.portable(subject.location))

    [where] = portable
    line, column = place(
        (varejo / "templates.yaml").read_text(encoding="utf-8"), "Fatura em aberto"
    )
    assert where == f"templates.yaml:{line}:{column}"


# Digest ---------------------------------------------------------------


def test_the_digest_depends_on_the_bytes_not_the_place(varejo: Path) -> None:
    assert load_ruleset(varejo).digest == load_ruleset(VAREJO).digest

    templates = varejo / "templates.yaml"
    templates.write_text(templates.read_text(encoding="utf-8") + "\n# note\n")
    assert load_ruleset(varejo).digest != load_ruleset(VAREJO).digest


# Finding rulesets -----------------------------------------------------


def test_find_rulesets_finds_ruleset_directories_and_single_files(
    tmp_path: Path, varejo: Path
) -> None:
    (tmp_path / "solo.yaml").write_text(MINI)
    nested = tmp_path / "group" / "inner"
    nested.mkdir(parents=True)
    (nested / "a.yaml").write_text(MINI)
    (nested / "b.yaml").write_text(MINI.replace("ruleset: mini", "ruleset: other"))
    tests = varejo / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "x.yaml").write_text(MINI)
    (varejo / "lembrete.test.yaml").write_text(MINI)

    found = find_rulesets(tmp_path)

    assert found == [
        nested / "a.yaml",
        nested / "b.yaml",
        tmp_path / "solo.yaml",
        varejo,
    ]


def test_find_rulesets_of_a_file_is_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(MINI)
    assert find_rulesets(path) == [path]


def test_find_rulesets_in_a_folder_without_rulesets_is_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.yaml").write_text("a: 1\n")
    assert find_rulesets(tmp_path) == []


def test_find_rulesets_of_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        find_rulesets(tmp_path / "missing")


def test_the_repository_rulesets_are_found() -> None:
    found = find_rulesets(ROOT / "rulesets")
    assert VAREJO in found


# Directories of files -------------------------------------------------


def _split(directory: Path) -> None:
    """MINI as a ruleset directory: channels and windows in their own file."""
    head, _, rest = MINI.partition("windows:\n")
    windows_and_channels, _, tail = rest.partition("segments:\n")
    directory.mkdir()
    (directory / "main.yaml").write_text(head + "segments:\n" + tail)
    (directory / "delivery.yaml").write_text("windows:\n" + windows_and_channels)


def test_a_directory_merges_the_top_level_keys_of_its_files(tmp_path: Path) -> None:
    _split(tmp_path / "split")
    ruleset = load_ruleset(tmp_path / "split")
    assert set(ruleset.channels) == {"sms", "email"}
    assert ruleset.files == ("delivery.yaml", "main.yaml")
    assert ruleset.channels["sms"].location.path == str(
        tmp_path / "split" / "delivery.yaml"
    )


def test_a_key_in_two_files_is_an_error(tmp_path: Path) -> None:
    _split(tmp_path / "split")
    extra = tmp_path / "split" / "zz.yaml"
    extra.write_text('windows:\n  outro:\n    mon: "08:00-09:00"\n')
    ruleset, diagnostics = check_ruleset(tmp_path / "split")
    assert ruleset is None
    problem = only(diagnostics, "E118")
    assert (problem.location.path, problem.location.line) == (str(extra), 1)
    assert "delivery.yaml:1:1" in problem.message


def test_a_directory_with_two_ruleset_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINI)
    (tmp_path / "b.yaml").write_text(MINI)
    ruleset, diagnostics = check_ruleset(tmp_path)
    assert ruleset is None
    assert codes(diagnostics) == ["E118"]


def test_a_directory_without_a_ruleset_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("channels: {}\n")
    _, diagnostics = check_ruleset(tmp_path)
    assert codes(diagnostics) == ["E118"]


def test_a_missing_referenced_file_is_an_error(varejo: Path) -> None:
    (varejo / "inputs.yaml").unlink()
    ruleset, diagnostics = check_ruleset(varejo)
    assert ruleset is None
    problem = only(diagnostics, "E117")
    text = (varejo / "ruleset.yaml").read_text()
    assert (problem.location.line, problem.location.column) == place(
        text, "inputs.yaml"
    )


def test_a_reference_outside_the_ruleset_directory_is_an_error(
    tmp_path: Path, varejo: Path
) -> None:
    shutil.copy(varejo / "inputs.yaml", tmp_path / "shared.yaml")
    ruleset_file = varejo / "ruleset.yaml"
    text = ruleset_file.read_text()
    ruleset_file.write_text(
        text.replace("inputs: inputs.yaml", "inputs: ../shared.yaml")
    )
    (varejo / "inputs.yaml").unlink()
    _, diagnostics = check_ruleset(varejo)
    assert "outside" in only(diagnostics, "E117").message


def test_a_referenced_file_is_not_read_as_a_fragment(tmp_path: Path) -> None:
    """`a_inputs.yaml` sorts before the head file and is still a reference."""
    directory = tmp_path / "r"
    directory.mkdir()
    head, _, rest = MINI.partition("inputs:\n")
    inputs, _, tail = rest.partition("calendar:\n")
    (directory / "z.yaml").write_text(
        head + "inputs: a_inputs.yaml\ncalendar:\n" + tail
    )
    (directory / "a_inputs.yaml").write_text(
        "\n".join(line[2:] for line in inputs.splitlines()) + "\n"
    )
    ruleset = load_ruleset(directory)
    assert "first_name" in ruleset.inputs.customer


def test_errors_in_a_referenced_file_point_into_it(varejo: Path) -> None:
    inputs = varejo / "inputs.yaml"
    inputs.write_text(inputs.read_text().replace("amount: money", "amount: mony", 1))
    _, diagnostics = check_ruleset(varejo)
    problem = only(diagnostics, "E124")
    assert problem.location.path == str(inputs)
    assert problem.hint == "did you mean `money`?"


# Structure ------------------------------------------------------------


def test_an_unknown_key_is_an_error_with_a_hint(tmp_path: Path) -> None:
    text = replaced("segments:\n", "suppres:\n  - name: x\n    when: true\nsegments:\n")
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is None
    problem = only(diagnostics, "E110")
    assert (problem.location.line, problem.location.column) == place(text, "suppres")
    assert problem.message == "unknown key `suppres`"
    assert problem.hint == "did you mean `suppress`?"


def test_an_unknown_nested_key_is_an_error(tmp_path: Path) -> None:
    text = replaced("    cost: 0.05\n", "    costs: 0.05\n")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E110")
    assert (problem.location.line, problem.location.column) == place(text, "costs")
    assert problem.hint == "did you mean `cost`?"


def test_a_missing_required_key_is_reported_at_its_mapping(tmp_path: Path) -> None:
    text = replaced("timezone: America/Sao_Paulo\n", "")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E111")
    assert problem.message == "missing required key `timezone`"
    assert (problem.location.line, problem.location.column) == (1, 1)


@pytest.mark.parametrize(
    ("old", "new", "needle", "code", "words"),
    [
        ("template: lembrete", "template: 2024", "2024", "E112", "expected text"),
        ("cost: 0.05", 'cost: "0.05"', '"0.05"', "E112", "expected a number"),
        ("max_segments: 2", "max_segments: 2.5", "2.5", "E112", "a whole number"),
        ("at: D-3", "at: D3", "D3", "E116", "D-3, D0, D+2"),
        ("- name: todos", "- name: Todos", "Todos", "E114", "lower case"),
        ("cost: 0.05", "cost: -1", " -1\n", "E115", "at least 0"),
        ("max_segments: 2", "max_segments: 02", " 02\n", "E109", "octal"),
        ("max_segments: 2", "max_segments: 0x10", "0x10", "E109", "base 16 (16)"),
        ("max_segments: 2", "max_segments: 0o10", "0o10", "E109", "base 8 (8)"),
        ("channels: [sms, email]", "channels: []", "[]", "E115", "at least 1"),
        (
            "template: lembrete",
            'template: lembrete\n      same_day_only: "yes"',
            '"yes"',
            "E112",
            "true or false",
        ),
    ],
)
def test_shape_errors_have_a_code_and_the_value_location(
    tmp_path: Path, old: str, new: str, needle: str, code: str, words: str
) -> None:
    text = replaced(old, new)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is None
    problem = only(diagnostics, code)
    line, column = place(text, needle)
    if needle.startswith(" "):  # a leading space only makes the needle unique
        column += 1
    assert (problem.location.line, problem.location.column) == (line, column)
    assert words in problem.message


def test_an_enum_value_gets_a_suggestion(tmp_path: Path) -> None:
    text = replaced(
        "  extra_holidays:", "  due_date_roll: next_busines_day\n  extra_holidays:"
    )
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E113")
    assert problem.hint == "did you mean `next_business_day`?"


def test_an_invalid_name_as_a_key_is_reported_at_the_key(tmp_path: Path) -> None:
    text = replaced("  comercial:\n", "  Comercial:\n")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E114")
    assert (problem.location.line, problem.location.column) == place(text, "Comercial")


def test_a_top_level_list_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- ruleset: x\n")
    _, diagnostics = check_ruleset(path)
    assert codes(diagnostics) == ["E112"]


# Values the schema cannot judge ---------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "code", "hint"),
    [
        (
            "timezone: America/Sao_Paulo",
            "timezone: America/Sao_Paul",
            "America/Sao_Paul",
            "E120",
            "did you mean `America/Sao_Paulo`?",
        ),
        ("locale: pt_BR", "locale: pt_XX", "pt_XX", "E121", "e.g. pt_BR"),
        ("currency: BRL", "currency: BRX", "BRX", "E122", "e.g. BRL"),
        ("holidays: BR", "holidays: XX", "XX", "E123", None),
        ("    phone: string?", "    phone: strin?", "strin?", "E124", None),
        (
            "    amount: money\n    due",
            "    amount: decimal\n    due",
            "amount: decimal",
            "E125",
            None,
        ),
        ("    paid_on: date\n", "", "payment:", "E125", "the engine relies on it"),
        (
            "    due_date: date",
            "    due_date: date\n    amount_due: money",
            "amount_due",
            "E126",
            "rename the field",
        ),
        ("when: true", "when: yes", "yes", "E107", None),
        (
            '["2026-02-16"]',
            "[2026-02-16]",
            "2026-02-16",
            "E108",
            'write it quoted: "2026-02-16"',
        ),
        ('["2026-02-16"]', '["2026-02-30"]', '"2026-02-30"', "E119", None),
    ],
)
def test_value_errors_have_a_code_and_location(
    tmp_path: Path, old: str, new: str, needle: str, code: str, hint: str | None
) -> None:
    text = replaced(old, new)
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is None
    problem = only(diagnostics, code)
    assert (problem.location.line, problem.location.column) == place(text, needle)
    if hint is not None:
        assert problem.hint == hint


def test_a_subdivision_must_belong_to_the_country(tmp_path: Path) -> None:
    text = replaced("holidays: BR\n", "holidays: BR\n  subdivision: XX\n")
    _, diagnostics = check_text(tmp_path, text)
    assert only(diagnostics, "E123").message == "`XX` is not a subdivision of BR"
    good = replaced("holidays: BR\n", "holidays: BR\n  subdivision: SP\n")
    ruleset, _ = check_text(tmp_path, good)
    assert ruleset is not None and ruleset.calendar.subdivision == "SP"


def test_a_backwards_day_range_is_an_error(tmp_path: Path) -> None:
    text = replaced('mon-fri: "08:00-20:00"', 'fri-mon: "08:00-20:00"')
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E116")
    assert (problem.location.line, problem.location.column) == place(text, "fri-mon")


# Expressions ----------------------------------------------------------


def test_an_expression_error_points_at_its_exact_column(tmp_path: Path) -> None:
    text = replaced("when: true", "when: customer.sms_opt_out and customer.frist_name")
    _, diagnostics = check_text(tmp_path, text)
    problem = only(diagnostics, "E301")
    assert (problem.location.line, problem.location.column) == place(text, "frist_name")


def test_a_placeholder_error_in_a_folded_template_points_at_its_line(
    varejo: Path,
) -> None:
    templates = varejo / "templates.yaml"
    text = templates.read_text()
    text = text.replace("{invoice.payment_link}", "{invoice.payment_lnk}", 1)
    templates.write_text(text)
    _, diagnostics = check_ruleset(varejo)
    problem = only(diagnostics, "E301")
    assert (problem.location.line, problem.location.column) == place(
        text, "payment_lnk"
    )


def test_expressions_see_what_their_place_allows(tmp_path: Path) -> None:
    text = replaced("when: true", "when: invoice.amount > 10")
    _, diagnostics = check_text(tmp_path, text)
    assert only(diagnostics, "E306").location.line == place(text, "invoice.amount")[0]


def test_a_channel_address_may_be_empty_but_consent_may_not(tmp_path: Path) -> None:
    text = replaced(
        "    window: comercial\n    cost",
        "    consent: customer.email\n    window: comercial\n    cost",
    )
    _, diagnostics = check_text(tmp_path, text)
    assert codes(diagnostics) == ["E307"]


def test_offer_fields_are_only_for_templates_of_offer_steps(tmp_path: Path) -> None:
    text = replaced("pague: {", "{offer.instalments}x: {")
    _, diagnostics = check_text(tmp_path, text)
    assert "E306" in codes(diagnostics)


# Loading --------------------------------------------------------------


def test_load_ruleset_raises_with_every_error_sorted(tmp_path: Path) -> None:
    text = replaced("currency: BRL", "currency: BRX")
    text = replaced("cost: 0.05", "cost: x", text)
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_ruleset(path)
    found = raised.value.diagnostics
    assert [d.code for d in found] == ["E122", "E112"]
    assert all(d.severity is Severity.ERROR for d in found)


def test_warnings_do_not_stop_loading(tmp_path: Path) -> None:
    text = replaced("templates:\n", 'templates:\n  spare:\n    sms: "oi"\n')
    ruleset, diagnostics = check_text(tmp_path, text)
    assert ruleset is not None
    assert codes(diagnostics) == ["W401"]
    assert load_ruleset(tmp_path / "policy.yaml").name == "mini"


def test_a_decimal_comma_gets_a_hint(tmp_path: Path) -> None:
    text = replaced("cost: 0.05", "cost: 0,05")
    _, diagnostics = check_text(tmp_path, text)
    assert only(diagnostics, "E112").hint == "write decimals with a point: 0.05"


def test_no_as_a_holiday_country_is_one_error_with_the_yaml_hint(
    tmp_path: Path,
) -> None:
    text = replaced("holidays: BR", "holidays: no")
    _, diagnostics = check_text(tmp_path, text)
    assert codes(diagnostics) == ["E116"]
    assert diagnostics[0].hint is not None
    assert "read `no` as a boolean" in diagnostics[0].hint
