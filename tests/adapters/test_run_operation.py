"""`ruleset run` as operations configure and drive it: the ledger it may
use, the providers it routes channels to, what a dry run checks, what the
summary shows of provider errors, signals and the run lock's lease."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from adapters import exitcodes
from adapters.cli import main
from adapters.providers.registry import build_provider, policy_problems
from adapters.runconfig import RunConfigError, load_run_config
from dsl.loader import load_ruleset
from tests.adapters.providers.servers import HttpServer, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "run"
RULESET = FIXTURES / "ruleset"
DATA = FIXTURES / "data"


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """`ruleset run` on the small fixture policy, state under tmp_path."""
    return CliRunner().invoke(
        main,
        ["run", str(RULESET), "--data", str(DATA), "--as-of", "2024-10-06T09:00",
         "--state-dir", str(tmp_path / "state"), *args],
        env=env or {},
    )  # fmt: skip


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def report_of(result: Result) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


# -- the ledger must outlive the run -------------------------------------------


@pytest.mark.parametrize(
    "ledger",
    [
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:ledger?mode=memory&uri=true",
    ],
)
def test_an_in_memory_ledger_is_refused_on_the_command_line(
    tmp_path: Path, ledger: str
) -> None:
    result = run_cli(tmp_path, "--ledger", ledger)

    assert result.exit_code == exitcodes.CONFIG_ERROR, result.output
    assert "lives only in memory" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "state").exists()


def test_an_in_memory_ledger_is_refused_in_the_file_with_its_place(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, "lock_timeout: 1\nledger:\n  url: sqlite://\n")

    with pytest.raises(RunConfigError) as caught:
        load_run_config(config, {})

    assert caught.value.where == f"{config}:3:8"
    assert "lives only in memory" in caught.value.message


def test_a_file_ledger_is_still_accepted(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"ledger: {tmp_path / 'ledger.sqlite3'}\n")

    loaded = load_run_config(config, {})

    assert loaded.ledger == f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


# -- the summary masks what providers echo back ---------------------------------

ECHOED = "bad number +5511999999999 for foo.bar@example.com"


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_provider_errors_are_masked_in_the_summary(
    tmp_path: Path, output_format: str
) -> None:
    with HttpServer(lambda request: Reply(400, ECHOED)) as server:
        config = write_config(
            tmp_path,
            f"""\
providers:
  sms: {{kind: sms_json, url: "{server.url}/sms"}}
  default: {{kind: outbox}}
""",
        )
        result = run_cli(tmp_path, "--config", str(config), "--format", output_format)

    assert result.exit_code == exitcodes.PROBLEMS, result.output
    assert "+5511999999999" not in result.stdout
    assert "foo.bar@example.com" not in result.stdout
    if output_format == "json":
        errors = [failure["error"] for failure in report_of(result)["failures"]]
    else:
        errors = [line for line in result.stdout.splitlines() if "bad number" in line]
    assert errors, result.stdout
    assert all("+55 11 9****-**99" in error for error in errors)
    assert all("f***@example.com" in error for error in errors)


# -- provider entries name the ruleset's channels --------------------------------


@pytest.mark.parametrize(("entry", "column"), [("SMS", 3), ("smss", 3)])
@pytest.mark.parametrize("mode", [[], ["--dry-run"], ["--outbox", "out.jsonl"]])
def test_a_misspelt_channel_name_is_a_configuration_error(
    tmp_path: Path, entry: str, column: int, mode: list[str]
) -> None:
    config = write_config(
        tmp_path,
        f"""\
providers:
  whatsapp: {{kind: outbox, path: {tmp_path / "whatsapp.jsonl"}}}
  {entry}: {{kind: sms_json, url: "https://sms.example.com/send"}}
  default: {{kind: outbox}}
