-- 011_stores_and_keys: stores and their terminals as records (the registry keeps them in Redis,
-- these tables are their durable copy, for rebuild and for the back office's reports), and API
-- keys scoped to a store (and terminal), rotated with a grace period.

CREATE TABLE stores (
    code        text        PRIMARY KEY,
    name        text        NOT NULL DEFAULT '',
    time_zone   text        NOT NULL DEFAULT 'America/Sao_Paulo',
    status      text        NOT NULL CHECK (status IN ('ACTIVE', 'BLOCKED')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE store_terminals (
    store       text        NOT NULL REFERENCES stores (code),
    terminal    text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('ACTIVE', 'BLOCKED')),
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (store, terminal)
);

-- a key acts for one store (and terminal) when they are set; its lineage is the first key it
-- was rotated from (its own id otherwise): Idempotency-Keys and api_key_id in the ledger are
-- scoped to it; a rotated key works until expires_at
ALTER TABLE api_keys ADD COLUMN store text;
ALTER TABLE api_keys ADD COLUMN terminal text;
ALTER TABLE api_keys ADD COLUMN lineage text;
ALTER TABLE api_keys ADD COLUMN previous text;
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_terminal_needs_store CHECK (terminal IS NULL OR store IS NOT NULL);
