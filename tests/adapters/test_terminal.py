"""Hostile text in the data (escape sequences, BEL, line breaks, a
right-to-left override) reaches neither a message nor the analyst's
terminal: the plan, the outbox and every human-readable output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.providers.outbox import read_outbox
from adapters.terminal import printable, printable_text
from dsl.characters import is_hidden

RUN_POLICY = Path(__file__).parent / "fixtures" / "run" / "ruleset"
AS_OF = "2024-10-06T09:00"

# The ids and names the tester used, one customer each. C1's id would set
# the terminal's title; the names ring, recolour, break a line, reverse.
CUSTOMERS = {
    "C1\x1b]0;pwned\x07": "B\x07\x1b[31m",
    "C2": "Ana\nMaria",
    "C3\u202e": "x\u202eevil",
    "C4": "Jo\u00e3o\r\n\u2066Z\u2069",
}
HIDDEN = "\x07\x1b\u202e\u2066\u2069\r"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The customers above as JSON Lines, each with an open invoice five
    days late (the run policy's D+5 reminder)."""
    folder = tmp_path / "data"
    folder.mkdir()
    customers, invoices = [], []
    for number, (customer_id, name) in enumerate(CUSTOMERS.items(), start=1):
        customers.append(
            {
                "id": customer_id,
                "name": name,
                "phone": f"+55119876500{number:02d}",
                "whatsapp_ok": number % 2 == 1,
            }
        )
        invoices.append(
            {
                "id": f"F{number}",
                "customer_id": customer_id,
                "amount": "120.00",
                "due_date": "2024-10-01",
                "status": "open",
            }
        )
    for name, records in (("customers", customers), ("invoices", invoices)):
        lines = (json.dumps(record) + "\n" for record in records)
        (folder / f"{name}.jsonl").write_text("".join(lines), encoding="utf-8")
    (folder / "payments.jsonl").write_text("", encoding="utf-8")
    return folder


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_shown_safely(output: str) -> None:
    """No hidden character but the line breaks; ids shown escaped."""
    assert not [c for c in output if is_hidden(c) and c != "\n"], ascii(output)
    assert "C1\\x1b]0;pwned\\x07" in output


# The helper ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("B\x07\x1b[31m", "B\\x07\\x1b[31m"),
        ("Ana\nMaria\r", "Ana\\nMaria\\r"),
        ("x\u202eevil\u2069", "x\\u202eevil\\u2069"),
        ("\ufeffA\u200bB\x9b\x7f", "\\ufeffA\\u200bB\\x9b\\x7f"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("lone \ud800", "lone \\ud800"),
        ("João R$\xa01.234,56 \U0001f468\u200d\U0001f469", None),  # as it is
    ],
)
def test_printable_escapes_what_acts_unseen(text: str, shown: str | None) -> None:
    assert printable(text) == (text if shown is None else shown)
    # The escape is ASCII a terminal prints; nothing hidden is left.
    assert not any(is_hidden(char) for char in printable(text))


def test_printable_text_keeps_its_lines() -> None:
    assert printable_text("a\x1b[2J\nb\u202e\n") == "a\\x1b[2J\nb\\u202e\n"


# Through the commands -------------------------------------------------------------


def test_the_plan_holds_clean_messages_and_the_ids_as_given(data: Path) -> None:
    code, out, err = cli("plan", str(RUN_POLICY), "--data", str(data), "--as-of", AS_OF)

    assert code == 0, err
    actions = [json.loads(line) for line in out.splitlines()[1:]]
    sends = {a["customer"]: a["message"]["body"] for a in actions if a["message"]}
    assert set(sends) == set(CUSTOMERS)  # ids reach the plan unchanged
    for body in sends.values():
        assert not any(is_hidden(char) for char in body), ascii(body)
    assert sends["C2"].startswith("Oi Ana Maria, ")
    assert sends["C3\u202e"].startswith("Oi xevil, ")
    assert sends["C4"].startswith("Oi João Z, ")
    # json escapes the C0 controls left in the ids (the plan keeps the ids
    # as the data has them, so a bidi override in an id stays in the JSON).
    assert not set("\x07\x1b\r") & set(out)


def test_the_plan_table_escapes_what_the_data_holds(data: Path) -> None:
    code, out, err = cli(
        "plan", str(RUN_POLICY), "--data", str(data), "--as-of", AS_OF,
        "--format", "table",
    )  # fmt: skip

    assert code == 0, err
    assert_shown_safely(out)
    assert "[C3\\u202e atraso whatsapp] Oi xevil, " in out


def test_explain_escapes_what_the_data_holds(data: Path) -> None:
    code, out, err = cli(
        "explain", str(RUN_POLICY), "--data", str(data), "--as-of", AS_OF,
        "--customer", "C1\x1b]0;pwned\x07",
    )  # fmt: skip

    assert code == 0, err
    assert_shown_safely(out)
    assert "message: Oi B[31m, a fatura F1" in out


def test_an_unknown_customer_is_named_escaped(data: Path) -> None:
    code, _, err = cli(
        "explain", str(RUN_POLICY), "--data", str(data), "--as-of", AS_OF,
        "--customer", "Z\u202e\x1b[2J",
    )  # fmt: skip

    assert code == 2
    assert "\\u202e" in err and "\\x1b[2J" in err
    assert not set(HIDDEN) & set(err)


def test_the_run_sends_clean_messages_and_summarises_safely(
    data: Path, tmp_path: Path
) -> None:
    code, out, err = cli(
        "run", str(RUN_POLICY), "--data", str(data), "--as-of", AS_OF,
        "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip

    assert code == 0, err + out
    outbox = read_outbox(tmp_path / "state" / "outbox.jsonl")
    assert outbox.problems == []
    bodies = {sent["customer"]: sent["message"]["body"] for sent in outbox.messages}
    assert set(bodies) == set(CUSTOMERS)
    for body in bodies.values():
        assert not any(is_hidden(char) for char in body), ascii(body)
    assert bodies["C1\x1b]0;pwned\x07"].startswith("Oi B[31m, ")
    assert_shown_safely(out)


def test_the_diff_report_escapes_what_the_data_holds(
    data: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new"
    shutil.copytree(RUN_POLICY, new)
    policy = new / "ruleset.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(text.replace('whatsapp: "Oi ', 'whatsapp: "Olá '), "utf-8")

    for output_format in ("text", "markdown"):
        code, out, err = cli(
            "diff", str(RUN_POLICY), str(new), "--data", str(data),
            "--from", "2024-10-06", "--to", "2024-10-06", "--at", "09:00",
            "--format", output_format,
        )  # fmt: skip

        assert code == 0, err
        assert_shown_safely(out)
