"""The HTTP edge: the endpoint table's types, the one wrapper every call goes through, parameters,
the Idempotency-Key header, header limits, routing, /openapi.json and the operations endpoints."""
