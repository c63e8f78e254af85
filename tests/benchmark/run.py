"""The benchmark of issue 8: how fast and how lean, against the floors.

    .venv/bin/python -m tests.benchmark.run [--quick] [--keep DIR] [--seed N]

Generates deterministic synthetic data for the varejo ruleset (100k
invoices, and 1M unless `--quick`), then prints one table:

- segment expressions through the engine's compiled callables vs the same
  rules as a hand-written function (target: at least 0.9 of its speed);
- `ruleset plan` from CSV vs parsing the same CSV into typed records
  (target: at most twice the parse-only time);
- peak resident memory of the plan at each size, in a fresh process
  (target: bounded by one customer's records for grouped input);
- `ruleset validate` on a tree of 50 policy files.

docs/performance.md explains each measurement and the results. Progress
goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.benchmark.generate import AS_OF, DEFAULT_SEED, Dataset, write_dataset

if TYPE_CHECKING:
    from tests.benchmark.breakdown import Breakdown
    from tests.benchmark.expressions import ExpressionResult

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"100k": 100_000, "1M": 1_000_000}
TARGET_EXPRESSION_RATIO = 0.9
TARGET_PLAN_RATIO = 2.0
# Memory counts as bounded when ten times the input adds less than this.
BOUNDED_GROWTH_MIB = 16.0


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _child(kind: str, *arguments: str) -> dict[str, Any]:
    """One measurement in a fresh interpreter (tests/benchmark/child.py)."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.benchmark.child", kind, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"measurement {kind} failed ({completed.returncode}):\n{completed.stderr}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("exit", 0) != 0:
        raise RuntimeError(
            f"ruleset {kind} exited {result['exit']}:\n{completed.stderr}"
        )
    return result


@dataclass
class SizeResult:
    label: str
    dataset: Dataset
    parse: dict[str, Any]
    plan: dict[str, Any]

    @property
    def plan_ratio(self) -> float:
        """Plan CPU time over parse-only CPU time."""
        return float(self.plan["cpu_seconds"]) / float(self.parse["cpu_seconds"])


def measure_size(label: str, dataset: Dataset, work: Path) -> SizeResult:
    _progress(f"{label}: parse-only floor")
    parse = _child("parse", str(dataset.folder))
    _progress(f"{label}: ruleset plan ({parse['cpu_seconds']:.1f} s to parse)")
    plan = _child("plan", str(dataset.folder), str(work / f"plan-{label}.jsonl"))
    _progress(f"{label}: planned in {plan['cpu_seconds']:.1f} s")
    return SizeResult(label, dataset, parse, plan)


def measure_in_process(folder: Path) -> tuple[ExpressionResult, Breakdown]:
    """The expression comparison and the stage breakdown, on one data set.

    The engine is imported here, after the child processes have run, so
    that this process is still small while they are measured.
    """
    from adapters.commands.planning import parse_as_of
    from dsl.loader import load_ruleset
    from engine.compiler import compile_ruleset
    from tests.benchmark.breakdown import measure_stages
    from tests.benchmark.expressions import compare, prepare_scopes

    ruleset = load_ruleset(ROOT / "rulesets" / "varejo")
    compiled = compile_ruleset(ruleset)
    stages = measure_stages(ruleset, compiled, folder)
    _progress(f"stages: {stages.customers} customers read, planned and written")
    scopes = prepare_scopes(
        ruleset, compiled, folder, parse_as_of(AS_OF, compiled.zone)
    )
    _progress(f"expressions: {len(scopes)} customers prepared")
    return compare(compiled, scopes), stages


