"""Characters that act without being seen.

Control characters (Unicode category Cc: BEL, ESC and the terminal escape
sequences it starts, NUL, DEL, C1 controls), format characters (Cf: the
bidi overrides and isolates U+202A..U+202E and U+2066..U+2069, the marks
U+200E/U+200F, zero-width spaces, U+FEFF, the soft hyphen, tag
characters), line and paragraph separators (Zl, Zp) and lone surrogates
(Cs) change what a reader sees, or what a terminal does, without showing
themselves. A customer's name in the data may hold one, and so may the
copy of a policy under review ("Trojan Source").

Each ring deals with them its own way and decides with `is_hidden`: the
engine takes them out of data values inserted into messages, `validate`
warns about them in policy text (W303), and the CLI shows them escaped.

The zero-width joiner and non-joiner (U+200D, U+200C) are format
characters too, but they are kept everywhere: they only say whether the
characters beside them join (emoji sequences such as a family or a flag
with a skin tone, Persian and Indic writing), so removing them would
change how a name is written while they cannot reorder or hide text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

JOINERS = frozenset("\u200c\u200d")

_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_hidden(char: str) -> bool:
    """True for one character that acts without being seen (see above)."""
    if char in JOINERS:
        return False
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def hidden_offsets(text: str) -> Iterator[int]:
    """The offset in `text` of each hidden character, in order."""
    # Printable text (most of it) holds none: str.isprintable is false for
    # every hidden category, so the character walk runs only when needed.
    if text.isprintable():
        return
    for offset, char in enumerate(text):
        if is_hidden(char):
            yield offset


def describe(char: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: the code point and its name."""
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cc":
        name = _CONTROL_NAMES.get(char, "control character")
    elif not name:
        name = "unnamed character"
    return f"U+{ord(char):04X} {name}"


# unicodedata has no names for controls; the ones people meet in text.
_CONTROL_NAMES = {
    "\x00": "NULL",
    "\x07": "BELL",
    "\x08": "BACKSPACE",
    "\t": "CHARACTER TABULATION",
    "\n": "LINE FEED",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\r": "CARRIAGE RETURN",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
    "\x85": "NEXT LINE",
    "\x9b": "CONTROL SEQUENCE INTRODUCER",
}
