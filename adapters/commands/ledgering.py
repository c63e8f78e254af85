"""`ruleset ledger`: what an operator does to the ledger by hand.

    ruleset ledger resolve ACTION_ID --as sent|failed [--config FILE]
                           [--ledger URL] [--state-dir DIR] [--note TEXT]

An unknown outcome (a run killed while sending, an answer lost after the
provider got the message) keeps every `ruleset run` exiting 1 until someone
checks with the provider and says what happened: `--as sent` (the customer
got it: the step counts as sent) or `--as failed` (it never went out: it is
`failed_permanent`, not tried again on that channel, and the step may go
out on another). Only an action in state `unknown` is changed.

Exit codes: 0 resolved; 1 the action is not unknown (nothing changed) or
not in the ledger; 2 usage error; 4 invalid run configuration or an
unreachable ledger.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from adapters import exitcodes
from adapters.commands.common import fail
from adapters.ledger import RESOLUTIONS, UNKNOWN, Ledger, LedgerError
from adapters.runconfig import RunConfigError, load_run_config
from adapters.terminal import echo


@click.group()
def ledger() -> None:
    """Look after the run ledger by hand."""


@ledger.command(
    epilog="Exit codes: 0 resolved; 1 the action is not unknown or not in the "
    "ledger (nothing changed); 2 usage error; 4 invalid configuration or "
    "unreachable ledger. See docs/run.md."
)
@click.argument("action_id")
@click.option(
    "--as",
    "resolution",
    type=click.Choice(sorted(RESOLUTIONS)),
    required=True,
    help="sent: the customer got it; failed: it never went out.",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Run configuration naming the ledger.",
)
@click.option("--ledger", "ledger_url", metavar="URL", help="Ledger URL or file.")
@click.option(
    "--state-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Where the default SQLite ledger lives (default: .ruleset).",
)
@click.option("--note", default="", help="Who checked, and how (kept as the reason).")
def resolve(
    action_id: str,
    resolution: str,
    config_path: str | None,
    ledger_url: str | None,
    state_dir: str | None,
    note: str,
) -> None:
    """Say what became of an action whose outcome is unknown."""
    try:
        config = load_run_config(config_path, dict(os.environ)).overridden(
            ledger=ledger_url, state_dir=Path(state_dir) if state_dir else None
        )
        store = Ledger.open(config.ledger, prefix=config.ledger_prefix, create=False)
    except (RunConfigError, LedgerError) as error:
        fail(str(error), exitcodes.CONFIG_ERROR)
    if store is None:
        fail(f"no ledger at {config.ledger}", exitcodes.CONFIG_ERROR)

    reason = f"resolved by an operator as {resolution}" + (f": {note}" if note else "")
    try:
        before = store.resolve(action_id, resolution, dt.datetime.now(dt.UTC), reason)
    except LedgerError as error:
        fail(str(error), exitcodes.CONFIG_ERROR)
    finally:
        store.close()

    if before is None:
        fail(f"action {action_id} is not in the ledger", exitcodes.PROBLEMS)
    if before != UNKNOWN:
        fail(
            f"action {action_id} is {before}, not unknown: nothing changed",
            exitcodes.PROBLEMS,
        )
    echo(f"{action_id}: {before} -> {RESOLUTIONS[resolution]} ({reason})")
