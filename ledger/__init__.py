"""Ledger side of the product: Postgres migrations, the operator CLI, local services."""
