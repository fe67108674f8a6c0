"""The operators' side of the audit log: reading it from the command line."""
