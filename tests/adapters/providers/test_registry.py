"""The registry and option checks, and the examples in docs/providers.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from adapters.providers.options import ProviderConfigError
from adapters.providers.outbox import OutboxProvider
from adapters.providers.registry import (
    PROVIDER_KINDS,
    build_provider,
    build_receipts,
)
from adapters.runconfig import load_run_config
from dsl.model import CHANNEL_KINDS

DOCS = Path(__file__).parents[3] / "docs" / "providers.md"


def test_every_channel_kind_has_a_provider_besides_the_outbox() -> None:
    served = {
        channel
        for kind, channels in PROVIDER_KINDS.items()
        if kind not in ("outbox", "webhook")
        for channel in channels
    }

    assert served == set(CHANNEL_KINDS) - {"webhook"}
    assert set(PROVIDER_KINDS["outbox"]) == set(CHANNEL_KINDS)


def test_the_outbox_is_built_lazily_without_the_runner_keys(tmp_path: Path) -> None:
    options = {"kind": "outbox", "rate_limit": "5/s", "path": str(tmp_path / "o.jsonl")}

    provider = build_provider("default", options, {})

    assert isinstance(provider, OutboxProvider)
    assert provider.name == "default"
    with pytest.raises(ProviderConfigError, match="needs a `path`"):
        build_provider("default", {"kind": "outbox"}, {})


def test_a_secret_with_a_line_break_is_refused_before_any_send() -> None:
    entry = {"kind": "webhook", "url": "https://x.example.com", "secret_env": "S"}

    with pytest.raises(ProviderConfigError, match="S contains control characters"):
        build_provider("crm", entry, {"S": "abc\r\nX-Evil: 1"})


def test_the_entry_name_is_the_kind_when_none_is_given(tmp_path: Path) -> None:
    provider = build_provider("outbox", {"path": str(tmp_path / "o.jsonl")}, {})

    assert isinstance(provider, OutboxProvider)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "twillio"}, "unknown kind 'twillio' .*did you mean 'twilio'"),
        ({"kind": 3}, "unknown kind 3"),
        ({"kind": "twilio", "account_sid": "AC1", "auth_token": "x",
          "from": "+5511900000000"}, "write `auth_token_env"),
        ({"kind": "twilio", "account_sid": "AC1", "auth_token_env": "UNSET",
          "from": "+5511900000000"}, "UNSET is not set"),
        ({"kind": "twilio", "account_sid": "AC1", "auth_token_env": "T"},
         "exactly one of from, messaging_service_sid"),
        ({"kind": "twilio", "account_sid": "AC1", "auth_token_env": "T",
          "from": "+5511900000000", "status_calback": "https://x.example.com"},
         "did you mean 'status_callback'"),
        ({"kind": "whatsapp_cloud", "phone_number_id": "1", "token_env": "T",
          "api_version": "21"}, "must look like v21.0"),
        ({"kind": "whatsapp_cloud", "token_env": "T"},
         "'phone_number_id': is required"),
        ({"kind": "rcs_rbm", "agent_id": "a", "token_env": "T",
          "button_label": "Clique aqui para pagar sua fatura"}, "at most 25"),
        ({"kind": "voice_tasks", "url": "https://v.example.com",
          "callback_url": "ftp://x.example.com"}, "must be an http"),
        ({"kind": "webhook", "url": "https://x.example.com", "secret_env": "T",
          "timeout": 0}, "greater than zero"),
        ({"kind": "webhook", "url": "https://x.example.com", "secret_env": "T",
          "ca_file": "/no/such/ca.pem"}, "no such file"),
    ],
)  # fmt: skip
def test_configuration_mistakes_name_the_provider_and_key(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderConfigError, match=message) as caught:
        build_provider("canal", options, {"T": "secret"})

    assert str(caught.value).startswith("provider 'canal'")


# --- the documented examples ------------------------------------------------


def documented_configurations() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text("utf-8"), re.S)
    return [block for block in blocks if block.startswith("providers:")]


def test_the_documentation_has_an_example_per_channel() -> None:
    kinds = set()
    for block in documented_configurations():
        kinds.update(re.findall(r"^    kind: (\w+)", block, re.M))

    assert kinds >= {
        "smtp",
        "twilio",
        "sms_json",
        "whatsapp_cloud",
        "rcs_rbm",
        "voice_tasks",
        "webhook",
    }


@pytest.mark.parametrize("block", documented_configurations())
def test_each_documented_example_loads_and_builds(tmp_path: Path, block: str) -> None:
    # Fill the elided entries (`# ...`) with a working one, as a reader would.
    text = block.replace(
        "    # ...\n",
        "    account_sid: AC1\n    auth_token_env: TWILIO_AUTH_TOKEN\n"
        '    from: "+5511900000000"\n',
    )
    variables = re.findall(r"_env: (\w+)", text) + re.findall(r"\$\{(\w+)\}", text)
    env = {name: f"value-of-{name}" for name in variables}
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")

    config = load_run_config(path, env)

    assert config.providers
    for channel, spec in config.providers.items():
        provider = build_provider(spec.name, spec.options, env)
        assert provider.name == channel
        build_receipts(spec.name, spec.options, env)
        provider.close()
