"""`ruleset diff`: what a policy change does to the plans of real customers.

Both versions of a ruleset are planned for every customer of a data source,
once per day of a date range, at the same wall-clock time in each ruleset's
zone. The two plans are then compared action by action. An action is the
same reminder in both plans when it has the same customer, invoices, kind
and step; what differs between the two is what the report shows: the day it
goes out, its channel, its copy, its decision and, loudest of all, its id.
The id is the ledger's idempotency key, so a new id for an old reminder
means the reminder would be sent a second time.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import zip_longest
from pathlib import Path
from typing import Any

from adapters.sources import open_source
from dsl.model import InputSchema
from engine.calendar import local_datetime
from engine.compiler import CompiledRuleset
from engine.plan import Action, canonical_json
from engine.planner import plan_customer
from engine.records import CustomerRecords, RecordSource

logger = logging.getLogger(__name__)

# Decisions that are something to do; the others only record why not.
TO_DO = frozenset({"send", "flag", "block", "offer", "escalate"})

# What may differ between two occurrences of the same reminder, in the order
# the report lists them.
ASPECTS = ("moved", "channel", "copy", "decision", "details")

# A reminder's identity across the two plans: customer, invoices, kind, step.
ActionKey = tuple[str, tuple[str, ...], str, str]

NO_SEGMENT = "(none)"


class RevisionError(Exception):
    """A ruleset named by git revision that cannot be read. Says why."""


# Reading a ruleset at a git revision ---------------------------------------


def split_revision(spec: str) -> tuple[str, str] | None:
    """`"HEAD~1:rulesets/varejo"` -> `("HEAD~1", "rulesets/varejo")`.

    A spec that exists on disk is a path even when it holds a colon; so is
    one without a colon. Anything else is `REV:PATH`, with PATH read as git
    reads it: from the top of the repository, or from the current directory
    when it starts with `./`.
    """
    if Path(spec).exists() or ":" not in spec:
        return None
    revision, _, path = spec.partition(":")
    if not revision or not path:
        return None
    return revision, path


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, timeout=120
        )
    except FileNotFoundError as exc:
        raise RevisionError(
            "git is not installed, so a revision cannot be read"
        ) from exc


def _git_message(result: subprocess.CompletedProcess[bytes]) -> str:
    text = result.stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"git exited with {result.returncode}"


def export_revision(spec: str, destination: Path, *, cwd: Path | None = None) -> Path:
    """Write the ruleset `REV:PATH` names into `destination`; return its path.

    A folder is exported whole (`git archive` of its tree), a single-file
    ruleset as that one file. Raises RevisionError outside a git repository,
    for an unknown revision, or for a path the revision does not hold.
    """
    parts = split_revision(spec)
    if parts is None:
        raise RevisionError(f"{spec!r} is neither a path nor REV:PATH")
    revision, path = parts
    here = cwd or Path.cwd()

    top = _git(["rev-parse", "--show-toplevel"], here)
    if top.returncode != 0:
        raise RevisionError(
            f"{spec!r} names a git revision, but {here} is not inside a git repository"
        )
    toplevel = Path(top.stdout.decode().strip())
    if _git(
        ["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], here
    ).returncode:
        raise RevisionError(f"{spec!r}: git knows no revision {revision!r}")

    found = _git(["rev-parse", "--verify", "--quiet", f"{revision}:{path}"], here)
    if found.returncode != 0:
        raise RevisionError(
            f"{spec!r}: revision {revision} has no {path!r} (PATH is read from"
            " the top of the repository; start it with ./ for the current folder)"
        )
    oid = found.stdout.decode().strip()
    kind = _git(["cat-file", "-t", oid], here).stdout.decode().strip()
    name = Path(path).name or "ruleset"
    target = destination / name

    if kind == "blob":
        content = _git(["cat-file", "blob", oid], here)
        target.write_bytes(content.stdout)
        return target
    if kind != "tree":
        raise RevisionError(f"{spec!r} is a git {kind}, not a file or folder")
    # `git archive` restricts itself to the current folder when run below the
    # top of the repository, so it runs at the top.
    archive = _git(["archive", "--format=tar", oid], toplevel)
    if archive.returncode != 0:
        raise RevisionError(f"{spec!r}: {_git_message(archive)}")
    target.mkdir()
    archive_path = destination / f".{name}.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        # The "data" filter refuses links and paths that leave the folder.
        tar.extractall(target, filter="data")
    archive_path.unlink()
    return target


@contextmanager
def resolved_ruleset(spec: str) -> Iterator[Path]:
    """The ruleset path for `spec`: itself, or a temporary export of REV:PATH."""
    if split_revision(spec) is None:
        yield Path(spec)
        return
    workdir = Path(tempfile.mkdtemp(prefix="ruleset-diff-"))
    try:
        yield export_revision(spec, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# Comparing two plans ------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """One action as planned by the run of one day."""

    day: dt.date
    action: Action

    def summary(self) -> dict[str, Any]:
        action = self.action
        start = action.window_start
        return {
            "day": self.day,
            "id": action.id,
            "decision": action.decision,
            "channel": action.channel,
            "send_from": start,
            "segment": action.segment,
        }


@dataclass(frozen=True)
class ActionChange:
    """The same reminder in both plans, or in one of them only."""

    key: ActionKey
    change: str  # "added" | "removed" | "changed"
    aspects: tuple[str, ...]
    old: Occurrence | None
    new: Occurrence | None

    @property
    def id_changed(self) -> bool:
        return (
            self.old is not None
            and self.new is not None
            and self.old.action.decision in TO_DO
            and self.new.action.decision in TO_DO
            and self.old.action.id != self.new.action.id
        )

    def id_reason(self) -> str:
        """Which part of the idempotency key moved, in words."""
        if self.old is None or self.new is None:
            return ""
        before, after = self.old.action, self.new.action
        reasons = []
        if before.channel_kind != after.channel_kind:
            reasons.append(
                f"channel kind {before.channel_kind} -> {after.channel_kind}"
            )
        if before.due_date != after.due_date:
            reasons.append(f"due date {before.due_date} -> {after.due_date}")
        if not reasons:
            reasons.append("ruleset name or id scheme changed")
        return "; ".join(reasons)

    def where(self) -> str:
        """`customer c1, invoice f1, step lembrete`."""
        customer, invoices, kind, step = self.key
        text = f"customer {customer}"
        if invoices:
            text += f", invoice {','.join(invoices)}"
        return text + (f", step {step}" if step else f", {kind}")

    def describe(self) -> str:
        if self.old is None or self.change == "added":
            return f"{self.where()}: added ({_occurrence_text(self.new)})"
        if self.new is None or self.change == "removed":
            now = ""
            if self.new is not None:
                now = f", now {self.new.action.decision}{_reason_text(self.new.action)}"
            return f"{self.where()}: removed ({_occurrence_text(self.old)}{now})"
        return f"{self.where()}: " + "; ".join(
            _aspect_text(aspect, self.old, self.new) for aspect in self.aspects
        )

    def to_json(self) -> dict[str, Any]:
        customer, invoices, kind, step = self.key
        result: dict[str, Any] = {
            "customer": customer,
            "invoices": list(invoices),
            "kind": kind,
            "step": step or None,
            "change": self.change,
            "aspects": list(self.aspects),
            "old": self.old.summary() if self.old else None,
            "new": self.new.summary() if self.new else None,
        }
        if self.id_changed:
            result["id_change"] = self.id_reason()
        return result


def _when(occurrence: Occurrence) -> str:
    start = occurrence.action.window_start
    return start.strftime("%Y-%m-%d %H:%M") if start else occurrence.day.isoformat()


def _occurrence_text(occurrence: Occurrence | None) -> str:
    if occurrence is None:
        return ""
    action = occurrence.action
    parts = [_when(occurrence)]
    if action.channel:
        parts.append(action.channel)
    if action.decision != "send":
        parts.append(action.decision)
    return ", ".join(parts)


def _reason_text(action: Action) -> str:
    reason = action.why.get("reason") or action.why.get("suppression")
    return f" ({reason})" if isinstance(reason, str) else ""


def _aspect_text(aspect: str, old: Occurrence, new: Occurrence) -> str:
    if aspect == "moved":
        return f"moved {_when(old)} -> {_when(new)}"
    if aspect == "channel":
        return f"channel {old.action.channel} -> {new.action.channel}"
    if aspect == "decision":
        return f"decision {old.action.decision} -> {new.action.decision}"
    if aspect == "copy":
        return "copy changed"
    return "details changed"


def _aspects(old: Occurrence, new: Occurrence) -> tuple[str, ...]:
    before, after = old.action, new.action
    found = []
    if old.day != new.day or before.window_start != after.window_start:
        found.append("moved")
    if before.channel != after.channel:
        found.append("channel")
    if canonical_json(before.message) != canonical_json(after.message):
        found.append("copy")
    if before.decision != after.decision:
        found.append("decision")
    if canonical_json(before.details) != canonical_json(after.details):
        found.append("details")
    return tuple(found)


def action_key(action: Action) -> ActionKey:
    return (action.customer_id, action.invoice_ids, action.kind, action.step or "")


def compare_actions(
    old: Iterable[Occurrence], new: Iterable[Occurrence]
) -> list[ActionChange]:
    """Pair the occurrences of each reminder and say what changed.

    Occurrences of one key pair up in plan order (the first old with the
    first new, ...). A reminder that is something to do on one side only is
    added or removed, even when the other side records it with a reason
    (suppressed, unreachable): that reason is what a reviewer wants to see.
    Pairs where neither side does anything are not changes.
    """
    by_key: dict[ActionKey, tuple[list[Occurrence], list[Occurrence]]] = {}
    for side, occurrences in ((0, old), (1, new)):
        for occurrence in occurrences:
            pair = by_key.setdefault(action_key(occurrence.action), ([], []))
            pair[side].append(occurrence)

    changes: list[ActionChange] = []
    for key, (olds, news) in by_key.items():
        for index in range(max(len(olds), len(news))):
            before = olds[index] if index < len(olds) else None
            after = news[index] if index < len(news) else None
            change = _change(key, before, after)
            if change is not None:
                changes.append(change)
    return changes


def _change(
    key: ActionKey, old: Occurrence | None, new: Occurrence | None
) -> ActionChange | None:
    old_does = old is not None and old.action.decision in TO_DO
    new_does = new is not None and new.action.decision in TO_DO
    if not old_does and not new_does:
        return None
    if not old_does:
        return ActionChange(key, "added", (), old, new)
    if not new_does:
        return ActionChange(key, "removed", (), old, new)
    assert old is not None and new is not None
    aspects = _aspects(old, new)
    change = ActionChange(key, "changed", aspects, old, new)
    return change if aspects or change.id_changed else None


# The report ---------------------------------------------------------------


@dataclass
class Volume:
    """Messages to send and their cost, for one day and channel."""

    old_messages: int = 0
    old_cost: Decimal = Decimal(0)
    new_messages: int = 0
    new_cost: Decimal = Decimal(0)


@dataclass(frozen=True)
class CustomerDay:
    """One ruleset's plan for one customer on one day."""

    day: dt.date
    segment: str | None
    actions: Sequence[Action]


