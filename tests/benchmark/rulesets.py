"""A policy tree of 50 files for timing `ruleset validate`.

The language allows each top-level key in one file of a ruleset only, so
one ruleset has at most about twenty files. What a finance team with many
portfolios keeps under version control, and what CI validates in one call,
is rather a tree of rulesets: here ten copies of the varejo policy, each
split into five files (the head, inputs, templates, segments and ladders),
each copy with its own name and thresholds so that no two are the same.
"""

from __future__ import annotations

import re
from pathlib import Path

VAREJO = Path(__file__).resolve().parents[2] / "rulesets" / "varejo"
FILES_PER_RULESET = 5

# Top-level keys of varejo's ruleset.yaml that move to each extra file.
_SPLIT = {
    "segments.yaml": (
        "score",
        "segments",
        "credit",
        "suppress",
        "frequency",
        "offers",
        "penalties",
    ),
    "ladders.yaml": ("ladders",),
}
_TOP_LEVEL_KEY = re.compile(r"^([a-z_]+):")


def write_ruleset_tree(folder: Path, *, files: int = 50) -> list[Path]:
    """Write `files // 5` rulesets of five files under `folder`; return
    their directories."""
    if files % FILES_PER_RULESET:
        raise ValueError(f"files must be a multiple of {FILES_PER_RULESET}")
    blocks = _blocks((VAREJO / "ruleset.yaml").read_text(encoding="utf-8"))
    inputs = (VAREJO / "inputs.yaml").read_text(encoding="utf-8")
    templates = (VAREJO / "templates.yaml").read_text(encoding="utf-8")

    written = []
    for number in range(1, files // FILES_PER_RULESET + 1):
        directory = folder / f"carteira_{number:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        moved = {key for keys in _SPLIT.values() for key in keys}
        head = "".join(text for key, text in blocks if key not in moved)
        head = head.replace("ruleset: varejo", f"ruleset: carteira_{number:02d}", 1)
        (directory / "ruleset.yaml").write_text(head, encoding="utf-8")
        for name, keys in _SPLIT.items():
            text = "".join(text for key, text in blocks if key in keys)
            # A threshold of its own per copy: the same shape, other values.
            text = text.replace(
                ">= 60 or score < 40", f">= {30 + number} or score < 40"
            )
            (directory / name).write_text(text, encoding="utf-8")
        (directory / "inputs.yaml").write_text(inputs, encoding="utf-8")
        (directory / "templates.yaml").write_text(templates, encoding="utf-8")
        written.append(directory)
    return written


def _blocks(text: str) -> list[tuple[str | None, str]]:
    """The file cut before each top-level key; comments stay with the key
    they precede."""
    blocks: list[tuple[str | None, str]] = []
    key: str | None = None
    lines: list[str] = []
    pending: list[str] = []  # comments and blank lines not yet placed
    for line in text.splitlines(keepends=True):
        match = _TOP_LEVEL_KEY.match(line)
        if match:
            blocks.append((key, "".join(lines)))
            key, lines = match.group(1), pending + [line]
            pending = []
        elif line.startswith("#") or not line.strip():
            pending.append(line)
        else:
            lines.extend(pending)
            lines.append(line)
            pending = []
    blocks.append((key, "".join(lines + pending)))
    return [(k, t) for k, t in blocks if t]
