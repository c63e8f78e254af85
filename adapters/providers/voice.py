"""Voice: create a call task for a voice agent; never dial ourselves.

A voice-agent platform places the call, reads (or converses from) the
script and reports the outcome later. Sending means creating the task:

    POST {url}
    Authorization: Bearer <token>          (when token_env is set)
    Idempotency-Key: <action id>
    {"action_id": ..., "customer_id": ..., "to": "+5511...",
     "script": "...", "language": "pt-BR", "callback_url": "https://..."}

    201/202 {"task_id": "...", "status": "queued"}

The script is the template's `script` field when the policy has one, else
the message body. The outcome arrives at `callback_url` as a signed POST
(see `VoiceOutcomes` in adapters/providers/status.py):

    {"task_id": ..., "action_id": ..., "outcome": "completed" | "no_answer"
     | "busy" | "failed" | "voicemail", "at": "<ISO 8601>", ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.providers.base import OutboundMessage, PermanentFailure, SendResult
from adapters.providers.http import (
    HttpClient,
    accepted_now,
    answer_id,
    client_from,
    e164,
    field_at,
    json_body,
)
from adapters.providers.options import Options

MAX_SCRIPT = 5000  # characters; a reminder call is a minute, not a speech


class VoiceTasks:
    """Creates call tasks on a voice-agent platform."""

    # The task API takes the action id as Idempotency-Key (module
    # docstring): a platform creates one task, one call, per key.
    idempotency_keys = True

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        url: str,
        callback_url: str,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        task_id_field: str = "task_id",
        language: str | None = None,
        caller_id: str | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._url = url
        self._callback_url = callback_url
        self._headers = dict(headers or {})
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._task_id_field = task_id_field
        self._language = language
        self._caller_id = caller_id

    @classmethod
    def from_options(cls, name: str, options: Options) -> VoiceTasks:
        options.secret("callback_secret_env", required=False)  # status receiver
        return cls(
            name,
            client_from(options),
            url=options.url("url"),
            callback_url=options.url("callback_url"),
            token=options.secret("token_env", required=False),
            headers=options.headers("headers"),
            task_id_field=options.text("task_id_field", "task_id"),
            language=options.text("language", None),
            caller_id=options.text("caller_id", None),
        )

    def task(self, message: OutboundMessage) -> dict[str, Any]:
        """The call task for one message."""
        script = str(message.extras.get("script") or message.body).strip()
        if not script:
            raise PermanentFailure("the call script is empty", provider=self.name)
        if len(script) > MAX_SCRIPT:
            raise PermanentFailure(
                f"the call script has {len(script)} characters; the limit is "
                f"{MAX_SCRIPT}",
                provider=self.name,
            )
        task: dict[str, Any] = {
            "action_id": message.action_id,
            "customer_id": message.customer_id,
            "to": e164(message, self.name),
            "script": script,
            "callback_url": self._callback_url,
        }
        language = message.extras.get("language") or self._language
        if language:
            task["language"] = str(language)
        if self._caller_id:
            task["caller_id"] = self._caller_id
        return task

    def send(self, message: OutboundMessage) -> SendResult:
        task = self.task(message)
        response = self._client.call(
            "POST",
            self._url,
            headers={
                **self._headers,
                "Content-Type": "application/json",
                "Idempotency-Key": message.action_id,
            },
            body=json_body(task),
        )

        payload = response.json()
        details: dict[str, Any] = {}
        status = field_at(payload, "status")
        if isinstance(status, str):
            details["status"] = status
        return SendResult(
            provider=self.name,
            provider_message_id=answer_id(payload, self._task_id_field, details),
            accepted_at=accepted_now(),
            details=details,
        )

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""
