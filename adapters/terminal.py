"""Text for people's terminals: what the data holds, never what it does.

Names, ids, messages and policy text shown by the CLI may hold characters
that act on a terminal or on the reader instead of showing: ESC starts
sequences that recolour, move the cursor or retitle the window, BEL
rings, a carriage return overwrites the line, U+202E reverses what
follows. Every human-readable output goes through `printable` (one
line, `echo_lines`) or `printable_text` (a block of lines, `echo`), which
write such characters as Python escapes (`\\x1b`, `\\n`, `\\u202e`): the
analyst sees that they are there and the terminal is left alone.

JSON output is left as json writes it: it is read by programs, json
escapes the C0 controls (ESC, BEL, line breaks) itself, and an escape of
ours inside a JSON string would change the document.

The characters are those of `dsl.characters.is_hidden`; the zero-width
joiners are shown as they are (they draw emoji sequences and some
scripts).
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from dsl.characters import hidden_offsets


def printable(text: str) -> str:
    """`text` with every hidden character escaped, line breaks included."""
    offsets = list(hidden_offsets(text))
    if not offsets:
        return text
    pieces: list[str] = []
    start = 0
    for offset in offsets:
        pieces.append(text[start:offset])
        pieces.append(_escaped(text[offset]))
        start = offset + 1
    pieces.append(text[start:])
    return "".join(pieces)


def printable_text(text: str) -> str:
    """A block of lines: each line as `printable` has it, "\\n" kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


def echo(text: str = "", *, err: bool = False) -> None:
    """`click.echo` of a block of human-readable text (`printable_text`)."""
    click.echo(printable_text(text), err=err)


def echo_lines(lines: Iterable[str], *, err: bool = False) -> None:
    """Lines of a report, each one line on the screen (`printable`): a line
    break in the data shows as `\\n`, it does not start a line of its own."""
    for line in lines:
        click.echo(printable(line), err=err)


def _escaped(char: str) -> str:
    # The escape Python itself would write: \x1b, \n, \u202e, \U000e0041, and
    # \ud800 for a lone surrogate (which could not be printed at all).
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")
