"""Orders (pedidos): what pays an order, over credit holds and empenhos alike, its returns, and the
ERP's order statuses that commit, cancel or return it."""
