"""A standard output that a closed pipe cannot break.

`ruleset run ... | head -1` closes the pipe while the command still has a
summary to print. The run's result is what the exit code says, so a reader
that went away must not turn it into a traceback or exit 1: once a write
finds the pipe closed, everything more written to standard output is
dropped, and the command ends with its own exit code.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer


class _PipeWriter(io.RawIOBase):
    """Writes to a file descriptor until its reader goes away, then drops."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.reader_gone = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Buffer, /) -> int:
        size = memoryview(data).nbytes
        if self.reader_gone:
            return size
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            self.reader_gone = True
            return size


def guard_stdout() -> None:
    """Make `sys.stdout` drop what is written after its pipe closed.

    Only the process's real standard output is replaced: a stream a test
    harness put there is left alone.
    """
    stream = sys.stdout
    if stream is None or isinstance(getattr(stream, "buffer", None), _Guarded):
        return
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    stream.flush()
    sys.stdout = io.TextIOWrapper(
        _Guarded(_PipeWriter(fd)),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=bool(stream.line_buffering),
    )


class _Guarded(io.BufferedWriter):
    """The buffer of a guarded standard output."""
