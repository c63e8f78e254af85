"""WhatsApp through the WhatsApp Business Cloud API: template messages.

A message a business starts (every collection reminder) must use a
template Meta approved beforehand; free text is only allowed within 24
hours of the customer writing in. So the policy maps its WhatsApp copy to
a template name, a language and positional body parameters, and the plan
message carries them in `extras` (`template`, `language`, `params`):

    POST {base_url}/{api_version}/{phone_number_id}/messages
    Authorization: Bearer <token>
    {"messaging_product": "whatsapp", "to": "5511...", "type": "template",
     "template": {"name": ..., "language": {"code": "pt_BR"},
                  "components": [{"type": "body", "parameters": [...]}]},
     "biz_opaque_callback_data": "<action id>"}

The answer is `{"messages": [{"id": "wamid...."}]}`; errors come in the
Graph API shape `{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`. The API takes no idempotency key; the action id travels
as `biz_opaque_callback_data`, which status webhooks echo back.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from adapters.providers.base import OutboundMessage, PermanentFailure, SendResult
from adapters.providers.http import (
    HttpClient,
    HttpResponse,
    ProviderError,
    accepted_now,
    client_from,
    e164,
    field_at,
    json_body,
)
from adapters.providers.options import Options
from dsl.model import Ruleset

GRAPH_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"

# Graph error codes that mean "slow down", whatever the HTTP status:
# 4 app-level throttling, 80007 WhatsApp Business Account rate limit,
# 130429 throughput reached, 131048 spam rate limit, 131056 too many
# messages to the same recipient.
RATE_LIMIT_CODES = frozenset({"4", "80007", "130429", "131048", "131056"})

# The API rejects parameters with line breaks, tabs or 4+ spaces in a row.
_PARAM_WHITESPACE = re.compile(r"[\r\n\t]+| {4,}")


def graph_error(response: HttpResponse) -> ProviderError:
    """The Graph API error shape, with rate limits marked retryable."""
    payload = response.json()
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return ProviderError(response.text(200) or f"HTTP {response.status}")
    code = None if error.get("code") is None else str(error["code"])
    message = str(error.get("message") or "no message")
    detail = field_at(error, "error_data.details")
    if detail:
        message += f" ({detail})"
    extra: dict[str, Any] = {}
    for key in ("type", "error_subcode", "fbtrace_id"):
        if error.get(key) is not None:
            extra[f"graph_{key}"] = error[key]
    return ProviderError(
        message,
        code,
        retryable=code in RATE_LIMIT_CODES or error.get("is_transient") is True,
        extra=extra,
    )


class WhatsAppCloud:
    """Template messages through the WhatsApp Business Cloud API."""

    # The Cloud API takes no idempotency key: a second POST is a second
    # message on the customer's phone.
    idempotency_keys = False

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        phone_number_id: str,
        token: str,
        api_version: str = DEFAULT_API_VERSION,
        base_url: str = GRAPH_BASE_URL,
        default_language: str | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._url = (
            f"{base_url.rstrip('/')}/{quote(api_version, safe='')}/"
            f"{quote(phone_number_id, safe='')}/messages"
        )
        self._token = token
        self._default_language = default_language

    @classmethod
    def from_options(cls, name: str, options: Options) -> WhatsAppCloud:
        version = options.text("api_version", DEFAULT_API_VERSION)
        if not re.fullmatch(r"v\d+\.\d+", version):
            raise options.error("must look like v21.0", "api_version")
        # Read here so a configuration naming them is accepted; the status
        # receiver (adapters/providers/status.py) uses them.
        options.secret("app_secret_env", required=False)
        options.secret("verify_token_env", required=False)
        return cls(
            name,
            client_from(options),
            phone_number_id=options.text("phone_number_id"),
            token=options.secret("token_env") or "",
            api_version=version,
            base_url=options.url("base_url", GRAPH_BASE_URL),
            default_language=options.text("language", None),
        )

    def policy_problems(self, ruleset: Ruleset, channel: str) -> list[str]:
        """Every WhatsApp variant a step can send on `channel` maps to an
        approved template with a language; each one that does not would
        fail permanently at send time, so a run refuses to start."""
        problems: list[str] = []
        checked: set[str] = set()
        for ladder in ruleset.ladders.values():
            for step in ladder.steps:
                name = step.template
                if channel not in step.channels or name is None or name in checked:
                    continue
                checked.add(name)
                template = ruleset.templates.get(name)
                variant = None if template is None else template.variants.get(channel)
                if variant is None:
                    continue  # `ruleset validate` reports a missing variant
                where = f"{variant.body.location}: template {name!r}, {channel!r}"
                if variant.provider_template is None:
                    problems.append(
                        f"{where}: provider {self.name!r} (whatsapp_cloud) sends "
                        "only templates approved by Meta, and this copy (step "
                        f"{ladder.name}/{step.name}) maps to none: add `template`, "
                        "`language` and `params` (docs/language.md, templates)"
                    )
                elif variant.language is None and self._default_language is None:
                    problems.append(
                        f"{where}: WhatsApp template {variant.provider_template!r} "
                        "has no language: set `language` here, or in the "
                        f"options of provider {self.name!r}"
                    )
        return problems

    def request_body(self, message: OutboundMessage) -> dict[str, Any]:
        """The Cloud API request for one message, checked before sending."""
        extras = message.extras
        template = extras.get("template") or extras.get("provider_template")
        if not template:
            raise PermanentFailure(
                "WhatsApp messages a business starts must use a template "
                "approved by Meta; map this copy to one in the policy "
                "(templates.<name>.whatsapp: template, language, params)",
                provider=self.name,
            )
        language = extras.get("language") or self._default_language
        if not language:
            raise PermanentFailure(
                f"WhatsApp template {template!r} has no language (set it in the "
                "policy, or `language` in the provider options)",
                provider=self.name,
            )
        params = extras.get("params") or []
        if not isinstance(params, (list, tuple)):
            raise PermanentFailure(
                "WhatsApp template params must be a list", provider=self.name
            )

        parameters = []
        for position, value in enumerate(params, start=1):
            text = _PARAM_WHITESPACE.sub(" ", str(value)).strip()
            if not text:
                raise PermanentFailure(
                    f"WhatsApp template {template!r}: parameter {{{{{position}}}}} "
                    "is empty (the API rejects empty parameters)",
                    provider=self.name,
                )
            parameters.append({"type": "text", "text": text})

        body: dict[str, Any] = {
            "name": str(template),
            "language": {"code": str(language)},
        }
        if parameters:
            body["components"] = [{"type": "body", "parameters": parameters}]
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": e164(message, self.name).removeprefix("+"),
            "type": "template",
            "template": body,
            "biz_opaque_callback_data": message.action_id,
        }

    def send(self, message: OutboundMessage) -> SendResult:
        request = self.request_body(message)
        response = self._client.call(
            "POST",
            self._url,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
            },
            body=json_body(request),
            read_error=graph_error,
        )

        payload = response.json()
        message_id = field_at(payload, "messages.0.id")
        details: dict[str, Any] = {"template": request["template"]["name"]}
        status = field_at(payload, "messages.0.message_status")
        if status:
            details["status"] = str(status)
        wa_id = field_at(payload, "contacts.0.wa_id")
        if wa_id:
            details["wa_id"] = str(wa_id)
        if not isinstance(message_id, str):
            details["warning"] = "accepted, but the answer carried no message id"
            message_id = None
        return SendResult(
            provider=self.name,
            provider_message_id=message_id,
            accepted_at=accepted_now(),
            details=details,
        )

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""
