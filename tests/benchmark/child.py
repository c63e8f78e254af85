"""One measurement in a fresh process: `python -m tests.benchmark.child KIND ...`.

Each kind runs once and prints one JSON object on stdout: the CPU seconds
the work took (`cpu_seconds`; imports and interpreter start-up excluded,
reported apart as `startup_seconds`), its wall-clock seconds, and the
process's peak resident memory in KiB. The work is single-threaded, so CPU
time is what it costs; on a machine shared with other jobs it varies far
less than wall-clock time, which waits for the other jobs too. A fresh
process per measurement keeps one run's memory out of the next one's peak.

The peak is the kernel's high-water mark of this process's own address
space (`VmHWM` in /proc/self/status). `ru_maxrss` is reported too, but on
Linux it carries the parent's peak over fork and exec, so a child of a
large parent reports at least the parent's size.

Kinds:
    parse FOLDER                 the parse-only floor (floors.parse_only)
    plan FOLDER OUTPUT           `ruleset plan rulesets/varejo --data FOLDER`
    validate FOLDER              `ruleset validate FOLDER`
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

from adapters.cli import main as ruleset_cli  # noqa: E402 (timed apart)
from adapters.commands import planning, validating  # noqa: E402, F401 (the same)
from tests.benchmark.floors import parse_only  # noqa: E402
from tests.benchmark.generate import AS_OF  # noqa: E402

VAREJO = Path(__file__).resolve().parents[2] / "rulesets" / "varejo"


def _run_cli(arguments: list[str]) -> int:
    """The CLI in this process, as a shell would run it; its exit status."""
    try:
        ruleset_cli.main(arguments, prog_name="ruleset", standalone_mode=False)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def measure(kind: str, arguments: list[str]) -> dict[str, object]:
    result: dict[str, object] = {"kind": kind}
    begun = time.perf_counter()
    begun_cpu = time.process_time()
    result["startup_seconds"] = begun - STARTED

    if kind == "parse":
        result["records"] = parse_only(Path(arguments[0]))
    elif kind == "plan":
        folder, output = arguments
        result["exit"] = _run_cli(
            ["plan", str(VAREJO), "--data", folder, "--as-of", AS_OF, "-o", output]
        )
    elif kind == "validate":
        result["exit"] = _run_cli(["validate", arguments[0]])
    else:
        raise SystemExit(f"unknown measurement {kind!r}")

    result["cpu_seconds"] = time.process_time() - begun_cpu
    result["seconds"] = time.perf_counter() - begun
    result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_kib"] = _peak_rss_kib(result["ru_maxrss_kib"])
    if kind == "plan":
        plan = Path(arguments[1]).read_bytes()
        result["plan_sha256"] = hashlib.sha256(plan).hexdigest()
        result["plan_lines"] = plan.count(b"\n")
    return result


def _peak_rss_kib(fallback: object) -> object:
    """This address space's peak resident size, where Linux tells it."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return fallback
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return fallback


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    # The CLI may write to stdout (validate's summary): keep our JSON last.
    print(json.dumps(measure(sys.argv[1], sys.argv[2:])), flush=True)
