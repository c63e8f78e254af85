"""`ruleset validate` and `ruleset schema` (being built)."""

from __future__ import annotations

import click


@click.command()
@click.argument("paths", nargs=-1)
def validate(paths: tuple[str, ...]) -> None:
    """Check rulesets."""
    raise click.ClickException("validate is being built")


@click.command()
def schema() -> None:
    """Print the JSON Schema of policy files."""
    raise click.ClickException("schema is being built")
