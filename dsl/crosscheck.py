"""Cross checks: how the parts of a ruleset refer to each other.

They run on the merged node tree, not on the model, so that they can point
at the exact name that is wrong (the `template:` of a step, a channel in a
step's list) and so that they run even when an expression elsewhere has an
error. Shapes the schema rejected are skipped: their errors are reported
already. One check needs the parsed templates and runs on the model:
`check_combined`, the copy of reminders that may combine several invoices.

Codes (E4xx errors, W4xx warnings):

| code | problem |
|------|---------|
| E401 | a ladder for an unknown segment (no segment uses it) |
| E402 | a segment's `ladder:` names an unknown ladder |
| E403 | a step names an unknown template |
| E404 | a step names an unknown channel |
| E405 | a step names an unknown offer |
| E406 | a template lacks the variant for a channel its step can use |
| E407 | two steps of one ladder at the same offset |
| E408 | a segment after a catch-all (`when: true`) can never match |
| E409 | a channel without a send window, or naming an unknown one |
| E410 | an offer for an unknown segment |
| E411 | a step with both `escalate` and `channels`, or with neither |
| E412 | an e-mail variant without a subject |
| E413 | score grades not in descending order of `min` |
| E414 | window hours that are inverted or overlap |
| E415 | a channel of unknown kind (no `kind:` and the name is no kind) |
| E416 | a day given twice in one window |
| E417 | a step that sends without a template, or escalates with one |
| E418 | a variant field the channel's kind does not use |
| E419 | a template variant for an unknown channel |
| E420 | a score band whose min is above its max (checked in `dsl.build`) |
| E421 | an offer missing what its kind needs, or with another kind's field |
| E422 | a name used twice (segments, steps of a ladder, ...) |
| E423 | a channel that needs an address has none |
| E424 | combined reminder copy that shows one invoice's field (`check_combined`) |
| W401 | a template, window, channel or offer that nothing uses |
| W402 | a segment without a ladder: its customers get no messages |
| W403 | a step's offer is made to none of the segments using its ladder |
| W404 | `max_segments` on a channel that is not SMS |
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from dsl.ast import Attribute, Name, Node, Template
from dsl.build import parse_offset, weekday_range
from dsl.diagnostics import Diagnostic, Location, Severity
from dsl.expressions import children_of
from dsl.model import CHANNEL_KINDS, WEEKDAYS, MessageTemplate, Ruleset, Step
from dsl.structure import suggest
from dsl.yamlread import YMap, YNode, YScalar, as_list, as_map, text_of

# Fields of a mapping variant each channel kind renders.
VARIANT_FIELDS: dict[str, frozenset[str]] = {
    "sms": frozenset({"text"}),
    "rcs": frozenset({"text", "title", "button_label", "button_url"}),
    "whatsapp": frozenset({"text", "template", "language", "params"}),
    "email": frozenset({"text", "subject", "html"}),
    "voice": frozenset({"text", "script"}),
    "webhook": frozenset({"text"}),
}
ADDRESSLESS_KINDS = frozenset({"webhook"})
OFFER_FIELDS = {"instalments": ("instalments",), "new_date": ("days",)}
_HOURS = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")

# The invoice fields that still tell the truth in a reminder combining several
# invoices (`frequency.same_day: combine`): the amounts are the group's sums,
# the dates and days past due are the earliest invoice's, and the customer is
# the same for all. Any other field (a payment link, a Pix code, a boleto
# line, the id) is one invoice's and would present that invoice as the whole
# debt: a customer paying it would believe the total settled.
COMBINED_INVOICE_FIELDS = frozenset(
    {
        "amount",
        "amount_paid",
        "amount_due",
        "due_date",
        "due_date_effective",
        "days_past_due",
        "customer_id",
    }
)
_COMBINED_LIST = ", ".join(
    f"invoice.{name}" for name in sorted(COMBINED_INVOICE_FIELDS)
)


def cross_check(root: YMap) -> list[Diagnostic]:
    """Every broken reference and inconsistency between parts of a ruleset."""
    checks = _CrossChecks(root)
    checks.run()
    return checks.diagnostics


class _CrossChecks:
    def __init__(self, root: YMap) -> None:
        self.root = root
        self.diagnostics: list[Diagnostic] = []
        self.segments = [m for n in as_list(root.get("segments")) if (m := as_map(n))]
        self.ladders = as_map(root.get("ladders")) or YMap([], root.location)
        self.channels = as_map(root.get("channels")) or YMap([], root.location)
        self.templates = as_map(root.get("templates")) or YMap([], root.location)
        self.offers = as_map(root.get("offers")) or YMap([], root.location)
        self.windows = as_map(root.get("windows")) or YMap([], root.location)
        self.kinds = {
            key.text: kind
            for key, value in self.channels
            if (kind := _kind(key, value))
        }
        self.steps = [
            (ladder.text, step)
            for ladder, steps in self.ladders
            for node in as_list(steps)
            if (step := as_map(node)) is not None
        ]

    def error(
        self, location: Location, code: str, message: str, hint: str | None = None
    ) -> None:
        self.diagnostics.append(
            Diagnostic(location, Severity.ERROR, code, message, hint)
        )

    def warning(
        self, location: Location, code: str, message: str, hint: str | None = None
    ) -> None:
        self.diagnostics.append(
            Diagnostic(location, Severity.WARNING, code, message, hint)
        )

    def run(self) -> None:
        self.segment_order()
        self.segment_ladders()
        self.unique_names()
        self.ladder_steps()
        self.step_references()
        self.template_variants()
        self.channels_and_windows()
        self.window_hours()
        self.offer_rules()
        self.grades()
        self.unused()

    # Segments and ladders ----------------------------------------------

    def segment_order(self) -> None:
        catch_all: str | None = None
        for segment in self.segments:
            name = text_of(segment.get("name")) or "?"
            if catch_all is not None:
                self.error(
                    segment.location,
                    "E408",
                    f"segment `{name}` comes after `{catch_all}`, which matches "
                    "every customer: it can never match",
                    "move it above the catch-all",
                )
            when = segment.get("when")
            if (
                catch_all is None
                and isinstance(when, YScalar)
                and (when.value is True or when.text.strip() == "true")
            ):
                catch_all = name

    def segment_ladders(self) -> None:
        used: set[str] = set()
        for segment in self.segments:
            name = text_of(segment.get("name"))
            ladder_node = segment.get("ladder")
            if segment.key("ladder") is not None:
                ladder = text_of(ladder_node)
                if ladder is None:
                    continue  # `ladder: null`: no messages, on purpose
                used.add(ladder)
                if self.ladders.get(ladder) is None and ladder_node is not None:
                    self.error(
                        ladder_node.location,
                        "E402",
                        f"segment `{name}` names an unknown ladder `{ladder}`",
                        suggest(ladder, self.ladders.keys()),
                    )
            elif name is not None:
                if self.ladders.get(name) is not None:
                    used.add(name)
                else:
                    self.warning(
                        segment.location,
                        "W402",
                        f"segment `{name}` has no ladder: its customers get no "
                        "messages",
                        "add a ladder of the same name, or write `ladder: null`",
                    )
        for key, _ in self.ladders:
            if key.text not in used:
                self.error(
                    key.location,
                    "E401",
                    f"ladder `{key.text}` is for no segment: no segment is named "
                    "so or names it in `ladder:`",
                    suggest(key.text, self._segment_names()),
                )

    def _segment_names(self) -> list[str]:
        return [n for s in self.segments if (n := text_of(s.get("name")))]

    def unique_names(self) -> None:
        score = as_map(self.root.get("score"))
        groups: list[tuple[str, Iterable[YNode], str]] = [
            ("segment", self.segments, "name"),
            ("suppression rule", as_list(self.root.get("suppress")), "name"),
        ]
        if score is not None:
            groups.append(
                ("characteristic", as_list(score.get("characteristics")), "name")
            )
            groups.append(("grade", as_list(score.get("grades")), "name"))
        for ladder, steps in self.ladders:
            groups.append((f"step of ladder `{ladder.text}`", as_list(steps), "step"))
        for what, items, key in groups:
            seen: dict[str, Location] = {}
            for item in items:
                body = as_map(item)
                name_node = body.get(key) if body else None
                name = text_of(name_node)
                if name is None or name_node is None:
                    continue
                if name in seen:
                    first = seen[name]
                    self.error(
                        name_node.location,
                        "E422",
                        f"{what} `{name}` is defined twice (first at line "
                        f"{first.line})",
                    )
                else:
                    seen[name] = name_node.location

    def ladder_steps(self) -> None:
        for ladder, steps in self.ladders:
            seen: dict[tuple[int, bool], str] = {}
            for node in as_list(steps):
                step = as_map(node)
                at_node = step.get("at") if step else None
                offset = _offset(text_of(at_node))
                if step is None or offset is None or at_node is None:
                    continue
                name = text_of(step.get("step")) or "?"
                if offset in seen:
                    self.error(
                        at_node.location,
                        "E407",
                        f"steps `{seen[offset]}` and `{name}` of ladder "
                        f"`{ladder.text}` are both at {text_of(at_node)}",
                    )
                else:
                    seen[offset] = name

    def step_references(self) -> None:
        segments_of_ladder: dict[str, set[str]] = {}
        for segment in self.segments:
            name = text_of(segment.get("name"))
            if name is None:
                continue
            if segment.key("ladder") is not None:
                ladder = text_of(segment.get("ladder"))
            else:
                ladder = name
            if ladder is not None:
                segments_of_ladder.setdefault(ladder, set()).add(name)

        for ladder, step in self.steps:
            name = text_of(step.get("step")) or "?"
            where = f"step `{name}` of ladder `{ladder}`"
            channels = step.get("channels")
            template = step.get("template")
            escalate = step.get("escalate")
            offer = step.get("offer")
            if escalate is not None and channels is not None:
                self.error(
                    step.location,
                    "E411",
                    f"{where} both escalates and sends a message",
                    "an escalation step has no channels; make two steps",
                )
            elif escalate is None and channels is None:
                self.error(
                    step.location,
                    "E411",
                    f"{where} neither sends a message (`channels:`) nor "
                    "escalates (`escalate:`)",
                )
            if channels is not None and template is None:
                self.error(step.location, "E417", f"{where} has no `template:`")
            if escalate is not None and template is not None:
                self.error(
                    template.location,
                    "E417",
                    f"{where} escalates, so it sends no message: remove `template:`",
                )
            for channel in as_list(channels):
                channel_name = text_of(channel)
                if channel_name is not None and self.channels.get(channel_name) is None:
                    self.error(
                        channel.location,
                        "E404",
                        f"{where} names an unknown channel `{channel_name}`",
                        suggest(channel_name, self.channels.keys()),
                    )
            template_name = text_of(template)
            if (
                template is not None
                and template_name is not None
                and self.templates.get(template_name) is None
            ):
                self.error(
                    template.location,
                    "E403",
                    f"{where} names an unknown template `{template_name}`",
                    suggest(template_name, self.templates.keys()),
                )
            offer_name = text_of(offer)
            if offer is None or offer_name is None:
                continue
            offer_body = as_map(self.offers.get(offer_name))
            if offer_body is None:
                self.error(
                    offer.location,
                    "E405",
                    f"{where} names an unknown offer `{offer_name}`",
                    suggest(offer_name, self.offers.keys()),
                )
                continue
            offered_to = {
                s for n in as_list(offer_body.get("segments")) if (s := text_of(n))
            }
            using = segments_of_ladder.get(ladder, set())
            if using and not using & offered_to:
                self.warning(
                    offer.location,
                    "W403",
                    f"offer `{offer_name}` is made to none of the segments using "
                    f"ladder `{ladder}` ({', '.join(sorted(using))}): it never "
                    "applies here",
                )

    # Templates ---------------------------------------------------------

    def template_variants(self) -> None:
        for template_key, body in self.templates:
            variants = as_map(body)
            if variants is None:
                continue
            for channel_key, variant in variants:
                kind = self.kinds.get(channel_key.text)
                if self.channels.get(channel_key.text) is None:
                    self.error(
                        channel_key.location,
                        "E419",
                        f"template `{template_key.text}` has a variant for an "
                        f"unknown channel `{channel_key.text}`",
                        suggest(channel_key.text, self.channels.keys()),
                    )
                    continue
                if kind is None:
                    continue
                self.variant_fields(template_key.text, channel_key, kind, variant)

        for ladder, step in self.steps:
            template = step.get("template")
            template_name = text_of(template)
            variants = as_map(self.templates.get(template_name or ""))
            if template is None or variants is None:
                continue
            for channel in as_list(step.get("channels")):
                channel_name = text_of(channel)
                if channel_name is None or self.channels.get(channel_name) is None:
                    continue
                if variants.get(channel_name) is None:
                    step_name = text_of(step.get("step")) or "?"
                    self.error(
                        template.location,
                        "E406",
                        f"template `{template_name}` has no `{channel_name}` "
                        f"variant, and step `{step_name}` of ladder `{ladder}` "
                        f"may send it by {channel_name}",
                    )

    def variant_fields(
        self, template: str, channel: YScalar, kind: str, variant: YNode
    ) -> None:
        body = as_map(variant)
        if kind == "email" and (body is None or body.get("subject") is None):
            self.error(
                variant.location,
                "E412",
                f"the e-mail variant of template `{template}` has no subject",
                'write it as a mapping: {subject: "...", text: "..."}',
            )
        if body is None:
            return
        allowed = VARIANT_FIELDS[kind]
        for key, _ in body:
            if key.text not in allowed:
                self.error(
                    key.location,
                    "E418",
                    f"`{key.text}` is not used by {kind} channels (channel "
                    f"`{channel.text}`)",
                    f"{kind} variants take: {', '.join(sorted(allowed))}",
                )

    # Channels and windows ----------------------------------------------

    def channels_and_windows(self) -> None:
        for key, value in self.channels:
            body = as_map(value)
            if body is None:
                continue
            kind = self.kinds.get(key.text)
            if kind is None and body.get("kind") is None:
                self.error(
                    key.location,
                    "E415",
                    f"channel `{key.text}` needs `kind:`, since its name is no kind",
                    suggest(key.text, CHANNEL_KINDS)
                    or "kinds: " + ", ".join(CHANNEL_KINDS),
                )
            if (
                kind is not None
                and kind not in ADDRESSLESS_KINDS
                and body.get("address") is None
            ):
                self.error(
                    key.location,
                    "E423",
                    f"channel `{key.text}` ({kind}) needs `address:`, the "
                    "expression giving the customer's "
                    + ("e-mail" if kind == "email" else "phone number"),
                )
            if kind is not None and kind != "sms" and body.get("max_segments"):
                max_segments = body.key("max_segments")
                assert max_segments is not None
                self.warning(
                    max_segments.location,
                    "W404",
                    f"`max_segments` only applies to SMS; channel `{key.text}` "
                    f"is {kind}",
                )
            window_node = body.get("window")
            window = text_of(window_node)
            if window_node is None:
                self.error(
                    key.location,
                    "E409",
                    f"channel `{key.text}` has no send window",
                    "add `window:` naming one of `windows`",
                )
            elif window is not None and self.windows.get(window) is None:
                self.error(
                    window_node.location,
                    "E409",
                    f"channel `{key.text}` names an unknown window `{window}`",
                    suggest(window, self.windows.keys()),
                )

    def window_hours(self) -> None:
        for key, value in self.windows:
            body = as_map(value)
            if body is None:
                continue
            by_day: dict[int, list[tuple[int, int, YNode]]] = {}
            day_place: dict[int, YScalar] = {}
            for day_key, hours in body:
                days = weekday_range(day_key.text)
                for day in days:
                    if day in day_place:
                        first = day_place[day]
                        self.error(
                            day_key.location,
                            "E416",
                            f"window `{key.text}` gives {WEEKDAYS[day]} twice "
                            f"(also in `{first.text}` at line {first.location.line})",
                        )
                    else:
                        day_place[day] = day_key
                for item in as_list(hours) or [hours]:
                    span = _minutes(text_of(item))
                    if span is None:
                        continue
                    start, end = span
                    if end <= start:
                        self.error(
                            item.location,
                            "E414",
                            f"hours `{text_of(item)}` end before they start",
                            "a window cannot pass midnight; split it in two days",
                        )
                        continue
                    for day in days:
                        by_day.setdefault(day, []).append((start, end, item))
            reported: set[int] = set()
            for ranges in by_day.values():
                ranges.sort(key=lambda r: r[0])
                for (_, end, _), (start, _, item) in zip(
                    ranges, ranges[1:], strict=False
                ):
                    if start < end and id(item) not in reported:
                        reported.add(id(item))
                        self.error(
                            item.location,
                            "E414",
                            f"hours `{text_of(item)}` overlap other hours of "
                            f"window `{key.text}`",
                        )

    # Offers, grades ----------------------------------------------------

    def offer_rules(self) -> None:
        segment_names = self._segment_names()
        for key, value in self.offers:
            body = as_map(value)
            if body is None:
                continue
            for node in as_list(body.get("segments")):
                name = text_of(node)
                if name is not None and name not in segment_names:
                    self.error(
                        node.location,
                        "E410",
                        f"offer `{key.text}` is for an unknown segment `{name}`",
                        suggest(name, segment_names),
                    )
            kind = text_of(body.get("kind"))
            if kind not in OFFER_FIELDS:
                continue
            for needed in OFFER_FIELDS[kind]:
                if body.get(needed) is None:
                    self.error(
                        key.location,
                        "E421",
                        f"offer `{key.text}` of kind {kind} needs `{needed}:`",
                    )
            foreign = ["days"] if kind == "instalments" else list(_INSTALMENT_FIELDS)
            for field in foreign:
                field_key = body.key(field)
                if field_key is not None:
                    self.error(
                        field_key.location,
                        "E421",
                        f"`{field}` does not apply to an offer of kind {kind}",
                    )

    def grades(self) -> None:
        score = as_map(self.root.get("score"))
        if score is None:
            return
        previous: int | None = None
        for node in as_list(score.get("grades")):
            grade = as_map(node)
            low_node = grade.get("min") if grade else None
            if not isinstance(low_node, YScalar) or type(low_node.value) is not int:
                continue
            if previous is not None and low_node.value >= previous:
                self.error(
                    low_node.location,
                    "E413",
                    f"grades go from the highest `min` down; {low_node.value} "
                    f"follows {previous}",
                )
            previous = low_node.value

    # Unused parts ------------------------------------------------------

    def unused(self) -> None:
        used_templates = {text_of(step.get("template")) for _, step in self.steps}
        used_offers = {text_of(step.get("offer")) for _, step in self.steps}
        used_channels = {
            text_of(channel)
            for _, step in self.steps
            for channel in as_list(step.get("channels"))
        }
        used_windows = {
            text_of(body.get("window"))
            for _, value in self.channels
            if (body := as_map(value)) is not None
        }
        for what, names, used in (
            ("template", self.templates, used_templates),
            ("offer", self.offers, used_offers),
            ("channel", self.channels, used_channels),
            ("window", self.windows, used_windows),
        ):
            for key, _ in names:
                if key.text not in used:
                    self.warning(
                        key.location, "W401", f"{what} `{key.text}` is never used"
                    )


_INSTALMENT_FIELDS = ("instalments", "min_instalment", "interest_monthly")


def _kind(key: YScalar, value: YNode) -> str | None:
    body = as_map(value)
    if body is None:
        return None
    kind = text_of(body.get("kind")) or key.text
    return kind if kind in CHANNEL_KINDS else None


def _offset(text: str | None) -> tuple[int, bool] | None:
    offset = parse_offset(text)
    if offset is None:
        return None
    # D0 is the due date itself, counted in business days or not.
    return offset.days, offset.business and offset.days != 0


def _minutes(text: str | None) -> tuple[int, int] | None:
    match = _HOURS.fullmatch(text or "")
    if match is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def check_combined(ruleset: Ruleset) -> list[Diagnostic]:
    """E424 for each placeholder reading an invoice field that does not
    combine, in the copy of a step whose messages may be combined.

    With `same_day: combine` the messages of one step, channel and window
    day become one; every sending step without an offer may carry several
    invoices (steps with an offer are never combined). Runs on the built
    model, where templates are parsed; a template or variant the model lacks
    is reported by the cross checks (E403, E406).
    """
    if ruleset.frequency.same_day != "combine":
        return []
    diagnostics: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for ladder in ruleset.ladders.values():
        for step in ladder.steps:
            if step.template is None or step.offer is not None:
                continue
            template = ruleset.templates.get(step.template)
            if template is None:
                continue
            for channel in step.channels:
                variant = template.variants.get(channel)
                if variant is None or (template.name, channel) in seen:
                    continue
                seen.add((template.name, channel))
                diagnostics.extend(
                    _not_combined(node, template.name, channel, step)
                    for node in _single_invoice_fields(variant)
                )
    return diagnostics


def _single_invoice_fields(variant: MessageTemplate) -> Iterator[Attribute]:
    """The `invoice.<field>` placeholders of a variant, in every part the
    channel sends, whose field is not one of COMBINED_INVOICE_FIELDS."""
    parts: list[Template | None] = [variant.body, variant.subject, variant.html]
    parts.extend(variant.params)
    parts.extend(variant.fields.values())
    for template in parts:
        if template is None:
            continue
        stack = [part for part in template.parts if isinstance(part, Node)]
        while stack:
            node = stack.pop()
            if (
                isinstance(node, Attribute)
                and isinstance(node.target, Name)
                and node.target.name == "invoice"
                and node.name not in COMBINED_INVOICE_FIELDS
            ):
                yield node
            stack.extend(children_of(node))


def _not_combined(
    node: Attribute, template: str, channel: str, step: Step
) -> Diagnostic:
    return Diagnostic(
        node.location,
        Severity.ERROR,
        "E424",
        f"`invoice.{node.name}` is one invoice's, but step `{step.name}` may"
        f" combine several invoices into one {channel} message (`{template}`,"
        " `frequency.same_day: combine`): it would show their summed amount"
        " beside the first invoice's value",
        "set `frequency.same_day: cap` (one message per invoice), or show only"
        f" fields that combine: {_COMBINED_LIST} (and invoice_count)",
    )
