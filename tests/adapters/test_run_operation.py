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
from adapters.runconfig import RunConfigError, load_run_config
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
