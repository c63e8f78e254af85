"""Running test files: discovery, planning, coverage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.policytest.cases import (
    NOT_COMPILED,
    TEST_SUFFIXES,
    UNKNOWN_NAME,
    TestCase,
)
from adapters.policytest.checking import CaseResult, Failure, check_plan
from adapters.policytest.reading import load_test_file, read_ruleset_key
from adapters.sources import SourceConfigError, open_source
from dsl.diagnostics import Diagnostic, Location, PolicyError, Severity
from dsl.loader import find_rulesets, load_ruleset
from dsl.model import Ruleset
from engine.compiler import CompiledRuleset, CompileError, compile_ruleset
from engine.planner import CustomerPlan, plan_customer
from engine.records import CustomerRecords

COVERAGE_KINDS = ("segments", "steps", "channels", "suppressions")


@dataclass
class Coverage:
    """What the cases of one ruleset exercised, out of what it defines.

    A segment counts when a case's customer was placed in it; a step
    (`ladder.step`) when it planned something to do (a send, an offer, an
    escalation); a channel when a message was sent through it; a
    suppression rule when it suppressed a step.
    """

    ruleset: str
    path: Path
    defined: dict[str, tuple[str, ...]]
    exercised: dict[str, set[str]] = field(
        default_factory=lambda: {kind: set() for kind in COVERAGE_KINDS}
    )

    @classmethod
    def of(cls, ruleset: Ruleset, path: Path) -> Coverage:
        steps = tuple(
            f"{ladder.name}.{step.name}"
            for ladder in ruleset.ladders.values()
            for step in ladder.steps
        )
        return cls(
            ruleset.name,
            path,
            {
                "segments": tuple(s.name for s in ruleset.segments),
                "steps": steps,
                "channels": tuple(ruleset.channels),
                "suppressions": tuple(s.name for s in ruleset.suppressions),
            },
        )

    def record(self, plan: CustomerPlan) -> None:
        if plan.segment is not None:
            self.exercised["segments"].add(plan.segment)
        for action in plan.actions:
            step = action.why.get("step")
            if action.decision in ("send", "offer", "escalate") and isinstance(
                step, dict
            ):
                self.exercised["steps"].add(f"{step.get('ladder')}.{action.step}")
            if action.decision == "send" and action.channel:
                self.exercised["channels"].add(action.channel)
            rule = action.why.get("suppressed_by")
            if action.decision == "suppressed" and isinstance(rule, str):
                self.exercised["suppressions"].add(rule)

    def missing(self, kind: str) -> list[str]:
        return [name for name in self.defined[kind] if name not in self.exercised[kind]]

    def counts(self, kind: str) -> tuple[int, int]:
        defined = self.defined[kind]
        return len(defined) - len(self.missing(kind)), len(defined)

    def percent(self, kind: str) -> float:
        covered, total = self.counts(kind)
        return 100.0 if total == 0 else 100.0 * covered / total

    def to_json(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset,
            "path": str(self.path),
            **{
                kind: {
                    "covered": self.counts(kind)[0],
                    "total": self.counts(kind)[1],
                    "percent": round(self.percent(kind), 1),
                    "missing": self.missing(kind),
                }
                for kind in COVERAGE_KINDS
            },
        }


def run_case(
    compiled: CompiledRuleset, path: Path, case: TestCase, coverage: Coverage
) -> CaseResult:
    """Plan the case's customers and compare each plan with its expectation."""
    failures: list[Failure] = []
    plans: dict[str, CustomerPlan] = {}
    for records in _case_customers(compiled, case, failures):
        planned = plan_customer(compiled, records, case.as_of, since=case.since)
        plans[planned.customer_id] = planned
        coverage.record(planned)

    for expectation in case.expectations:
        plan = plans.get(expectation.customer_id)
        if plan is None:
            failures.append(
                Failure(
                    expectation.location,
                    f"customer {expectation.customer_id} is not in the case's data",
                )
            )
            continue
        failures.extend(check_plan(expectation, plan, compiled.ruleset.timezone))
    return CaseResult(path, case, tuple(failures))


