"""The outbox provider: every message appended to a JSON Lines file.

It is the default provider of every channel: a run with no configuration
"sends" into `.ruleset/outbox.jsonl`, where a person or another system can
read exactly what would have gone out. Each line is canonical JSON (sorted
keys) with the action id, channel, address, message and time.

Appends are crash-safe: each line is written with a single `write` under an
exclusive `flock`, then `fsync`ed. A process killed in the middle of a
write can still leave a partial last line; the next append notices that
the file does not end with a newline, starts on a new line (so the partial
line never glues onto a good one) and reports the partial line in
`problems`. Readers (`read_outbox`) report such lines instead of failing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.providers.base import OutboundMessage, SendResult, TemporaryFailure
from engine.plan import canonical_json

logger = logging.getLogger(__name__)

KIND = "outbox"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxProvider:
    """Appends each message as one line of canonical JSON to `path`.

    Options (run configuration): `path` (the file; its folder is created),
    `fsync` (default true; false only for throwaway files in tests).
    """

    # Appending again writes a second line: nothing deduplicates.
    idempotency_keys = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = KIND,
        fsync: bool = True,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.fsync = fsync
        self.problems: list[str] = []
        self._clock = clock
        self._fd: int | None = None

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], env: Mapping[str, str]
    ) -> OutboxProvider:
        """Build from run-configuration options; `env` is not needed (the
        outbox has no secrets) but keeps the registry's signature."""
        unknown = sorted(set(options) - {"path", "fsync"})
        if unknown:
            raise ValueError(f"unknown outbox option(s): {', '.join(unknown)}")
        if "path" not in options:
            raise ValueError("the outbox provider needs a `path`")
        fsync = options.get("fsync", True)
        if not isinstance(fsync, bool):
            raise ValueError("outbox option `fsync` must be true or false")
        return cls(str(options["path"]), name=name, fsync=fsync)

    def send(self, message: OutboundMessage) -> SendResult:
        accepted_at = self._clock()
        line = canonical_json(_entry(message, accepted_at)) + "\n"
        try:
            offset = self._append(line.encode("utf-8"))
        except OSError as exc:
            raise TemporaryFailure(
                f"cannot append to {self.path}: {exc.strerror or exc}",
                provider=self.name,
                # Bytes written before the error (fsync failing, a full
                # disk mid-line) may be the message already in the file.
                details={"outcome_unknown": isinstance(exc, _PartialAppend)},
            ) from exc
        return SendResult(
            provider=self.name,
            provider_message_id=f"{self.path.name}@{offset}",
            accepted_at=accepted_at,
            details={"path": str(self.path), "offset": offset},
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(
                self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            if created and self.fsync:
                _fsync_directory(self.path.parent)
        return self._fd

    def _append(self, data: bytes) -> int:
        """Append `data` on a line of its own; return its byte offset."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                self._report_partial_line(fd, size)
                data = b"\n" + data
                size += 1
            view = memoryview(data)
            try:
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                if len(view) < len(data):
                    raise _PartialAppend(exc.errno, exc.strerror) from exc
                raise
            return size
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _report_partial_line(self, fd: int, size: int) -> None:
        start = _start_of_last_line(fd, size)
        problem = (
            f"{self.path}: the last line (byte {start}, {size - start} bytes) "
            "was cut short by an interrupted write; it is left as it is and "
            "the next message starts on a new line"
        )
        self.problems.append(problem)
        logger.warning("%s", problem)


class _PartialAppend(OSError):
    """An append that failed after some of its bytes were written."""


def _entry(message: OutboundMessage, accepted_at: dt.datetime) -> dict[str, Any]:
    return {
        "action_id": message.action_id,
        "channel": message.channel,
        "channel_kind": message.channel_kind,
        "customer": message.customer_id,
        "address": message.address,
        "message": {
            "body": message.body,
            "subject": message.subject,
            "html": message.html,
            "extras": message.extras,
        },
        "at": accepted_at,
    }


def _start_of_last_line(fd: int, size: int) -> int:
    """The offset just after the last newline before `size` (or 0)."""
    position = size
    while position > 0:
        chunk_start = max(0, position - 4096)
        chunk = os.pread(fd, position - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return chunk_start + newline + 1
        position = chunk_start
    return 0


def _fsync_directory(folder: Path) -> None:
    """Make a newly created file's directory entry durable too."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class OutboxContents:
    """What an outbox file holds: the messages, and the lines that are not
    whole messages (each with its line number)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_outbox(path: str | os.PathLike[str]) -> OutboxContents:
    """Read an outbox file, reporting partial or unreadable lines."""
    contents = OutboxContents()
    location = Path(path)
    if not location.exists():
        return contents
    with location.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                ending = "" if raw.endswith(b"\n") else " (no newline: cut short)"
                contents.problems.append(
                    f"{location}:{number}: not a whole message{ending}"
                )
                continue
            if not isinstance(entry, dict):
                contents.problems.append(f"{location}:{number}: not a JSON object")
                continue
            contents.messages.append(entry)
    return contents
