"""Policy unit tests: YAML files of cases beside a ruleset, and their runner.

A test file (`*.test.yaml`, usually in the ruleset's `tests/` folder) holds
cases. Each case gives the records of one or more customers and an as-of
instant, and says what the plan must contain: segment, score, grade, credit
action, and the ladder actions with their channel, window, decision and
phrases of the message. docs/testing.md describes the format.

Reading a test file is as strict as reading a policy: an unknown key, a
field the ruleset does not declare or a value of the wrong type is a
diagnostic with file, line and column, never a silently ignored line.

The parts: `cases` (what a file says, as data), `reader` and `reading` (from
YAML nodes to cases), `checking` (a plan against an expectation) and
`running` (finding files, planning, coverage).
"""

from __future__ import annotations

from adapters.policytest.cases import TestCase, TestFile
from adapters.policytest.checking import CaseResult, Failure, check_plan
from adapters.policytest.reading import load_test_file
from adapters.policytest.running import (
    COVERAGE_KINDS,
    Coverage,
    TestRun,
    find_test_files,
    run_case,
    run_tests,
)

__all__ = (
    "COVERAGE_KINDS",
    "CaseResult",
    "Coverage",
    "Failure",
    "TestCase",
    "TestFile",
    "TestRun",
    "check_plan",
    "find_test_files",
    "load_test_file",
    "run_case",
    "run_tests",
)
