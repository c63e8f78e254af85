"""SMS through HTTP APIs: the Twilio-style form post and a generic JSON POST.

`TwilioSms` speaks the Messages resource most SMS gateways copy:

    POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json
    Authorization: Basic base64(AccountSid:AuthToken)
    To=+5511...&From=+5511...&Body=...&StatusCallback=https://...

and answers `201 {"sid": "SM...", "status": "queued", "num_segments": "1"}`
or `400 {"code": 21211, "message": "...", "more_info": "...", "status": 400}`.

`JsonSms` posts a JSON body built from a template in the run
configuration, for gateways with their own shape. `${to}`, `${body}`,
`${action_id}`, `${customer_id}` and `${from}` are replaced inside the
template's strings, after it is parsed, so message text can never change
the JSON's structure.

Both report the segment count and encoding in `SendResult.details`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from adapters.providers.base import OutboundMessage, SendResult
from adapters.providers.http import (
    HttpClient,
    HttpResponse,
    ProviderError,
    accepted_now,
    answer_id,
    basic_auth,
    client_from,
    e164,
    json_body,
)
from adapters.providers.options import Options, check_placeholders
from dsl.sms import count as count_sms

TWILIO_BASE_URL = "https://api.twilio.com"

# What a JSON template may refer to.
JSON_PLACEHOLDERS = ("to", "body", "action_id", "customer_id", "from")

DEFAULT_JSON_BODY: dict[str, Any] = {
    "to": "${to}",
    "text": "${body}",
    "reference": "${action_id}",
}


def sms_segments(body: str) -> dict[str, Any]:
    """Segments and encoding of a body, as the gateway will split it."""
    counted = count_sms(body)
    return {
        "segments": counted.segments,
        "encoding": counted.encoding,
        "length": counted.length,
    }


def twilio_error(response: HttpResponse) -> ProviderError:
    """Twilio's error body: `{"code": 21211, "message": "...", ...}`."""
    payload = response.json()
    if isinstance(payload, dict) and payload.get("message"):
        code = payload.get("code")
        return ProviderError(
            str(payload["message"]), None if code is None else str(code)
        )
    return ProviderError(response.text(200) or f"HTTP {response.status}")


