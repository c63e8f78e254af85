"""`ruleset plan` and `ruleset explain` (being built)."""

from __future__ import annotations

import click


@click.command()
def plan() -> None:
    """Plan."""
    raise click.ClickException("plan is being built")


@click.command()
def explain() -> None:
    """Explain."""
    raise click.ClickException("explain is being built")
