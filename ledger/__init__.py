"""What runs behind Postgres: the ledger writer and its projections, the month's batches,
reconciliation, operations, and the `convenio` command (cli.py, its composition root)."""