class TwilioSms:
    """SMS through a Twilio-style Messages API."""

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        account_sid: str,
        auth_token: str,
        sender: str | None,
        messaging_service_sid: str | None = None,
        base_url: str = TWILIO_BASE_URL,
        status_callback: str | None = None,
        idempotency_header: str | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._url = (
            f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
            "/Messages.json"
        )
        self._authorization = basic_auth(account_sid, auth_token)
        self._sender = sender
        self._messaging_service_sid = messaging_service_sid
        self._status_callback = status_callback
        self._idempotency_header = idempotency_header
        # Twilio's Messages API takes no idempotency key; a compatible
        # gateway that does is configured with `idempotency_header`.
        self.idempotency_keys = bool(idempotency_header)

    @classmethod
    def from_options(cls, name: str, options: Options) -> TwilioSms:
        # The account SID is an identifier, not a secret; some keep it in
        # the environment beside the token all the same.
        literal_sid = options.text("account_sid", None)
        env_sid = options.secret(
            "account_sid_env", required=False, literal_allowed=True
        )
        if (literal_sid is None) == (env_sid is None):
            raise options.error(
                "set exactly one of account_sid, account_sid_env", "account_sid"
            )
        sender = options.text("from", None)
        service = options.text("messaging_service_sid", None)
        if (sender is None) == (service is None):
            raise options.error("set exactly one of from, messaging_service_sid")
        return cls(
            name,
            client_from(options),
            account_sid=literal_sid or env_sid or "",
            auth_token=options.secret("auth_token_env") or "",
            sender=sender,
            messaging_service_sid=service,
            base_url=options.url("base_url", TWILIO_BASE_URL),
            status_callback=options.url("status_callback", None),
            idempotency_header=options.header_name("idempotency_header", None),
        )

    def send(self, message: OutboundMessage) -> SendResult:
        fields = {"To": e164(message, self.name), "Body": message.body}
        if self._sender is not None:
            fields["From"] = self._sender
        if self._messaging_service_sid is not None:
            fields["MessagingServiceSid"] = self._messaging_service_sid
        if self._status_callback is not None:
            fields["StatusCallback"] = self._status_callback
        headers = {
            "Authorization": self._authorization,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if self._idempotency_header:
            headers[self._idempotency_header] = message.action_id

        response = self._client.call(
            "POST",
            self._url,
            headers=headers,
            body=urlencode(fields).encode("ascii"),
            read_error=twilio_error,
        )

        payload = response.json()
        answer = payload if isinstance(payload, dict) else {}
        details = sms_segments(message.body)
        if answer.get("status"):
            details["status"] = str(answer["status"])
        if answer.get("num_segments") is not None:
            details["provider_segments"] = str(answer["num_segments"])
        sid = answer.get("sid")
        if not sid:
            details["warning"] = "accepted, but the answer carried no message sid"
        return SendResult(
            provider=self.name,
            provider_message_id=str(sid) if sid else None,
            accepted_at=accepted_now(),
            details=details,
        )

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""


class JsonSms:
    """SMS through a gateway taking a JSON POST whose shape is configured."""

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        message_id_field: str,
        sender: str | None = None,
        idempotency_header: str | None = "Idempotency-Key",
    ) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._headers = dict(headers)
        self._body = body
        self._message_id_field = message_id_field
        self._sender = sender
        self._idempotency_header = idempotency_header
        # The gateway deduplicates only if it is sent the key.
        self.idempotency_keys = bool(idempotency_header)

    @classmethod
    def from_options(cls, name: str, options: Options) -> JsonSms:
        sender = options.text("from", None)
        body = options.mapping("body", DEFAULT_JSON_BODY)
        allowed = [p for p in JSON_PLACEHOLDERS if p != "from" or sender is not None]
        for path, text in _strings(body, "body"):
            check_placeholders(text, allowed, options, path)
        # `false` turns the header off for a gateway that rejects it.
        idempotency: str | None = None
        if options.raw("idempotency_header", "Idempotency-Key") is not False:
            idempotency = options.header_name("idempotency_header", "Idempotency-Key")
        return cls(
            name,
            client_from(options),
            url=options.url("url"),
            headers=options.headers("headers"),
            body=body,
            message_id_field=options.text("message_id_field", "id"),
            sender=sender,
            idempotency_header=idempotency,
        )

    def send(self, message: OutboundMessage) -> SendResult:
        values = {
            "to": e164(message, self.name),
            "body": message.body,
            "action_id": message.action_id,
            "customer_id": message.customer_id,
            "from": self._sender or "",
        }
        headers = {"Content-Type": "application/json", **self._headers}
        if self._idempotency_header:
            headers[self._idempotency_header] = message.action_id

        response = self._client.call(
            "POST",
            self._url,
            headers=headers,
            body=json_body(_fill(self._body, values)),
        )

        details = sms_segments(message.body)
        return SendResult(
            provider=self.name,
            provider_message_id=answer_id(
                response.json(), self._message_id_field, details
            ),
            accepted_at=accepted_now(),
            details=details,
        )

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""


def _strings(template: Any, path: str) -> list[tuple[str, str]]:
    """Every string inside a JSON template, with its path for errors."""
    if isinstance(template, str):
        return [(path, template)]
    if isinstance(template, Mapping):
        return [
            found
            for key, value in template.items()
            for found in _strings(value, f"{path}.{key}")
        ]
    if isinstance(template, list):
        return [
            found
            for index, value in enumerate(template)
            for found in _strings(value, f"{path}[{index}]")
        ]
    return []


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    """The template with placeholders replaced in its strings, as values."""
    if isinstance(template, str):
        return string.Template(template).substitute(values)
    if isinstance(template, Mapping):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, values) for value in template]
    return template
