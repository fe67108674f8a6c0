"""The customers' current accounts: credits, credit holds paying orders, orders, the ERP's order
statuses, and finance's export (docs/credits.md)."""
