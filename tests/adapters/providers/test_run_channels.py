"""`ruleset run` with every channel on a real local server: the plan's
copy (RCS card fields, the WhatsApp template mapping, e-mail subject and
HTML) travels through the runner to each provider's wire format, and a
phone without RCS gets the SMS fallback under the same action."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from adapters.cli import main
from adapters.ledger import Ledger, sqlite_url
from tests.adapters.providers.servers import HttpServer, Recorded, Reply, SmtpServer

FIXTURE = Path(__file__).parent / "fixtures" / "channels_run"
ENV = {"RBM_TOKEN": "rbm", "WA_TOKEN": "wa", "TWILIO_TOKEN": "tw"}
NO_RCS_PHONE = "+5511911112222"


def apis(request: Recorded) -> Reply:
    """RBM, the Graph API and a Twilio-style API on one local server."""
    if request.path.endswith("/capabilities"):
        if NO_RCS_PHONE in request.path:
            return Reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        return Reply(200, {"features": ["RICHCARD_STANDALONE", "ACTION_OPEN_URL"]})
    if request.path.endswith("/agentMessages"):
        return Reply(200, {"name": "phones/x/agentMessages/y"})
    if request.path.endswith("/messages"):
        return Reply(200, {"messages": [{"id": "wamid.B"}]})
    if request.path.endswith("/Messages.json"):
        return Reply(201, {"sid": "SM3", "status": "queued"})
    return Reply(404, {"message": "no such API"})


def run(
    tmp_path: Path, data: Path, http: HttpServer, smtp: SmtpServer
) -> tuple[int, dict[str, Any]]:
    """`ruleset run` with each channel on its local server: (exit, report)."""
    config = tmp_path / "run.yaml"
    config.write_text(
        f"""\
data: {data}
state_dir: {tmp_path / "state"}
providers:
  rcs: {{kind: rcs_rbm, agent_id: loja, token_env: RBM_TOKEN,
        fallback_channel: sms, base_url: "{http.url}"}}
  whatsapp: {{kind: whatsapp_cloud, phone_number_id: "1065", token_env: WA_TOKEN,
             base_url: "{http.url}"}}
  sms: {{kind: twilio, account_sid: AC1, auth_token_env: TWILIO_TOKEN,
        from: "+5511900000000", base_url: "{http.url}"}}
  email: {{kind: smtp, host: 127.0.0.1, port: {smtp.port}, security: none,
          from_address: cobranca@loja.example.com}}
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main,
        ["run", str(FIXTURE / "ruleset.yaml"), "--config", str(config),
         "--as-of", "2024-10-01T10:00", "--format", "json"],
        env=ENV,
    )  # fmt: skip
    return result.exit_code, json.loads(result.output)


def actions_by_channel(tmp_path: Path) -> dict[str, tuple[dict[str, Any], Any]]:
    """Each ledger action, with its attempts, by planned channel."""
    ledger = Ledger.open(sqlite_url(tmp_path / "state" / "ledger.sqlite3"))
    assert ledger is not None
    try:
        with ledger.engine.connect() as connection:
            table = ledger.tables["actions"]
            rows = [dict(row) for row in connection.execute(table.select()).mappings()]
        return {
            row["channel"]: (row, ledger.attempts(row["action_id"])) for row in rows
        }
    finally:
        ledger.close()


def test_every_channel_reaches_its_provider(tmp_path: Path) -> None:
    with HttpServer(apis) as http, SmtpServer() as smtp:
        exit_code, report = run(tmp_path, FIXTURE / "data", http, smtp)
        requests = {request.path: request for request in http.requests}
        mail = smtp.mail

    assert exit_code == 0, report
    assert report["outcomes"] == {"sent": 4}

    card = requests["/v1/phones/+5511987650001/agentMessages"].json()
    content = card["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]
    assert content["title"] == "Sua fatura vence hoje"
    assert content["description"] == "Ana, a fatura F1 de R$\xa0120,00 vence hoje."
    [action] = content["suggestions"]
    assert action["action"]["openUrlAction"] == {"url": "https://pague.example.com/F1"}

    whatsapp = requests["/v21.0/1065/messages"].json()
    assert whatsapp["template"] == {
        "name": "vence_hoje",
        "language": {"code": "pt_BR"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Bruno"},
                    {"type": "text", "text": "R$\xa080,50"},
                ],
            }
        ],
    }

    sms = requests["/2010-04-01/Accounts/AC1/Messages.json"].form()
    assert sms["To"] == "+5511987650003"
    assert sms["Body"].endswith("https://pague.example.com/F3")

    [received] = mail
    message: Any = email.message_from_bytes(
        received.content, policy=email.policy.default
    )
    assert received.rcpt_tos == ("davi@example.com",)
    assert str(message["Subject"]) == "Sua fatura de R$\xa01.234,56 vence hoje"
    assert message.get_content_type() == "multipart/alternative"

    rows = {
        channel: (row["state"], row["provider_message_id"])
        for channel, (row, _) in actions_by_channel(tmp_path).items()
    }
    assert rows["whatsapp"] == ("sent", "wamid.B")
    assert rows["sms"] == ("sent", "SM3")
    assert rows["rcs"][0] == rows["email"][0] == "sent"
    assert rows["email"][1].endswith("@loja.example.com>")


def test_a_phone_without_rcs_gets_the_sms_fallback_under_the_same_action(
    tmp_path: Path,
) -> None:
    with HttpServer(apis) as http, SmtpServer() as smtp:
        exit_code, report = run(tmp_path, FIXTURE / "data_no_rcs", http, smtp)
        paths = [request.path for request in http.requests]
        sms = http.requests[-1].form()

    assert exit_code == 0, report
    assert report["outcomes"] == {"sent": 1}
    # The capability check said no: no card was sent, the SMS went instead.
    assert paths == [
        f"/v1/phones/{NO_RCS_PHONE}/capabilities",
        "/2010-04-01/Accounts/AC1/Messages.json",
    ]
    assert sms["To"] == NO_RCS_PHONE
    # The RCS copy's no-break space (after R$) is a plain one in the SMS.
    assert sms["Body"] == (
        "Ivo, a fatura F9 de R$ 60,00 vence hoje. https://pague.example.com/F9"
    )
    [(channel, (row, attempts))] = actions_by_channel(tmp_path).items()
    assert channel == "rcs"  # one action, as planned
    assert (row["state"], row["provider_message_id"]) == ("sent", "SM3")
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("rcs", "permanent"),
        ("sms", "sent"),
    ]
    assert json.loads(attempts[0]["details"])["fallback"]["reason"] == "no_rcs"
