"""The outside world: data sources, providers, the ledger and the CLI."""
