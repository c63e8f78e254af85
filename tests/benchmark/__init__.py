"""The benchmark of issue 8: `python -m tests.benchmark.run` (docs/performance.md)."""
