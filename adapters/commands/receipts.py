"""`ruleset receipts`: receive delivery-status callbacks into the ledger.

    ruleset receipts --config FILE [--ledger URL] [--port 8787]

Every provider entry of the run configuration that can verify its
provider's callbacks (docs/providers.md, "Delivery receipts") gets the
route `/receipts/<entry name>`; the statuses land in the same ledger
`ruleset run` writes. The server listens on a loopback address only: a
TLS-terminating reverse proxy makes it reachable. It runs until SIGTERM or
Ctrl-C, then prints how many statuses it recorded.

Exit codes: 0 stopped cleanly; 2 usage error; 4 invalid run configuration,
no provider with receipts, or an unreachable ledger.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from adapters import exitcodes
from adapters.commands.common import fail
from adapters.ledger import Ledger, LedgerError
from adapters.providers.options import ProviderConfigError
from adapters.providers.registry import build_receipts
from adapters.providers.status import RECEIPTS_PATH, ReceiptParser, ReceiptServer
from adapters.runconfig import RunConfigError, load_run_config

DEFAULT_PORT = 8787


@click.command()
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Run configuration naming the providers and the ledger.",
)
@click.option("--ledger", metavar="URL", help="Ledger URL (overrides the file).")
@click.option(
    "--state-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Where the default SQLite ledger lives (default: .ruleset).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--log-level",
    type=click.Choice(("debug", "info", "warning", "error")),
    default="info",
    show_default=True,
)
def receipts(
    config_path: str,
    ledger: str | None,
    state_dir: str | None,
    host: str,
    port: int,
    log_level: str,
) -> None:
    """Receive delivery-status callbacks and record them in the ledger."""
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    env = dict(os.environ)
    try:
        config = load_run_config(config_path, env).overridden(
            ledger=ledger, state_dir=Path(state_dir) if state_dir else None
        )
    except RunConfigError as error:
        fail(str(error), exitcodes.CONFIG_ERROR)

    parsers: dict[str, ReceiptParser] = {}
    for spec in config.providers.values():
        try:
            parser = build_receipts(spec.name, spec.options, env)
        except ProviderConfigError as error:
            fail(f"{spec.where or config.origin}: {error}", exitcodes.CONFIG_ERROR)
        if parser is not None:
            parsers[spec.name] = parser
    if not parsers:
        fail(
            f"{config.origin}: no provider entry can verify delivery callbacks "
            "(see docs/providers.md, Delivery receipts)",
            exitcodes.CONFIG_ERROR,
        )

    try:
        # Receipts belong to sends a run recorded: a ledger that does not
        # exist yet is a mistyped path, not one to create.
        store = Ledger.open(config.ledger, prefix=config.ledger_prefix, create=False)
    except LedgerError as error:
        fail(str(error), exitcodes.CONFIG_ERROR)
    if store is None:
        fail(f"no ledger at {config.ledger}", exitcodes.CONFIG_ERROR)
    try:
        server = ReceiptServer(
            parsers, store.record_delivery_status, host=host, port=port
        )
    except (ValueError, OSError) as error:
        store.close()
        raise click.UsageError(str(error)) from error

    bound_host, bound_port = server.address
    click.echo(f"listening on http://{bound_host}:{bound_port}")
    for name in sorted(parsers):
        click.echo(f"  {name}: {RECEIPTS_PATH}{name}")
    sys.stdout.flush()

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        while not stop.wait(0.5):  # a timed wait lets signal handlers run
            pass
    finally:
        server.shutdown()
        serving.join()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(
        f"stopped: {server.recorded} status(es) recorded, "
        f"{server.unknown} for messages the ledger does not know"
    )
