"""The ledger writer: every shard's events into the Postgres journal exactly once, and the
projections kept in the same transaction, folded from the catalogue of event types."""
