"""The layer beneath every feature, with no business rules: settings, time, ids, errors, the
services container, Postgres access, locks, money formatting, and the HTTP and Redis plumbing."""
