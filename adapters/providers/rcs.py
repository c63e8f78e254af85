"""RCS through an RBM-style (RCS Business Messaging) API.

Every send asks first whether the phone can receive RCS:

    GET  {base_url}/v1/phones/{phone}/capabilities?requestId=...&agentId=...
         200 {"features": ["RICHCARD_STANDALONE", "ACTION_OPEN_URL", ...]}
         404 {"error": {"code": 404, "status": "NOT_FOUND", ...}}  no RCS

and, when it can, sends a rich card whose suggested action opens the
payment link:

    POST {base_url}/v1/phones/{phone}/agentMessages?messageId=<action id>&agentId=...
         {"contentMessage": {"richCard": {"standaloneCard": {...}}}}

The action id is the message id, so the API itself refuses a second copy
(409 ALREADY_EXISTS, which we take as "already accepted").

A phone without RCS (or one that cannot show rich cards) raises
`FallbackRequired` naming the fallback channel (the `fallback_channel`
option), with a plain-text body that keeps the payment link, for a runner
to send through that channel's provider (docs/providers.md). Authentication is a
bearer token from the environment (an OAuth access token of the RBM
service account, refreshed outside this process).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote, urlencode

from adapters.providers.base import (
    FallbackRequired,
    OutboundMessage,
    PermanentFailure,
    SendResult,
)
from adapters.providers.http import (
    HttpClient,
    accepted_now,
    client_from,
    default_error,
    e164,
    failure_for,
    json_body,
)
from adapters.providers.options import Options

RBM_BASE_URL = "https://rcsbusinessmessaging.googleapis.com"
RICH_CARD = "RICHCARD_STANDALONE"
DEFAULT_BUTTON_LABEL = "Pagar agora"

# RBM's limits on a standalone card.
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_SUGGESTION_TEXT = 25


class RbmRcs:
    """Rich cards with a "pay now" action over an RBM-style API."""

    # The action id is the RBM messageId: a second copy is refused (409).
    idempotency_keys = True

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        agent_id: str,
        token: str,
        base_url: str = RBM_BASE_URL,
        fallback_channel: str | None = None,
        button_label: str = DEFAULT_BUTTON_LABEL,
    ) -> None:
        self.name = name
        self._client = client
        self._agent_id = agent_id
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._fallback_channel = fallback_channel
        self._button_label = button_label

    @classmethod
    def from_options(cls, name: str, options: Options) -> RbmRcs:
        label = options.text("button_label", DEFAULT_BUTTON_LABEL)
        if len(label) > MAX_SUGGESTION_TEXT:
            raise options.error(
                f"at most {MAX_SUGGESTION_TEXT} characters", "button_label"
            )
        options.secret("client_token_env", required=False)  # status receiver
        return cls(
            name,
            client_from(options),
            agent_id=options.text("agent_id"),
            token=options.secret("token_env") or "",
            base_url=options.url("base_url", RBM_BASE_URL),
            fallback_channel=options.text("fallback_channel", None),
            button_label=label,
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _url(self, phone: str, resource: str, **query: str) -> str:
        query_text = urlencode({**query, "agentId": self._agent_id})
        path = f"/v1/phones/{quote(phone, safe='+')}/{resource}"
        return f"{self._base_url}{path}?{query_text}"

    def capabilities(self, phone: str) -> frozenset[str] | None:
        """The phone's RCS features, or None when it has no RCS."""
        response = self._client.request(
            "GET",
            self._url(phone, "capabilities", requestId=str(uuid.uuid4())),
            headers=self._headers(),
        )
        if response.status == 404:
            return None
        if not 200 <= response.status < 300:
            raise failure_for(self.name, response, default_error(response))
        payload = response.json()
        features = payload.get("features") if isinstance(payload, dict) else None
        if not isinstance(features, list):
            return frozenset()
        return frozenset(str(feature) for feature in features)

    def card(self, message: OutboundMessage) -> dict[str, Any]:
        """The agent message: a standalone rich card with a pay-now action."""
        extras = message.extras
        content: dict[str, Any] = {"description": message.body}
        title = extras.get("title")
        if title:
            content["title"] = str(title)
        label = str(extras.get("button_label") or self._button_label)
        url = self._payment_url(message)
        if url:
            content["suggestions"] = [
                {
                    "action": {
                        "text": label,
                        "postbackData": f"pay_now:{message.action_id}",
                        "openUrlAction": {"url": url},
                    }
                }
            ]

        for field, limit, text in (
            ("title", MAX_TITLE, content.get("title", "")),
            ("description", MAX_DESCRIPTION, message.body),
            ("button label", MAX_SUGGESTION_TEXT, label if url else ""),
        ):
            if len(text) > limit:
                raise PermanentFailure(
                    f"RCS card {field} has {len(text)} characters; the limit "
                    f"is {limit}",
                    provider=self.name,
                )
        return {
            "contentMessage": {
                "richCard": {
                    "standaloneCard": {
                        "cardOrientation": "VERTICAL",
                        "cardContent": content,
                    }
                }
            }
        }

    def send(self, message: OutboundMessage) -> SendResult:
        phone = e164(message, self.name)
        card = self.card(message)

        features = self.capabilities(phone)
        if features is None:
            raise self._fallback(message, "no_rcs", "the phone has no RCS")
        if RICH_CARD not in features:
            raise self._fallback(
                message, "no_rich_card", "the phone cannot show rich cards"
            )

        response = self._client.request(
            "POST",
            self._url(phone, "agentMessages", messageId=message.action_id),
            headers={**self._headers(), "Content-Type": "application/json"},
            body=json_body(card),
        )
        details: dict[str, Any] = {"features": sorted(features)}
        if response.status == 404:
            # The phone lost RCS between the check and the send.
            raise self._fallback(message, "no_rcs", "the phone has no RCS")
        if response.status == 409:
            # messageId is our action id: the API already has this message.
            details["duplicate"] = True
        elif not 200 <= response.status < 300:
            raise failure_for(self.name, response, default_error(response))
        if (
            "suggestions"
            not in card["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]
        ):
            details["warning"] = "no payment link: the card has no pay-now action"
        return SendResult(
            provider=self.name,
            provider_message_id=message.action_id,
            accepted_at=accepted_now(),
            details=details,
        )

    def _fallback(
        self, message: OutboundMessage, reason: str, text: str
    ) -> FallbackRequired:
        channel = self._fallback_channel
        body = message.body
        url = self._payment_url(message)
        if url and url not in body:
            body = f"{body} {url}"
        where = f"; falling back to {channel}" if channel else "; no fallback channel"
        return FallbackRequired(
            f"{text}{where}",
            provider=self.name,
            fallback_channel=channel,
            body=body,
            reason=reason,
        )

    def _payment_url(self, message: OutboundMessage) -> str | None:
        url = message.extras.get("button_url")
        if not url:
            return None
        if not str(url).startswith(("https://", "http://")):
            raise PermanentFailure(
                f"payment link {str(url)[:60]!r} is not an http(s) URL",
                provider=self.name,
            )
        return str(url)

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""
