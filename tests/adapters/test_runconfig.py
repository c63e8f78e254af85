"""The run configuration file: defaults, keys, secrets, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.retry import RetryPolicy
from adapters.runconfig import RunConfig, RunConfigError, load_run_config

FULL = """\
data: data/
on_bad_record: skip
state_dir: /var/lib/ruleset
ledger:
  url: postgresql+psycopg://ruleset:${LEDGER_PASSWORD}@db.internal/ruleset
  table_prefix: cobranca_
outbox: /var/lib/ruleset/outbox.jsonl
unknown_outcome: resend
lock_timeout: 30
lock_lease: 600
retries: {attempts: 5, base_delay: 0.5, max_delay: 30, max_retry_after: 120}
providers:
  sms:
    kind: twilio
    account_sid: AC123
    auth_token_env: TWILIO_TOKEN
    from: "+5511900000000"
    rate_limit: 10/s
    retries: {attempts: 2}
  default:
    kind: outbox
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(RunConfigError) as caught:
        load_run_config(write(tmp_path, text), env or {})
    return str(caught.value)


def test_no_configuration_is_the_embedded_default() -> None:
    config = load_run_config(None, {})

    assert config == RunConfig()
    assert config.ledger == "sqlite:///.ruleset/ledger.sqlite3"
    assert config.outbox_path == Path(".ruleset/outbox.jsonl")
    assert config.on_bad_record == "fail" and not config.resend_unknown
    spec = config.provider_for("whatsapp")
    assert spec is not None
    assert spec.kind == "outbox"
    assert spec.options == {"kind": "outbox", "path": ".ruleset/outbox.jsonl"}


def test_a_full_configuration_is_read(tmp_path: Path) -> None:
    config = load_run_config(write(tmp_path, FULL), {"LEDGER_PASSWORD": "p@ss/w:rd"})

    assert config.data == "data/"
    assert config.on_bad_record == "skip"
    # The password is URL-quoted, so its "@" and "/" stay part of it.
    assert config.ledger == (
        "postgresql+psycopg://ruleset:p%40ss%2Fw%3Ard@db.internal/ruleset"
    )
    assert config.ledger_prefix == "cobranca_"
    assert config.resend_unknown
    assert (config.lock_timeout, config.lock_lease) == (30.0, 600.0)
    assert config.retries == RetryPolicy(5, 0.5, 30.0, 120.0)

    sms = config.provider_for("sms")
    assert sms is not None
    assert (sms.name, sms.kind, sms.rate_limit) == ("sms", "twilio", "10/s")
    assert sms.retries == RetryPolicy(attempts=2)
    assert "retries" not in sms.options  # the provider never sees runner keys
    assert sms.options["auth_token_env"] == "TWILIO_TOKEN"
    assert sms.where == f"{tmp_path / 'run.yaml'}:14:5"

    email = config.provider_for("email")
    assert email is not None
    assert (email.name, email.kind) == ("default", "outbox")
    assert email.options["path"] == "/var/lib/ruleset/outbox.jsonl"


def test_channels_without_a_provider_entry_have_none(tmp_path: Path) -> None:
    config = load_run_config(
        write(tmp_path, "providers:\n  sms: {kind: outbox, path: sms.jsonl}\n"), {}
    )

    sms = config.provider_for("sms")
    assert sms is not None and sms.options["path"] == "sms.jsonl"
    assert config.provider_for("email") is None


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = load_run_config(write(tmp_path, FULL), {"LEDGER_PASSWORD": "x"})

    changed = config.overridden(
        data="other/",
        ledger="local.sqlite3",
        outbox=Path("try.jsonl"),
        state_dir=Path("state"),
        on_bad_record="fail",
        resend_unknown=False,
        lock_timeout=0.0,
    )

    assert changed.data == "other/"
    assert changed.ledger == "sqlite:///local.sqlite3"
    assert changed.on_bad_record == "fail"
    assert changed.lock_timeout == 0.0
    assert changed.resend_unknown  # a flag can turn it on, not off
    sms = changed.provider_for("sms")  # --outbox: every channel to the file
    assert sms is not None and sms.options == {"kind": "outbox", "path": "try.jsonl"}