def measure_validate(work: Path) -> dict[str, Any]:
    from tests.benchmark.rulesets import write_ruleset_tree

    tree = work / "policies"
    directories = write_ruleset_tree(tree, files=50)
    result = _child("validate", str(tree))
    result["rulesets"] = len(directories)
    result["files"] = sum(1 for _ in tree.rglob("*.yaml"))
    return result


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def render(
    expressions: ExpressionResult,
    stages: Breakdown,
    sizes: list[SizeResult],
    validate: dict[str, Any],
    seed: int,
) -> list[str]:
    """The table and its closing notes, as lines."""
    rows: list[tuple[str, str, str, str, str]] = [
        (
            "segment rules, evaluations",
            _rate(expressions.engine_per_second, 1),
            _rate(expressions.plain_per_second, 1),
            f"{expressions.ratio:.2f} of its speed",
            f">= {TARGET_EXPRESSION_RATIO}: "
            + _verdict(expressions.ratio >= TARGET_EXPRESSION_RATIO),
        )
    ]
    for size in sizes:
        records = size.dataset.records
        rows.append(
            (
                f"plan from CSV, {size.label} invoices, records",
                _rate(records, size.plan["cpu_seconds"]),
                _rate(records, size.parse["cpu_seconds"]),
                f"{size.plan_ratio:.1f}x its time",
                f"<= {TARGET_PLAN_RATIO:.0f}x: "
                + _verdict(size.plan_ratio <= TARGET_PLAN_RATIO),
            )
        )
    small = sizes[0]
    for size in sizes:
        growth, target = "", "bounded"
        if size is not small:
            grown_kib = size.plan["peak_rss_kib"] - small.plan["peak_rss_kib"]
            factor = size.dataset.records / small.dataset.records
            growth = f"+{_mib(grown_kib)} for {factor:.0f}x input"
            target += ": " + _verdict(grown_kib / 1024 < BOUNDED_GROWTH_MIB)
        rows.append(
            (
                f"peak memory, {size.label} invoices",
                _mib(size.plan["peak_rss_kib"]),
                _mib(size.parse["peak_rss_kib"]),
                growth,
                target,
            )
        )
    rows.append(
        (
            f"validate, {validate['files']} files ({validate['rulesets']} rulesets)",
            f"{validate['cpu_seconds']:.2f} s",
            "",
            "",
            "",
        )
    )

    header = ("measurement", "ruleset", "floor", "ratio", "target")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, tuple("-" * w for w in widths), *rows]
    ]

    lines += [
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores, seed {seed}, "
        f"as of {AS_OF}. Times are CPU seconds of one process. Floors: the "
        "segment rules as a hand-written function; csv + Decimal + "
        "date.fromisoformat (tests/benchmark/floors.py); peak memory of "
        "the parse-only process.",
    ]
    for size in sizes:
        data = size.dataset
        lines.append(
            f"{size.label}: {data.customers:,} customers, {data.invoices:,} invoices, "
            f"{data.payments:,} payments ({data.size_bytes / 2**20:.0f} MiB of CSV); "
            f"plan {size.plan['cpu_seconds']:.1f} s ({size.plan['seconds']:.1f} s "
            f"wall), parse-only {size.parse['cpu_seconds']:.2f} s; "
            f"{size.plan['plan_lines'] - 1:,} actions, plan sha256 "
            f"{size.plan['plan_sha256'][:16]}"
        )
    lines.append(
        f"stages at 100k: reading the source {stages.read_seconds:.2f} s, planning "
        f"{stages.plan_seconds:.2f} s ({stages.per_customer_us:.0f} us per "
        f"customer), writing {stages.actions:,} actions {stages.write_seconds:.2f} s; "
        f"parse-only floor {small.parse['cpu_seconds']:.2f} s; the source held at "
        f"most {stages.records_held} parsed records at once"
    )
    if len(sizes) >= 2:
        large = sizes[-1]
        grown = large.plan["peak_rss_kib"] - small.plan["peak_rss_kib"]
        extra = large.dataset.records - small.dataset.records
        lines.append(
            f"memory: {grown * 1024 / extra:.0f} bytes per extra input record "
            "(docs/performance.md says what grows and why)"
        )
    lines.append(
        f"validate: {validate['cpu_seconds'] / validate['files'] * 1000:.0f} ms per "
        f"file, after {validate['startup_seconds']:.2f} s of imports"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k invoices only")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="generate into DIR and keep it (reused when already there)",
    )
    options = parser.parse_args(argv)
    labels = ["100k"] if options.quick else ["100k", "1M"]

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ruleset-bench-") as temporary:
        work = options.keep or Path(temporary)
        datasets = {}
        for label in labels:
            folder = work / f"data-{label}-{options.seed}"
            _progress(f"{label}: writing synthetic data into {folder}")
            datasets[label] = _dataset(folder, SIZES[label], options.seed)

        # Processes first, while this one is still small (see child.py).
        sizes = [measure_size(label, datasets[label], work) for label in labels]
        _progress("validate: 50 policy files")
        validate = measure_validate(work)
        expressions, stages = measure_in_process(datasets["100k"].folder)
        # Rendered while the data is still there: it states the files' sizes.
        table = render(expressions, stages, sizes, validate, options.seed)

    for line in table:
        print(line)
    _progress(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def _dataset(folder: Path, invoices: int, seed: int) -> Dataset:
    """Write the data set, or reuse a complete one kept from an earlier run."""
    marker = folder / "dataset.json"
    if marker.is_file():
        counts = json.loads(marker.read_text())
        return Dataset(folder, **counts)
    dataset = write_dataset(folder, invoices=invoices, seed=seed)
    counts = {
        "customers": dataset.customers,
        "invoices": dataset.invoices,
        "payments": dataset.payments,
    }
    marker.write_text(json.dumps(counts))
    return dataset


if __name__ == "__main__":
    raise SystemExit(main())
