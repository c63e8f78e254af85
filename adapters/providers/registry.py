"""Building providers from the run configuration.

A run configuration maps each channel to a provider entry:

    providers:
      sms: {kind: twilio, account_sid: AC123, auth_token_env: TWILIO_TOKEN,
            from: "+5511900000000", rate_limit: 10/s}

`build_provider(name, options, env)` turns one entry into a `Provider`:
`options["kind"]` picks the implementation (when absent, the entry's name
is taken as the kind, so `outbox: {path: ...}` works), the other keys are
that kind's options (docs/providers.md), and secrets are read from `env`
through the `*_env` keys. `build_receipts` makes the matching callback
parser for the receipt server, for kinds whose provider reports delivery.

Every mistake raises `ProviderConfigError` naming the provider and key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from adapters.providers.base import Provider
from adapters.providers.options import (
    RUNNER_KEYS,
    Options,
    ProviderConfigError,
)
from adapters.providers.rcs import RbmRcs
from adapters.providers.sms import JsonSms, TwilioSms
from adapters.providers.smtp import SmtpProvider
from adapters.providers.status import (
    RbmReceipts,
    ReceiptParser,
    TwilioReceipts,
    VoiceOutcomes,
    WhatsAppReceipts,
)
from adapters.providers.voice import VoiceTasks
from adapters.providers.webhook import SignedWebhook
from adapters.providers.whatsapp import WhatsAppCloud
from dsl.model import Ruleset

__all__ = [
    "PROVIDER_KINDS",
    "ProviderConfigError",
    "build_provider",
    "build_receipts",
    "policy_problems",
]

_ALL_CHANNELS = ("sms", "rcs", "whatsapp", "email", "voice", "webhook")

# Provider kind -> the channel kinds it can deliver.
PROVIDER_KINDS: Mapping[str, tuple[str, ...]] = {
    "outbox": _ALL_CHANNELS,  # writes what would be sent; any channel
    "rcs_rbm": ("rcs",),
    "smtp": ("email",),
    "sms_json": ("sms",),
    "twilio": ("sms",),
    "voice_tasks": ("voice",),
    "webhook": _ALL_CHANNELS,  # hands the message to another system
    "whatsapp_cloud": ("whatsapp",),
}

# Kinds whose provider calls back with delivery statuses.
_RECEIPT_KINDS = ("rcs_rbm", "twilio", "voice_tasks", "whatsapp_cloud")

_Factory = Callable[[str, Options], Provider]

_FACTORIES: dict[str, _Factory] = {
    "rcs_rbm": RbmRcs.from_options,
    "smtp": SmtpProvider.from_options,
    "sms_json": JsonSms.from_options,
    "twilio": TwilioSms.from_options,
    "voice_tasks": VoiceTasks.from_options,
    "webhook": SignedWebhook.from_options,
    "whatsapp_cloud": WhatsAppCloud.from_options,
}


@runtime_checkable
class NeedsFromPolicy(Protocol):
    """A provider that needs something of the policy beyond the copy (the
    WhatsApp Cloud API sends only templates Meta approved, so every
    WhatsApp variant must map to one)."""

    def policy_problems(self, ruleset: Ruleset, channel: str) -> list[str]:
        """`file:line:col: message` for each variant `channel` can send
        that lacks what this provider needs; empty when nothing does."""
        ...


def policy_problems(provider: Provider, ruleset: Ruleset, channel: str) -> list[str]:
    """What `provider` needs from `ruleset` to deliver `channel` and does
    not find; checked before a run plans anything."""
    if isinstance(provider, NeedsFromPolicy):
        return provider.policy_problems(ruleset, channel)
    return []


def provider_kind(name: str, options: Mapping[str, Any]) -> str:
    """The kind an entry asks for; its name when it says none."""
    kind = options.get("kind", name)
    if not isinstance(kind, str) or kind not in PROVIDER_KINDS:
        hint = difflib.get_close_matches(str(kind), sorted(PROVIDER_KINDS), n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ProviderConfigError(
            name, f"unknown kind {kind!r}{suffix}; known: {known}", key="kind"
        )
    return kind


def build_provider(
    name: str, options: Mapping[str, Any], env: Mapping[str, str]
) -> Provider:
    """The provider a run-configuration entry describes."""
    if not isinstance(options, Mapping):
        raise ProviderConfigError(name, "a provider entry must be a mapping")
    kind = provider_kind(name, options)
    if kind == "outbox":
        return _outbox(name, options, env)
    reader = Options(name, options, env)
    provider = _FACTORIES[kind](name, reader)
    reader.finish()
    return provider


def _outbox(name: str, options: Mapping[str, Any], env: Mapping[str, str]) -> Provider:
    # Imported here: the outbox belongs to the runner's side of adapters.
    from adapters.providers.outbox import OutboxProvider

    own = {key: value for key, value in options.items() if key not in RUNNER_KEYS}
    try:
        return OutboxProvider.from_options(name, own, env)
    except ValueError as exc:
        raise ProviderConfigError(name, str(exc)) from exc


def build_receipts(
    name: str, options: Mapping[str, Any], env: Mapping[str, str]
) -> ReceiptParser | None:
    """The delivery-status parser for a provider entry, or None when its
    kind sends no callbacks or the entry lacks what verifying them needs
    (the signing secret, or for Twilio the status_callback URL)."""
    kind = provider_kind(name, options)
    if kind not in _RECEIPT_KINDS:
        return None
    build_provider(name, options, env)  # the same checks as for sending

    def secret(key: str) -> str | None:
        variable = options.get(key)
        return env.get(variable) if isinstance(variable, str) else None

    if kind == "twilio":
        token = secret("auth_token_env")
        callback = options.get("status_callback")
        if token and isinstance(callback, str):
            return TwilioReceipts(name, token, callback)
    if kind == "whatsapp_cloud":
        app_secret = secret("app_secret_env")
        if app_secret:
            return WhatsAppReceipts(name, app_secret, secret("verify_token_env"))
    if kind == "rcs_rbm":
        client_token = secret("client_token_env")
        if client_token:
            return RbmReceipts(name, client_token)
    if kind == "voice_tasks":
        callback_secret = secret("callback_secret_env")
        if callback_secret:
            return VoiceOutcomes(name, callback_secret)
    return None
