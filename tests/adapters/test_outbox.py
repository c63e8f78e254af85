"""The outbox provider: canonical lines, fsync'd appends, partial lines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from adapters.providers.base import OutboundMessage, TemporaryFailure
from adapters.providers.outbox import OutboxProvider, read_outbox

AT = dt.datetime(2024, 10, 6, 12, 0, tzinfo=dt.UTC)


def message(number: int, **changes: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "action_id": f"mes_{number:024d}",
        "channel": "whatsapp",
        "channel_kind": "whatsapp",
        "customer_id": f"C{number}",
        "address": "+5511987654321",
        "body": "Olá João, sua fatura de R$ 1.234,56 vence em 01/10",
        "extras": {"template": "lembrete", "params": ["João"]},
    }
    fields.update(changes)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def test_each_message_is_one_canonical_json_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.jsonl"
    outbox = OutboxProvider(path, clock=lambda: AT)

    first = outbox.send(message(1))
    second = outbox.send(message(2, subject="Fatura", channel="email"))
    outbox.close()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert entry == {
        "action_id": "mes_000000000000000000000001",
        "address": "+5511987654321",
        "at": "2024-10-06T12:00:00+00:00",
        "channel": "whatsapp",
        "channel_kind": "whatsapp",
        "customer": "C1",
        "message": {
            "body": "Olá João, sua fatura de R$ 1.234,56 vence em 01/10",
            "extras": {"params": ["João"], "template": "lembrete"},
            "html": None,
            "subject": None,
        },
    }
    assert lines[0] == json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert first.provider == "outbox"
    assert first.provider_message_id == "outbox.jsonl@0"
    offset = len((lines[0] + "\n").encode("utf-8"))  # bytes, not characters
    assert second.provider_message_id == f"outbox.jsonl@{offset}"
    assert second.details["offset"] == offset


def test_a_partial_last_line_is_reported_and_not_glued_to(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    good = OutboxProvider(path, clock=lambda: AT)
    good.send(message(1))
    good.close()
    with path.open("ab") as stream:  # what a kill mid-write leaves behind
        stream.write(b'{"action_id":"mes_half","addr')

    outbox = OutboxProvider(path, clock=lambda: AT)
    outbox.send(message(2))
    outbox.send(message(3))
    outbox.close()

    assert len(outbox.problems) == 1
    assert "cut short" in outbox.problems[0]
    contents = read_outbox(path)
    assert [m["customer"] for m in contents.messages] == ["C1", "C2", "C3"]
    assert contents.problems == [f"{path}:2: not a whole message"]


def test_reading_reports_a_cut_line_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_bytes(b'{"action_id":"a"}\n{"action_id":"b"')

    contents = read_outbox(path)

    assert contents.messages == [{"action_id": "a"}]
    assert contents.problems == [
        f"{path}:2: not a whole message (no newline: cut short)"
    ]


def test_two_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    one = OutboxProvider(path, fsync=False)
    two = OutboxProvider(path, fsync=False)

    for number in range(50):
        (one if number % 2 else two).send(message(number))
    one.close()
    two.close()

    contents = read_outbox(path)
    assert contents.problems == []
    assert len(contents.messages) == 50


def test_an_unwritable_outbox_is_a_temporary_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    outbox = OutboxProvider(blocker / "outbox.jsonl")

    with pytest.raises(TemporaryFailure, match="cannot append"):
        outbox.send(message(1))


def test_options_are_checked() -> None:
    built = OutboxProvider.from_options("sms", {"path": "x.jsonl"}, {})
    assert built.name == "sms"
    assert built.path == Path("x.jsonl")
    with pytest.raises(ValueError, match="unknown outbox option"):
        OutboxProvider.from_options("sms", {"path": "x", "colour": "red"}, {})
    with pytest.raises(ValueError, match="needs a `path`"):
        OutboxProvider.from_options("sms", {}, {})