@dataclass
class DiffReport:
    """Everything `ruleset diff` says, built one customer at a time.

    Counts cover every customer; examples keep the first `examples` of each
    kind in the source's order, so the report stays small on big data.
    """

    old_label: str
    new_label: str
    first_day: dt.date
    last_day: dt.date
    run_time: dt.time
    examples: int = 5
    currency: str = ""
    customers: int = 0
    segment_moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    segment_examples: dict[tuple[str, str], list[str]] = field(
        default_factory=lambda: defaultdict(list)
    )
    change_counts: Counter[str] = field(default_factory=Counter)
    change_examples: dict[str, list[ActionChange]] = field(
        default_factory=lambda: defaultdict(list)
    )
    resends: int = 0
    resend_examples: list[ActionChange] = field(default_factory=list)
    volume: dict[tuple[dt.date, str], Volume] = field(
        default_factory=lambda: defaultdict(Volume)
    )
    problems: list[str] = field(default_factory=list)

    def add_customer(
        self, customer_id: str, old: Sequence[CustomerDay], new: Sequence[CustomerDay]
    ) -> None:
        """Fold one customer's daily plans, old and new, into the report."""
        self.customers += 1
        self._add_segments(customer_id, old, new)
        for side, days in (("old", old), ("new", new)):
            for plan in days:
                self._add_volume(side, plan)

        changes = compare_actions(
            (Occurrence(day.day, action) for day in old for action in day.actions),
            (Occurrence(day.day, action) for day in new for action in day.actions),
        )
        for change in changes:
            categories = [change.change] if change.change != "changed" else []
            categories.extend(change.aspects)
            for category in categories:
                self.change_counts[category] += 1
                examples = self.change_examples[category]
                if len(examples) < self.examples:
                    examples.append(change)
            if change.id_changed:
                self.resends += 1
                if len(self.resend_examples) < self.examples:
                    self.resend_examples.append(change)

    def _add_segments(
        self, customer_id: str, old: Sequence[CustomerDay], new: Sequence[CustomerDay]
    ) -> None:
        # A customer counts once, under the first day the two segments differ.
        for before, after in zip(old, new, strict=True):
            if before.segment != after.segment:
                move = (before.segment or NO_SEGMENT, after.segment or NO_SEGMENT)
                self.segment_moves[move] += 1
                if len(self.segment_examples[move]) < self.examples:
                    self.segment_examples[move].append(customer_id)
                return

    def _add_volume(self, side: str, plan: CustomerDay) -> None:
        for action in plan.actions:
            if action.kind != "message" or action.decision != "send":
                continue
            cell = self.volume[(plan.day, action.channel or "")]
            cost = action.cost or Decimal(0)
            if side == "old":
                cell.old_messages += 1
                cell.old_cost += cost
            else:
                cell.new_messages += 1
                cell.new_cost += cost

    @property
    def segment_changes(self) -> int:
        return sum(self.segment_moves.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old_label,
            "new": self.new_label,
            "from": self.first_day,
            "to": self.last_day,
            "run_time": self.run_time,
            "currency": self.currency,
            "customers": self.customers,
            "segments": [
                {
                    "from": move[0],
                    "to": move[1],
                    "customers": count,
                    "examples": list(self.segment_examples[move]),
                }
                for move, count in sorted(self.segment_moves.items())
            ],
            "actions": {
                category: {
                    "count": self.change_counts[category],
                    "examples": [
                        change.to_json() for change in self.change_examples[category]
                    ],
                }
                for category in ("added", "removed", *ASPECTS)
            },
            "id_changes": {
                "count": self.resends,
                "examples": [change.to_json() for change in self.resend_examples],
            },
            "volume": [
                {
                    "day": day,
                    "channel": channel,
                    "old_messages": cell.old_messages,
                    "new_messages": cell.new_messages,
                    "old_cost": cell.old_cost,
                    "new_cost": cell.new_cost,
                }
                for (day, channel), cell in sorted(self.volume.items())
            ],
            "problems": list(self.problems),
        }


