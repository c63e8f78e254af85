"""`ruleset run` (being built)."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Run."""
    raise click.ClickException("run is being built")