""",
    )

    result = run_cli(tmp_path, "--config", str(config), *mode)

    assert result.exit_code == exitcodes.CONFIG_ERROR, result.output
    assert (
        f"{config}:3:{column}: provider entry {entry!r} names no channel of ruleset "
        "cobranca_teste (did you mean 'sms'?)"
    ) in result.stderr
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "whatsapp.jsonl").exists()


def test_the_summary_names_the_channels_left_to_the_outbox(tmp_path: Path) -> None:
    with HttpServer(lambda request: Reply(200, {"id": "m1"})) as server:
        config = write_config(
            tmp_path,
            f"""\
providers:
  sms: {{kind: sms_json, url: "{server.url}/sms"}}
  default: {{kind: outbox}}
""",
        )
        text = run_cli(tmp_path, "--config", str(config))
        again = run_cli(tmp_path, "--config", str(config), "--format", "json")

    outbox = tmp_path / "state" / "outbox.jsonl"
    note = f"channel whatsapp to the outbox file {outbox}"
    assert text.exit_code == exitcodes.OK, text.output
    assert note in text.stdout
    assert any(note in line for line in report_of(again)["notes"])
    assert "sms" not in note.partition(" to ")[0]


def test_every_channel_to_the_outbox_is_said_too(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--format", "json")

    outbox = Path("state") / "outbox.jsonl"
    notes = report_of(result)["notes"]
    assert result.exit_code == exitcodes.OK, result.output
    assert any(
        f"channels whatsapp, sms to the outbox file {tmp_path / outbox}" in note
        for note in notes
    ), notes


# -- a dry run and --outbox check the providers as a real run does -------------

BAD_PROVIDERS = {
    "plain http": ('url: "http://sms.example.com/send"', "url"),
    "literal authorization": (
        'url: "https://sms.example.com/send", headers: {Authorization: "Bearer abc"}',
        "headers",
    ),
    "unset variable": (
        'url: "https://sms.example.com/send", headers: {X-Api: "${NOPE}"}',
        "NOPE",
    ),
}


@pytest.mark.parametrize("mistake", sorted(BAD_PROVIDERS))
@pytest.mark.parametrize("mode", [[], ["--dry-run"], ["--outbox", "out.jsonl"]])
def test_provider_mistakes_stop_every_mode(
    tmp_path: Path, mistake: str, mode: list[str]
) -> None:
    options, named = BAD_PROVIDERS[mistake]
    config = write_config(
        tmp_path,
        f"providers:\n  sms: {{kind: sms_json, {options}}}\n"
        "  default: {kind: outbox}\n",
    )

    result = run_cli(tmp_path, "--config", str(config), *mode)

    assert result.exit_code == exitcodes.CONFIG_ERROR, result.output
    assert f"{config}:2:8: provider 'sms'" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "out.jsonl").exists()


def test_a_dry_run_with_good_providers_builds_them_and_sends_nothing(
    tmp_path: Path,
) -> None:
    with HttpServer() as server:
        config = write_config(
            tmp_path,
            f"""\
providers:
  sms: {{kind: sms_json, url: "{server.url}/sms"}}
  default: {{kind: outbox}}