# Rendering ----------------------------------------------------------------

_CATEGORY_TITLES = {
    "added": "added",
    "removed": "removed",
    "moved": "moved in time",
    "channel": "changed channel",
    "copy": "changed copy",
    "decision": "changed decision",
    "details": "changed details",
}


def _volume_rows(report: DiffReport) -> list[tuple[str, str, str, str]]:
    """(day, channel, messages before -> after, cost before -> after) rows,
    followed by a total per channel."""
    rows = []
    totals: dict[str, Volume] = defaultdict(Volume)
    for (day, channel), cell in sorted(report.volume.items()):
        rows.append(
            (
                day.isoformat(),
                channel,
                _arrow(cell.old_messages, cell.new_messages),
                _arrow(_cost(cell.old_cost), _cost(cell.new_cost)),
            )
        )
        total = totals[channel]
        total.old_messages += cell.old_messages
        total.new_messages += cell.new_messages
        total.old_cost += cell.old_cost
        total.new_cost += cell.new_cost
    for channel, total in sorted(totals.items()):
        rows.append(
            (
                "total",
                channel,
                _arrow(total.old_messages, total.new_messages),
                _arrow(_cost(total.old_cost), _cost(total.new_cost)),
            )
        )
    return rows


def _arrow(before: object, after: object) -> str:
    return str(before) if before == after else f"{before} -> {after}"


