-- 005_windows_orders: the order (pedido) an empenho pays (issue 7: GET /v1/orders/{order} lists
-- an order's empenhos with its credits). Limit windows live in Redis only (reserve.lua).
ALTER TABLE empenhos ADD COLUMN order_ref text;

CREATE INDEX empenhos_by_order ON empenhos (order_ref) WHERE order_ref IS NOT NULL;