def test_state_dir_moves_the_default_ledger_and_outbox() -> None:
    config = RunConfig().overridden(state_dir=Path("/tmp/x"))

    assert config.ledger == "sqlite:////tmp/x/ledger.sqlite3"
    assert config.outbox_path == Path("/tmp/x/outbox.jsonl")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ledgr: x.sqlite3\n", ":1:1: unknown key 'ledgr' (did you mean 'ledger'?)"),
        (
            "retries:\n  atempts: 3\n",
            ":2:3: unknown key 'atempts' (did you mean 'attempts'?)",
        ),
        ("ledger: {url: x, prefix: y}\n", ":1:18: unknown key 'prefix'"),
        ("on_bad_record: skipp\n", "'on_bad_record' must be fail or skip"),
        ("unknown_outcome: yes\n", "'unknown_outcome' must be report or resend"),
        ("lock_timeout: soon\n", ":1:15: 'lock_timeout' is a number of seconds"),
        ("lock_lease: 0\n", "'lock_lease' must be at least 1"),
        ("retries: {attempts: 0}\n", "'attempts' is a whole number, at least 1"),
        ("providers:\n  sms: {rate_limit: 10/s}\n", ":2:8: provider of 'sms' needs"),
        (
            "providers:\n  sms: {kind: twilio, rate_limit: fast}\n",
            "rate limit 'fast' is not COUNT/UNIT",
        ),
        ("data: 3\n", "'data' is a source specification"),
        ("ledger: {table_prefix: Bad-Name}\n", "table_prefix is lower-case"),
        ("- a\n- b\n", "a run configuration is a mapping"),
        ("data: x\ndata: y\n", ":2:1: duplicate key 'data'"),
        ("data: [unclosed\n", "not valid YAML"),
        ("data: !!python/name:os.system x\n", "tags such as"),
    ],
)
def test_mistakes_are_reported_with_their_place(
    tmp_path: Path, text: str, expected: str
) -> None:
    message = error_of(tmp_path, text)

    assert message.startswith(str(tmp_path / "run.yaml"))
    assert expected in message


@pytest.mark.parametrize(
    "text",
    [
        "providers:\n  sms: {kind: twilio, auth_token: abc123}\n",
        "providers:\n  sms: {kind: sms_json, api_key: 42}\n",
        "providers:\n  email: {kind: smtp, password: hunter2}\n",
        "ledger: postgresql://ruleset:hunter2@db/ruleset\n",
        "data: {kind: sql, url: 'mysql://u:literal@db/x'}\n",
    ],
)
def test_secrets_written_in_the_file_are_refused(tmp_path: Path, text: str) -> None:
    message = error_of(tmp_path, text)

    assert "environment" in message
    assert "hunter2" not in message and "abc123" not in message


@pytest.mark.parametrize(
    "text",
    [
        "providers:\n  sms: {kind: twilio, auth_token_env: TOKEN}\n",
        "providers:\n  sms: {kind: sms_json, headers: {Auth: 'Bearer ${T}'}}\n",
        "ledger: postgresql://ruleset:${PW}@db/ruleset\n",
        "ledger: ${LEDGER_URL}\n",
    ],
)
def test_secrets_from_the_environment_are_fine(tmp_path: Path, text: str) -> None:
    env = {"PW": "s3cret", "LEDGER_URL": "postgresql://u:p@db/x", "T": "t"}

    config = load_run_config(write(tmp_path, text), env)

    assert isinstance(config, RunConfig)


def test_a_whole_url_from_the_environment_is_not_quoted(tmp_path: Path) -> None:
    env = {"LEDGER_URL": "postgresql+psycopg://u:p@db:5432/x"}

    config = load_run_config(write(tmp_path, "ledger: ${LEDGER_URL}\n"), env)

    assert config.ledger == "postgresql+psycopg://u:p@db:5432/x"


def test_an_unset_variable_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, "ledger: postgresql://u:${LEDGER_PW}@db/x\n")

    assert ":1:9: environment variable LEDGER_PW is not set" in message


def test_an_inline_source_mapping_is_handed_on_untouched(tmp_path: Path) -> None:
    text = "data:\n  kind: sql\n  url: postgresql://u:${PW}@db/x\n"

    config = load_run_config(write(tmp_path, text), {})

    assert config.data == {"kind": "sql", "url": "postgresql://u:${PW}@db/x"}


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RunConfigError, match="cannot read"):
        load_run_config(tmp_path / "missing.yaml", {})
    (tmp_path / "latin1.yaml").write_bytes("data: ação\n".encode("latin-1"))
    with pytest.raises(RunConfigError, match="not UTF-8"):
        load_run_config(tmp_path / "latin1.yaml", {})