def _cost(value: Decimal) -> str:
    """At least cents; more places when a channel's price has them."""
    exponent = value.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{value:.{places}f}"


def _heading(report: DiffReport) -> str:
    return (
        f"{report.customers} customers planned once a day from"
        f" {report.first_day} to {report.last_day}, as of"
        f" {report.run_time.strftime('%H:%M')} in each ruleset's time zone"
    )


def _resend_lines(report: DiffReport) -> list[str]:
    lines = []
    for change in report.resend_examples:
        assert change.old is not None and change.new is not None  # id_changed
        lines.append(
            f"{change.where()}: {change.old.action.id} -> {change.new.action.id}"
            f" ({change.id_reason()})"
        )
    return lines


def format_text(report: DiffReport) -> str:
    """The report for a terminal."""
    lines = [
        f"ruleset diff: {report.old_label} -> {report.new_label}",
        _heading(report),
    ]
    if report.resends:
        lines += [
            "",
            f"!! {report.resends} action(s) CHANGE ID for the same customer, invoice"
            " and step.",
            "!! The ledger will not recognise them: anything already sent would be"
            " sent again.",
        ]
        lines += [f"!!   {line}" for line in _resend_lines(report)]
    else:
        lines += ["", NO_ID_CHANGE]

    lines += ["", f"Segments: {report.segment_changes} customer(s) change segment"]
    for move, count in sorted(report.segment_moves.items()):
        examples = ", ".join(report.segment_examples[move])
        lines.append(f"  {move[0]} -> {move[1]}: {count} (e.g. {examples})")

    total = sum(report.change_counts.values())
    lines += ["", f"Actions: {total} change(s)"]
    for category, title in _CATEGORY_TITLES.items():
        count = report.change_counts[category]
        if not count:
            continue
        lines.append(f"  {title}: {count}")
        lines += [f"    {c.describe()}" for c in report.change_examples[category]]

    lines += ["", "Messages and cost per day and channel (before -> after):"]
    rows = _volume_rows(report)
    if rows:
        rows.insert(0, ("day", "channel", "messages", f"cost {report.currency}"))
    else:
        lines.append("  no messages in either plan")
    widths = [max(len(row[i]) for row in rows) for i in range(4)] if rows else []
    for row in rows:
        lines.append(
            "  "
            + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        )

    if report.problems:
        lines += ["", f"Input problems ({len(report.problems)}):"]
        lines += [f"  {problem}" for problem in report.problems]
    return "\n".join(lines)


