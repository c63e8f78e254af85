"""`ruleset run` with every channel on a real local server: the plan's
copy (RCS card fields, the WhatsApp template mapping, e-mail subject and
HTML) travels through the runner to each provider's wire format."""

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


def apis(request: Recorded) -> Reply:
    """RBM, the Graph API and a Twilio-style API on one local server."""
    if request.path.endswith("/capabilities"):
        return Reply(200, {"features": ["RICHCARD_STANDALONE", "ACTION_OPEN_URL"]})
    if request.path.endswith("/agentMessages"):
        return Reply(200, {"name": "phones/x/agentMessages/y"})
    if request.path.endswith("/messages"):
        return Reply(200, {"messages": [{"id": "wamid.B"}]})
    if request.path.endswith("/Messages.json"):
        return Reply(201, {"sid": "SM3", "status": "queued"})
    return Reply(404, {"message": "no such API"})


def test_every_channel_reaches_its_provider(tmp_path: Path) -> None:
    with HttpServer(apis) as http, SmtpServer() as smtp:
        config = tmp_path / "run.yaml"
        config.write_text(
            f"""\
data: {FIXTURE / "data"}
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

        report = json.loads(result.output)
        requests = {request.path: request for request in http.requests}
        mail = smtp.mail

    assert result.exit_code == 0, result.output
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

    ledger = Ledger.open(sqlite_url(tmp_path / "state" / "ledger.sqlite3"))
    assert ledger is not None
    try:
        with ledger.engine.connect() as connection:
            table = ledger.tables["actions"]
            rows = {
                row.channel: (row.state, row.provider_message_id)
                for row in connection.execute(table.select())
            }
    finally:
        ledger.close()
    assert rows["whatsapp"] == ("sent", "wamid.B")
    assert rows["sms"] == ("sent", "SM3")
    assert rows["rcs"][0] == rows["email"][0] == "sent"
    assert rows["email"][1].endswith("@loja.example.com>")
