"""The `ruleset` command line.

Commands are imported only when they run: `ruleset validate` in a CI job
should not pay for SQLAlchemy, SMTP or HTTP clients it never uses.
"""

from __future__ import annotations

import importlib

import click

from adapters.stdoutguard import guard_stdout

# command name -> (module under adapters.commands, attribute)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validating", "validate"),
    "schema": ("validating", "schema"),
    "test": ("testing", "test"),
    "plan": ("planning", "plan"),
    "explain": ("planning", "explain"),
    "diff": ("testing", "diff"),
    "run": ("running", "run"),
    "receipts": ("receipts", "receipts"),
    "ledger": ("ledgering", "ledger"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name]
        module = importlib.import_module(f"adapters.commands.{module_name}")
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ruleset")
def main() -> None:
    """Preventive collection policies as code: validate, test, plan, run."""
    # A reader that closes the pipe early (| head) never changes the exit code.
    guard_stdout()
