"""Exit codes of the `ruleset` command. Stable: schedulers alert on them."""

from __future__ import annotations

OK = 0
# validate/test: problems found. run: finished, but some sends failed or
# have an unknown outcome, or the policy failed for some customers.
PROBLEMS = 1
USAGE = 2  # bad arguments, a path that does not exist (click's own code)
INPUT_ERRORS = 3  # bad input records and the configuration says `fail`
CONFIG_ERROR = 4  # invalid ruleset or run configuration
LOCKED = 5  # another run holds the lock on the ledger
# run: stopped by SIGTERM or SIGINT. The send in flight was finished and
# recorded, the summary printed; what was not sent waits for the next run.
STOPPED = 6
