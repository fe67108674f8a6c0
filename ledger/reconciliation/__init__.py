"""Reconciliation of the terminals' closing files with the ledger (look-back, history, undo,
receivables) and the cash-closing report (docs/reconciliation.md)."""
