"""The JSON Schema of policy files (package data `dsl/policy.schema.json`).

It drives the structural check (`dsl.structure`) and `ruleset schema` prints
it for editors. The root describes a ruleset's main file;
`#/$defs/inputs` and `#/$defs/templates` describe files it references, and
`#/$defs/fragment` a file holding some top-level keys of a ruleset split
over several files.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("dsl").joinpath("policy.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def policy_schema() -> dict[str, Any]:
    """A fresh copy of the policy schema (callers may change it freely)."""
    return copy.deepcopy(_schema())


def shared_schema() -> dict[str, Any]:
    """The schema itself, for read-only use inside `dsl`."""
    return _schema()
