"""Compile a validated ruleset into what the planner runs.

The compiler is an ordered table of named passes (`PASSES`). Each pass reads
what earlier passes left in a `Compilation` and adds its own part, so a test
can stop after any of them (`run_passes(ruleset, until="compile_templates")`)
and look at the result. Expressions and templates are compiled once, here,
into Python callables; nothing is parsed or walked while planning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale

from dsl.ast import Template
from dsl.model import (
    Channel,
    Characteristic,
    Expr,
    MessageTemplate,
    Offer,
    Ruleset,
    Segment,
    Step,
    Suppression,
    Window,
)
from engine.calendar import BusinessCalendar, SendWindows
from engine.codegen import compile_first_match, compile_many, compile_template
from engine.formatting import LocaleFormatter
from engine.scope import Scope

logger = logging.getLogger(__name__)

Evaluator = Callable[[Scope], Any]
Renderer = Callable[[Scope], str]
# The position of the first segment whose rule holds, or None.
SegmentChooser = Callable[[Scope], int | None]


class CompileError(Exception):
    """The ruleset model is inconsistent (a step names a channel that does
    not exist, ...). The loader's cross checks report these to users; this
    error means a model was built without them."""


@dataclass(frozen=True)
class CompiledChannel:
    channel: Channel
    window: Window
    address: Evaluator | None
    consent: Evaluator | None
    opt_out: Evaluator | None

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def kind(self) -> str:
        return self.channel.kind


@dataclass(frozen=True)
class CompiledMessage:
    """One template's copy for one channel, ready to render."""

    template: str
    channel: str
    variant: MessageTemplate
    body: Renderer
    subject: Renderer | None
    html: Renderer | None
    params: tuple[Renderer, ...]
    fields: tuple[tuple[str, Renderer], ...]  # sorted by field name


@dataclass(frozen=True)
class CompiledOffer:
    offer: Offer
    when: Evaluator | None


@dataclass(frozen=True)
class CompiledStep:
    step: Step
    ladder: str
    when: Evaluator | None
    channels: tuple[CompiledChannel, ...]
    messages: dict[str, CompiledMessage]  # channel name -> copy
    offer: CompiledOffer | None

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def is_escalation(self) -> bool:
        return self.step.escalate is not None


@dataclass(frozen=True)
class CompiledSegment:
    segment: Segment
    when: Evaluator
    steps: tuple[CompiledStep, ...]  # empty when the segment has no ladder

    @property
    def name(self) -> str:
        return self.segment.name


@dataclass(frozen=True)
class CompiledCharacteristic:
    characteristic: Characteristic
    value: Evaluator


@dataclass(frozen=True)
class CompiledSuppression:
    suppression: Suppression
    when: Evaluator


@dataclass(frozen=True)
class CompiledRuleset:
    """Everything the planner needs, resolved and compiled."""

    ruleset: Ruleset
    zone: ZoneInfo
    calendar: BusinessCalendar
    windows: SendWindows
    formatter: LocaleFormatter
    phone_region: str | None  # the locale's territory, for phone numbers
    characteristics: tuple[CompiledCharacteristic, ...]
    segments: tuple[CompiledSegment, ...]
    credit_limit: Evaluator | None
    suppressions: tuple[CompiledSuppression, ...]
    timings: dict[str, float]  # seconds per pass, for the curious
    # The segment rules as one function (None: try `segments` one by one).
    choose_segment: SegmentChooser | None = None

    @property
    def name(self) -> str:
        return self.ruleset.name


@dataclass
class Compilation:
    """The state passes share. Each field is filled by the pass named in
    its comment and is None (or empty) before it ran."""

    ruleset: Ruleset
    zone: ZoneInfo | None = None  # resolve_zone
    calendar: BusinessCalendar | None = None  # resolve_calendar
    windows: SendWindows | None = None  # resolve_calendar
    formatter: LocaleFormatter | None = None  # resolve_locale
    phone_region: str | None = None  # resolve_locale
    evaluators: dict[int, Evaluator] = field(default_factory=dict)  # by id(Expr)
    choose_segment: SegmentChooser | None = None  # compile_expressions
    messages: dict[tuple[str, str], CompiledMessage] = field(default_factory=dict)
    segments: tuple[CompiledSegment, ...] = ()  # index_ladders
    timings: dict[str, float] = field(default_factory=dict)

    def evaluator(self, expr: Expr) -> Evaluator:
        return self.evaluators[id(expr)]

    def optional(self, expr: Expr | None) -> Evaluator | None:
        return None if expr is None else self.evaluators[id(expr)]


