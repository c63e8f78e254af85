"""`ruleset diff`: what a policy change does to the plans of real customers.

Both versions of a ruleset are planned for every customer of a data source,
once per day of a date range, at the same wall-clock time in each ruleset's
zone. The two plans are then compared action by action. An action is the
same reminder in both plans when it has the same customer, invoices, kind
and step; what differs between the two is what the report shows: the day it
goes out, its channel, its copy, its decision and, loudest of all, its id.
The id is the ledger's idempotency key, so a new id for an old reminder
means the reminder would be sent a second time.

The parts: `revisions` (a ruleset at a git revision), `planning` (both
versions over the days), `compare` (pairing actions), `report` (counts and
examples) and `render` (text, Markdown, JSON).
"""

from __future__ import annotations

from adapters.diff.compare import (
    ActionChange,
    Occurrence,
    action_key,
    compare_actions,
)
from adapters.diff.planning import DiffError, days_between, diff_rulesets
from adapters.diff.render import format_json, format_markdown, format_text
from adapters.diff.report import CustomerDay, DiffReport
from adapters.diff.revisions import (
    RevisionError,
    export_revision,
    resolved_ruleset,
    split_revision,
)

__all__ = (
    "ActionChange",
    "CustomerDay",
    "DiffError",
    "DiffReport",
    "Occurrence",
    "RevisionError",
    "action_key",
    "compare_actions",
    "days_between",
    "diff_rulesets",
    "export_revision",
    "format_json",
    "format_markdown",
    "format_text",
    "resolved_ruleset",
    "split_revision",
)
