-- 001_journal: the append-only journal of every event the gateway's Lua scripts emitted.
-- One row per event; its protocol is unique, so a redelivered event is stored once.
CREATE TABLE journal (
    protocol    text        PRIMARY KEY,
    shard       text        NOT NULL,
    stream_id   text        NOT NULL,
    type        text        NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    at          timestamptz NOT NULL,
    data        jsonb       NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX journal_at ON journal (at);
CREATE INDEX journal_type_at ON journal (type, at);
