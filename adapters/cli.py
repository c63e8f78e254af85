"""The `ruleset` command line."""

from __future__ import annotations

import click

from adapters.commands import planning, receipts, running, testing, validating


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ruleset")
def main() -> None:
    """Preventive collection policies as code: validate, plan, explain, run."""


main.add_command(validating.validate)
main.add_command(validating.schema)
main.add_command(planning.plan)
main.add_command(planning.explain)
main.add_command(running.run)
main.add_command(receipts.receipts)
main.add_command(testing.test)
main.add_command(testing.diff)
