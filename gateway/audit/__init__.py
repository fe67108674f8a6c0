"""The audit log of every back-office action: who, when, what, before and after, in Postgres."""