def _resolve_zone(state: Compilation) -> None:
    state.zone = ZoneInfo(state.ruleset.timezone)


def _resolve_calendar(state: Compilation) -> None:
    ruleset = state.ruleset
    assert state.zone is not None, "resolve_zone runs first"
    state.calendar = BusinessCalendar(ruleset.calendar, language=ruleset.locale)
    state.windows = SendWindows(ruleset.windows, state.zone, state.calendar)


def _resolve_locale(state: Compilation) -> None:
    ruleset = state.ruleset
    assert state.zone is not None, "resolve_zone runs first"
    state.formatter = LocaleFormatter(ruleset.locale, ruleset.currency, state.zone)
    state.phone_region = Locale.parse(ruleset.locale).territory


def _check_references(state: Compilation) -> None:
    """Every name a segment or step uses must exist in the model."""
    ruleset = state.ruleset
    problems = []
    for segment in ruleset.segments:
        if segment.ladder is not None and segment.ladder not in ruleset.ladders:
            problems.append(f"segment {segment.name}: no ladder {segment.ladder}")
    for channel in ruleset.channels.values():
        if channel.window not in ruleset.windows:
            problems.append(f"channel {channel.name}: no window {channel.window}")
    for ladder in ruleset.ladders.values():
        for step in ladder.steps:
            where = f"ladder {ladder.name}, step {step.name}"
            template = None
            if step.template is not None:
                template = ruleset.templates.get(step.template)
                if template is None:
                    problems.append(f"{where}: no template {step.template}")
            for name in step.channels:
                if name not in ruleset.channels:
                    problems.append(f"{where}: no channel {name}")
                elif template is not None and name not in template.variants:
                    problems.append(
                        f"{where}: template {template.name} has no {name} copy"
                    )
            if step.offer is not None and step.offer not in ruleset.offers:
                problems.append(f"{where}: no offer {step.offer}")
            if step.escalate is None and step.template is None:
                problems.append(f"{where}: neither a template nor an escalation")
    if problems:
        raise CompileError("; ".join(problems))


def _all_expressions(ruleset: Ruleset) -> list[Expr]:
    """Every expression of the ruleset, in a fixed order."""
    exprs: list[Expr | None] = []
    if ruleset.scorecard is not None:
        exprs.extend(c.value for c in ruleset.scorecard.characteristics)
    exprs.extend(segment.when for segment in ruleset.segments)
    if ruleset.credit is not None:
        exprs.append(ruleset.credit.limit)
    exprs.extend(suppression.when for suppression in ruleset.suppressions)
    for channel in ruleset.channels.values():
        exprs.extend((channel.address, channel.consent, channel.opt_out))
    exprs.extend(offer.when for offer in ruleset.offers.values())
    for ladder in ruleset.ladders.values():
        exprs.extend(step.when for step in ladder.steps)
    return [expr for expr in exprs if expr is not None]


def _compile_expressions(state: Compilation) -> None:
    """All expressions in one `compile()` call; the segment rules once more
    as one first-match function, since every customer runs through them."""
    exprs = _all_expressions(state.ruleset)
    functions = compile_many(exprs)
    state.evaluators = {id(expr): fn for expr, fn in zip(exprs, functions, strict=True)}
    state.choose_segment = compile_first_match(
        [segment.when for segment in state.ruleset.segments]
    )
    logger.debug("compiled %d expressions", len(exprs))


def _compile_templates(state: Compilation) -> None:
    """The copy of every (template, channel) pair some step can send."""
    ruleset = state.ruleset
    wanted = sorted(
        {
            (step.template, channel)
            for ladder in ruleset.ladders.values()
            for step in ladder.steps
            if step.template is not None
            for channel in step.channels
        }
    )
    for template_name, channel in wanted:
        variant = ruleset.templates[template_name].variants[channel]
        state.messages[(template_name, channel)] = CompiledMessage(
            template=template_name,
            channel=channel,
            variant=variant,
            body=compile_template(variant.body),
            subject=_maybe_template(variant.subject),
            html=_maybe_template(variant.html, html=True),
            params=tuple(compile_template(param) for param in variant.params),
            fields=tuple(
                (name, compile_template(variant.fields[name]))
                for name in sorted(variant.fields)
            ),
        )
    logger.debug("compiled %d message templates", len(wanted))


