"""The diff report as text, Markdown (a pull-request comment) or JSON.

Text and Markdown lines name customers, steps and copy from the data:
each line goes through `adapters.terminal.printable`, so an escape
sequence in a customer's id shows as `\\x1b` and does nothing.
"""

from __future__ import annotations

from collections import defaultdict

from adapters.diff.report import DiffReport, Volume
from adapters.terminal import printable
from engine.plan import canonical_json

_CATEGORY_TITLES = {
    "added": "added",
    "removed": "removed",
    "step": "renamed step",
    "moved": "moved in time",
    "channel": "changed channel",
    "copy": "changed copy",
    "decision": "changed decision",
    "details": "changed details",
}


def _volume_rows(report: DiffReport) -> list[tuple[str, str, str, str]]:
    """(day, channel, messages before -> after, cost before -> after) rows,
    followed by a total per channel. Costs are written as the plan writes
    them, in the ruleset's locale."""
    money = report.money
    rows = []
    totals: dict[str, Volume] = defaultdict(Volume)
    for (day, channel), cell in sorted(report.volume.items()):
        rows.append(
            (
                day.isoformat(),
                channel,
                _arrow(cell.old_messages, cell.new_messages),
                _arrow(money(cell.old_cost), money(cell.new_cost)),
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
                _arrow(money(total.old_cost), money(total.new_cost)),
            )
        )
    return rows


def _arrow(before: object, after: object) -> str:
    return str(before) if before == after else f"{before} -> {after}"


def _heading(report: DiffReport) -> str:
    return (
        f"{report.customers} customers planned once a day from"
        f" {report.first_day} to {report.last_day}, as of"
        f" {report.run_time.strftime('%H:%M')} in each ruleset's time zone"
    )


def _held_line(report: DiffReport) -> str:
    """Ids that change where the runner's step key still stops a resend."""
    return (
        f"{report.held_by_step} reminder(s) change action id but keep their step"
        " key (same customer, invoices, step and due date): the runner skips"
        " them once the step went out on another channel."
    )


def _resend_lines(report: DiffReport) -> list[str]:
    lines = []
    for change in report.resend_examples:
        assert change.old is not None and change.new is not None  # resends
        lines.append(
            f"{change.where()}: {change.old.action.id} -> {change.new.action.id}"
            f" ({change.id_reason()})"
        )
    return lines


def _error_line(report: DiffReport) -> str:
    return (
        f"{report.errors['new']} customer-day(s) could not be planned by the new"
        f" version and {report.errors['old']} by the old one (an expression"
        " failed, e.g. a division by zero): their reminders are missing from"
        " the comparison."
    )


def format_text(report: DiffReport) -> str:
    """The report for a terminal."""
    lines = [
        f"ruleset diff: {report.old_label} -> {report.new_label}",
        _heading(report),
    ]
    if report.resends:
        lines += [
            "",
            f"!! {report.resends} reminder(s) GET A NEW ID AND STEP KEY for the same"
            " customer, invoices and due date.",
            "!! The ledger will not recognise them by id or step key. The runner"
            " still sends one message per customer, invoices and due date a day,"
            " but what its ruleset name or due date changed is sent again.",
        ]
        lines += [f"!!   {line}" for line in _resend_lines(report)]
    else:
        lines += ["", NO_ID_CHANGE]
    if report.held_by_step:
        lines.append(_held_line(report))
    if report.errors:
        lines += ["", f"!! {_error_line(report)}"]
        lines += [f"!!   {example}" for example in report.error_examples]

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
        rows.insert(0, ("day", "channel", "messages", "cost"))
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
    if report.notes:
        lines += ["", "Data source notes:"]
        lines += [f"  {note}" for note in report.notes]
    return "\n".join(printable(line) for line in lines)


NO_ID_CHANGE = (
    "Action ids: no reminder gets a new id and step key, so nothing already"
    " sent is sent again."
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
            f"> **{report.resends} reminder(s) get a new id and step key** for the"
            " same customer, invoices and due date. The ledger will not"
            " recognise them by id or step key. The runner still sends one"
            " message per customer, invoices and due date a day, but what its"
            " ruleset name or due date changed is **sent a second time**.",
            ">",
        ]
        lines += [f"> - {_cell(line)}" for line in _resend_lines(report)]
    else:
        lines += ["", NO_ID_CHANGE]
    if report.held_by_step:
        lines += ["", _held_line(report)]
    if report.errors:
        lines += ["", "> [!WARNING]", f"> {_error_line(report)}", ">"]
        lines += [f"> - {_cell(example)}" for example in report.error_examples]

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
            "| day | channel | messages | cost |",
            "|---|---|---:|---:|",
        ]
        lines += [f"| {' | '.join(_cell(v) for v in row)} |" for row in rows]
    else:
        lines.append("No messages in either plan.")

    if report.problems:
        lines += ["", f"#### Input problems ({len(report.problems)})", ""]
        lines += [f"- {_cell(problem)}" for problem in report.problems]
    if report.notes:
        lines += ["", "#### Data source notes", ""]
        lines += [f"- {_cell(note)}" for note in report.notes]
    return "\n".join(printable(line) for line in lines)


def format_json(report: DiffReport) -> str:
    """The report as one canonical JSON document."""
    return canonical_json(report.to_json())