""",
        )
        result = run_cli(tmp_path, "--config", str(config), "--dry-run")

        assert server.requests == []
    assert result.exit_code == exitcodes.OK, result.output
    assert "would_send" in result.stdout
    assert not (tmp_path / "state").exists()


# -- providers say what they need from the policy --------------------------------

VAREJO = Path(__file__).parents[2] / "rulesets" / "varejo"


def whatsapp_cloud(options: str = "") -> str:
    return (
        'providers:\n  whatsapp: {kind: whatsapp_cloud, phone_number_id: "1065", '
        f"token_env: WA_TOKEN{options}}}\n  default: {{kind: outbox}}\n"
    )


@pytest.mark.parametrize("mode", [[], ["--dry-run"], ["--outbox", "out.jsonl"]])
def test_whatsapp_copy_without_a_template_mapping_stops_the_run(
    tmp_path: Path, mode: list[str]
) -> None:
    config = write_config(tmp_path, whatsapp_cloud())

    result = run_cli(tmp_path, "--config", str(config), *mode, env={"WA_TOKEN": "t"})

    policy = RULESET / "ruleset.yaml"
    line, column = next(
        (number, text.index('"') + 2)  # the copy's first character
        for number, text in enumerate(policy.read_text().splitlines(), start=1)
        if text.strip().startswith('whatsapp: "Oi')
    )
    assert result.exit_code == exitcodes.CONFIG_ERROR, result.output
    assert (
        f"{policy}:{line}:{column}: template 'atraso', 'whatsapp': provider 'whatsapp' "
        "(whatsapp_cloud) sends only templates approved by Meta"
    ) in result.stderr
    assert "step todos/atraso" in result.stderr
    assert not (tmp_path / "state").exists()


def mapped_ruleset(tmp_path: Path, mapping: str) -> Path:
    """The fixture policy with its WhatsApp copy mapped as `mapping` says."""
    folder = tmp_path / "policy"
    folder.mkdir()
    text = (RULESET / "ruleset.yaml").read_text(encoding="utf-8")
    copy = next(line for line in text.splitlines() if 'whatsapp: "Oi' in line)
    body = copy.split(": ", 1)[1]
    text = text.replace(
        copy, f"    whatsapp:\n      text: {body}\n      template: atraso_fatura\n"
        f"{mapping}      params: [\"{{customer.name}}\"]",
    )  # fmt: skip
    (folder / "ruleset.yaml").write_text(text, encoding="utf-8")
    return folder


def test_a_template_without_a_language_needs_the_provider_default(
    tmp_path: Path,
) -> None:
    policy = mapped_ruleset(tmp_path, "")
    without = write_config(tmp_path, whatsapp_cloud())
    common = ["run", str(policy), "--data", str(DATA), "--as-of",
              "2024-10-06T09:00", "--dry-run"]  # fmt: skip

    refused = CliRunner().invoke(
        main, [*common, "--config", str(without)], env={"WA_TOKEN": "t"}
    )
    with_default = write_config(tmp_path, whatsapp_cloud(", language: pt_BR"))
    accepted = CliRunner().invoke(
        main, [*common, "--config", str(with_default)], env={"WA_TOKEN": "t"}
    )

    assert refused.exit_code == exitcodes.CONFIG_ERROR, refused.output
    assert "WhatsApp template 'atraso_fatura' has no language" in refused.stderr
    assert accepted.exit_code == exitcodes.OK, accepted.output


def test_a_mapped_template_goes_out_through_the_cloud_api(tmp_path: Path) -> None:
    policy = mapped_ruleset(tmp_path, "      language: pt_BR\n")
    with HttpServer(lambda r: Reply(200, {"messages": [{"id": "wamid.1"}]})) as api:
        config = write_config(tmp_path, whatsapp_cloud(f', base_url: "{api.url}"'))
        result = CliRunner().invoke(
            main,
            ["run", str(policy), "--data", str(DATA), "--as-of", "2024-10-06T09:00",
             "--state-dir", str(tmp_path / "state"), "--config", str(config),
             "--format", "json"],
            env={"WA_TOKEN": "t"},
        )  # fmt: skip
        sent = [request.json()["template"] for request in api.requests]

    assert result.exit_code == exitcodes.OK, result.output
    assert report_of(result)["outcomes"]["sent"] >= 1
    assert sent == [
        {
            "name": "atraso_fatura",
            "language": {"code": "pt_BR"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}
            ],
        }
    ]


def test_varejo_maps_every_whatsapp_variant_to_an_approved_template() -> None:
    ruleset = load_ruleset(VAREJO)
    provider = build_provider(
        "whatsapp",
        {"kind": "whatsapp_cloud", "phone_number_id": "1065", "token_env": "T"},
        {"T": "t"},
    )

    variants = [t.variants["whatsapp"] for t in ruleset.templates.values()
                if "whatsapp" in t.variants]  # fmt: skip

    assert policy_problems(provider, ruleset, "whatsapp") == []
    assert len(variants) == 4
    assert all(v.provider_template and v.language == "pt_BR" for v in variants)
    assert all(len(v.params) >= 3 for v in variants)