NO_ID_CHANGE = (
    "Action ids: no reminder changes id, so nothing already sent is sent again."
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_markdown(report: DiffReport) -> str:
    """The report as a pull-request comment (GitHub-flavoured Markdown)."""
    lines = [
        f"### ruleset diff: `{report.old_label}` → `{report.new_label}`",
        "",
        _heading(report) + ".",
    ]
    if report.resends:
        lines += [
            "",
            "> [!CAUTION]",
            f"> **{report.resends} action(s) change id** for the same customer,"
            " invoice and step. The ledger will not recognise them: anything"
            " already sent would be **sent a second time**.",
            ">",
        ]
        lines += [f"> - {_cell(line)}" for line in _resend_lines(report)]
    else:
        lines += ["", NO_ID_CHANGE]

    lines += ["", f"#### Segments: {report.segment_changes} customer(s) move", ""]
    if report.segment_moves:
        lines += ["| from | to | customers | examples |", "|---|---|---:|---|"]
        for move, count in sorted(report.segment_moves.items()):
            examples = ", ".join(report.segment_examples[move])
            lines.append(f"| {move[0]} | {move[1]} | {count} | {_cell(examples)} |")
    else:
        lines.append("No customer changes segment.")

    lines += ["", "#### Actions", ""]
    if any(report.change_counts.values()):
        lines += ["| change | count |", "|---|---:|"]
        for category, title in _CATEGORY_TITLES.items():
            if report.change_counts[category]:
                lines.append(f"| {title} | {report.change_counts[category]} |")
        lines += ["", "<details><summary>Examples</summary>", ""]
        for category in _CATEGORY_TITLES:
            lines += [
                f"- {_cell(c.describe())}" for c in report.change_examples[category]
            ]
        lines += ["", "</details>"]
    else:
        lines.append("No action changes.")

    lines += ["", "#### Messages and cost per day and channel", ""]
    rows = _volume_rows(report)
    if rows:
        lines += [
            f"| day | channel | messages | cost ({report.currency}) |",
            "|---|---|---:|---:|",
        ]
        lines += [f"| {' | '.join(_cell(v) for v in row)} |" for row in rows]
    else:
        lines.append("No messages in either plan.")

    if report.problems:
        lines += ["", f"#### Input problems ({len(report.problems)})", ""]
        lines += [f"- {_cell(problem)}" for problem in report.problems]
    return "\n".join(lines)


def format_json(report: DiffReport) -> str:
    """The report as one canonical JSON document."""
    return canonical_json(report.to_json())


# Planning both versions ---------------------------------------------------


class DiffError(Exception):
    """The two versions cannot be compared on this data. Says why."""


def _schema_shape(inputs: InputSchema) -> dict[str, dict[str, tuple[str, int | None]]]:
    """The input schema without locations: what a data source must deliver."""
    return {
        kind: {
            name: (str(declared.type), declared.max_length)
            for name, declared in getattr(inputs, kind).items()
        }
        for kind in ("customer", "invoice", "payment")
    }


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _customers_in_step(
    old: RecordSource, new: RecordSource | None
) -> Iterator[tuple[CustomerRecords, CustomerRecords]]:
    """Each customer's records as each version reads them.

    When the two versions declare the same inputs, the data is read once.
    Otherwise it is read twice, in lockstep: a source yields customers in
    the order of its files, whatever the schema.
    """
    if new is None:
        for records in old.customers():
            yield records, records
        return
    for before, after in zip_longest(old.customers(), new.customers()):
        before_id = before.customer["id"] if before else None
        after_id = after.customer["id"] if after else None
        if before is None or after is None or before_id != after_id:
            raise DiffError(
                "the data gives the two versions different customers"
                f" ({before_id} and {after_id}): a record that one version's"
                " inputs accept and the other's reject changes the grouping;"
                " fix the records listed as problems, or compare with"
                " --on-bad-record fail"
            )
        yield before, after


def diff_rulesets(
    old: CompiledRuleset,
    new: CompiledRuleset,
    data: str | Path,
    *,
    first: dt.date,
    last: dt.date,
    run_time: dt.time = dt.time(0, 0),
    on_error: str = "fail",
    base_dir: Path | None = None,
    old_label: str = "old",
    new_label: str = "new",
    examples: int = 5,
) -> DiffReport:
    """Plan both versions for every customer of `data` and every day from
    `first` to `last`, and compare.

    Each day is one run at `run_time` in each ruleset's zone that considers
    only the steps whose day is that day (as a scheduler running daily
    does; nothing is caught up). Bad input records end up in
    `report.problems`; `on_error` is what the caller will do about them.
    Raises SourceConfigError for unusable data and DiffError when the two
    versions see different customers.
    """
    report = DiffReport(
        old_label, new_label, first, last, run_time, examples, new.ruleset.currency
    )
    old_source = open_source(
        data, old.ruleset.inputs, on_error=on_error, base_dir=base_dir
    )
    new_source = None
    if _schema_shape(old.ruleset.inputs) != _schema_shape(new.ruleset.inputs):
        new_source = open_source(
            data, new.ruleset.inputs, on_error=on_error, base_dir=base_dir
        )

    days = days_between(first, last)
    for before, after in _customers_in_step(old_source, new_source):
        report.add_customer(
            before.customer["id"],
            _plan_days(old, before, days, run_time),
            _plan_days(new, after, days, run_time),
        )

    for label, source in ((old_label, old_source), (new_label, new_source)):
        if source is not None:
            report.problems.extend(f"{label}: {p}" for p in source.problems)
    logger.debug("diff planned %d customers over %d days", report.customers, len(days))
    return report


def _plan_days(
    compiled: CompiledRuleset,
    records: CustomerRecords,
    days: Sequence[dt.date],
    run_time: dt.time,
) -> list[CustomerDay]:
    plans = []
    for day in days:
        as_of = local_datetime(day, run_time, compiled.zone)
        planned = plan_customer(compiled, records, as_of, since=day)
        plans.append(CustomerDay(day, planned.segment, planned.actions))
    return plans