def _maybe_template(
    template: Template | None, *, html: bool = False
) -> Renderer | None:
    return None if template is None else compile_template(template, html=html)


def _index_ladders(state: Compilation) -> None:
    """Each segment with its compiled ladder steps."""
    ruleset = state.ruleset
    channels = {
        name: CompiledChannel(
            channel=channel,
            window=ruleset.windows[channel.window],
            address=state.optional(channel.address),
            consent=state.optional(channel.consent),
            opt_out=state.optional(channel.opt_out),
        )
        for name, channel in ruleset.channels.items()
    }
    offers = {
        name: CompiledOffer(offer, state.optional(offer.when))
        for name, offer in ruleset.offers.items()
    }
    ladders = {
        name: tuple(
            CompiledStep(
                step=step,
                ladder=name,
                when=state.optional(step.when),
                channels=tuple(channels[c] for c in step.channels),
                messages={
                    c: state.messages[(step.template, c)]
                    for c in step.channels
                    if step.template is not None
                },
                offer=None if step.offer is None else offers[step.offer],
            )
            for step in ladder.steps
        )
        for name, ladder in ruleset.ladders.items()
    }
    state.segments = tuple(
        CompiledSegment(
            segment=segment,
            when=state.evaluator(segment.when),
            steps=() if segment.ladder is None else ladders[segment.ladder],
        )
        for segment in ruleset.segments
    )


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Compilation], None]


# In order. The zone comes first because windows and formatting need it;
# references are checked before anything is compiled so that a broken
# model fails with a message instead of a KeyError; templates come after
# expressions only to keep the timings apart; ladders are indexed last
# because they tie compiled expressions and templates together.
PASSES: tuple[Pass, ...] = (
    Pass("resolve_zone", _resolve_zone),
    Pass("resolve_calendar", _resolve_calendar),
    Pass("resolve_locale", _resolve_locale),
    Pass("check_references", _check_references),
    Pass("compile_expressions", _compile_expressions),
    Pass("compile_templates", _compile_templates),
    Pass("index_ladders", _index_ladders),
)

PASS_NAMES = tuple(p.name for p in PASSES)


def run_passes(ruleset: Ruleset, *, until: str | None = None) -> Compilation:
    """Run the passes in order, up to and including `until` (all if None)."""
    if until is not None and until not in PASS_NAMES:
        raise ValueError(f"no compiler pass {until!r}; passes: {', '.join(PASS_NAMES)}")
    state = Compilation(ruleset)
    for compiler_pass in PASSES:
        # Durations go to the debug log and `timings` only: no plan depends
        # on them, so reading this clock keeps planning deterministic.
        started = time.perf_counter()
        compiler_pass.run(state)
        state.timings[compiler_pass.name] = time.perf_counter() - started
        logger.debug(
            "pass %s: %.3f ms",
            compiler_pass.name,
            1000 * state.timings[compiler_pass.name],
        )
        if compiler_pass.name == until:
            break
    return state


def compile_ruleset(ruleset: Ruleset) -> CompiledRuleset:
    """Compile a validated ruleset once; plan any number of customers with it.

    Raises CompileError if the model's references are inconsistent.
    """
    state = run_passes(ruleset)
    assert state.zone is not None
    assert state.calendar is not None and state.windows is not None
    assert state.formatter is not None
    scorecard = ruleset.scorecard
    return CompiledRuleset(
        ruleset=ruleset,
        zone=state.zone,
        calendar=state.calendar,
        windows=state.windows,
        formatter=state.formatter,
        phone_region=state.phone_region,
        characteristics=tuple(
            CompiledCharacteristic(c, state.evaluator(c.value))
            for c in (scorecard.characteristics if scorecard else ())
        ),
        segments=state.segments,
        credit_limit=(
            None if ruleset.credit is None else state.evaluator(ruleset.credit.limit)
        ),
        suppressions=tuple(
            CompiledSuppression(s, state.evaluator(s.when))
            for s in ruleset.suppressions
        ),
        timings=dict(state.timings),
        choose_segment=state.choose_segment,
    )