def _case_customers(
    compiled: CompiledRuleset, case: TestCase, failures: list[Failure]
) -> list[CustomerRecords]:
    if case.data is None:
        return list(case.customers)
    where = case.data.location
    try:
        source = open_source(
            case.data.spec,
            compiled.ruleset.inputs,
            on_error="fail",
            base_dir=case.data.base_dir,
        )
        customers = list(source.customers())
    except SourceConfigError as exc:
        failures.append(Failure(where, f"data: {exc}"))
        return []
    failures.extend(Failure(where, f"data: {problem}") for problem in source.problems)
    return customers


# A whole run ------------------------------------------------------------------


@dataclass
class TestRun:
    """The outcome of `ruleset test`: results, unreadable files, coverage."""

    results: list[CaseResult] = field(default_factory=list)
    # Test files that could not be read: their cases did not run.
    file_errors: list[Diagnostic] = field(default_factory=list)
    # Rulesets that do not load: nothing of theirs ran.
    ruleset_errors: list[Diagnostic] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [result for result in self.results if not result.passed]

    def below(self, minimum: float) -> list[tuple[Coverage, str]]:
        """The (ruleset, kind) pairs whose coverage is under `minimum` %."""
        return [
            (coverage, kind)
            for coverage in self.coverage
            for kind in COVERAGE_KINDS
            if coverage.percent(kind) < minimum
        ]


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_SUFFIXES)


def find_test_files(path: Path) -> list[Path]:
    """Test files at or under `path`, in name order; hidden folders skipped."""
    if path.is_file():
        if is_test_file(path):
            return [path]
        # A single-file ruleset: tests beside it or in tests/ may name it.
        folders = [path.parent, path.parent / "tests"]
        return sorted(
            p
            for folder in folders
            if folder.is_dir()
            for p in folder.iterdir()
            if is_test_file(p)
        )
    found = [
        p
        for p in path.rglob("*")
        if is_test_file(p)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    return sorted(found)


def run_tests(paths: Sequence[Path]) -> TestRun:
    """Run every test file at or under `paths` against its ruleset.

    Rulesets found under `paths` without any test file are still loaded, so
    that coverage reports them as untested. Raises FileNotFoundError for a
    path that does not exist.
    """
    run = TestRun()
    by_ruleset: dict[Path, tuple[Path, list[Path]]] = {}
    for path in paths:
        for ruleset_path in find_rulesets(path) if not is_test_file(path) else []:
            by_ruleset.setdefault(ruleset_path.resolve(), (ruleset_path, []))
        for test_path in find_test_files(path):
            ruleset_path = read_ruleset_key(test_path)
            if not _is_ruleset(ruleset_path):
                run.file_errors.append(_no_ruleset(test_path, ruleset_path))
                continue
            entry = by_ruleset.setdefault(ruleset_path.resolve(), (ruleset_path, []))
            if all(not test_path.samefile(known) for known in entry[1]):
                entry[1].append(test_path)

    for ruleset_path, test_paths in by_ruleset.values():
        _run_ruleset(run, ruleset_path, test_paths)
    return run


def _is_ruleset(path: Path) -> bool:
    try:
        return path.exists() and path.resolve() in (
            found.resolve() for found in find_rulesets(path)
        )
    except OSError:
        return False


def _no_ruleset(test_path: Path, ruleset_path: Path) -> Diagnostic:
    return Diagnostic(
        Location(str(test_path), 1, 1),
        Severity.ERROR,
        UNKNOWN_NAME,
        f"tests {ruleset_path}, which is not a ruleset",
        "put the file in the ruleset's folder or its tests/ folder, or set"
        " `ruleset:` to the ruleset's path, relative to this file",
    )


def _run_ruleset(run: TestRun, ruleset_path: Path, test_paths: list[Path]) -> None:
    try:
        ruleset = load_ruleset(ruleset_path)
    except PolicyError as error:
        run.ruleset_errors.extend(error.diagnostics)
        return
    try:
        compiled = compile_ruleset(ruleset)
    except CompileError as error:
        where = Location(str(ruleset_path), 1, 1)
        run.ruleset_errors.append(
            Diagnostic(where, Severity.ERROR, NOT_COMPILED, f"cannot compile: {error}")
        )
        return
    coverage = Coverage.of(ruleset, ruleset_path)
    run.coverage.append(coverage)

    for test_path in test_paths:
        try:
            test_file = load_test_file(test_path, ruleset)
        except PolicyError as error:
            run.file_errors.extend(error.diagnostics)
            continue
        for case in test_file.cases:
            run.results.append(run_case(compiled, test_path, case, coverage))
