"""Convênio authorization gateway: the checkout terminals' HTTP API over live balances in Redis."""
