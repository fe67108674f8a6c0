-- 002_projections: what the rest of the product queries, kept by the ledger writer in the
-- same transaction that stores the events (ledger/projections.py). Each shard's events are
-- applied in stream order by the one writer that holds the shard's lock, so a row always
-- shows the state after the last stored event. Money is bigint centavos.

-- Which writer may store a stream's events is decided by a session advisory lock; this
-- table records how far each stream has been stored (for operators and verify).
CREATE TABLE ledger_streams (
    stream      text        PRIMARY KEY,
    last_id     text        NOT NULL,
    stored      bigint      NOT NULL DEFAULT 0 CHECK (stored >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE convenios (
    code         text        PRIMARY KEY,
    name         text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('ACTIVE', 'BLOCKED')),
    shared       boolean     NOT NULL,
    total_limit  bigint      NOT NULL CHECK (total_limit >= 0),
    tolerance    bigint      NOT NULL CHECK (tolerance >= 0),
    allocated    bigint      NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    -- the shared pool (zero in individual mode)
    balance      bigint      NOT NULL,
    reserved     bigint      NOT NULL CHECK (reserved >= 0),
    record       jsonb       NOT NULL,  -- the Redis hash as the last registry change left it
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE participants (
    convenio         text        NOT NULL REFERENCES convenios (code),
    participant      text        NOT NULL,
    name             text        NOT NULL,
    document         text        NOT NULL DEFAULT '',
    status           text        NOT NULL CHECK (status IN ('ACTIVE', 'BLOCKED')),
    "limit"          bigint      NOT NULL CHECK ("limit" >= 0),
    balance          bigint      NOT NULL,
    reserved         bigint      NOT NULL CHECK (reserved >= 0),
    record           jsonb       NOT NULL,
    -- an argon2id hash of the HMAC of the password under the server's pepper; never the password
    pw_hash          text,
    pw_locked_until  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (convenio, participant)
);

CREATE INDEX participants_by_code ON participants (participant);

CREATE TABLE vehicles (
    convenio       text        NOT NULL,
    participant    text        NOT NULL,
    plate          text        NOT NULL,
    description    text        NOT NULL DEFAULT '',
    registered_at  timestamptz NOT NULL,
    last_km        bigint      CHECK (last_km >= 0),
    last_km_at     timestamptz,
    PRIMARY KEY (convenio, participant, plate),
    FOREIGN KEY (convenio, participant) REFERENCES participants (convenio, participant)
);

CREATE TABLE empenhos (
    id                text        PRIMARY KEY,
    convenio          text        NOT NULL,
    participant       text        NOT NULL,
    amount            bigint      NOT NULL CHECK (amount > 0),
    pool              text        NOT NULL CHECK (pool IN ('P', 'C')),
    status            text        NOT NULL
                      CHECK (status IN ('PENDING', 'COMMITTED', 'CANCELLED', 'REVERSED', 'EXPIRED')),
    terminal          text        NOT NULL,
    store             text        NOT NULL,
    sale              text        NOT NULL,
    plate             text        NOT NULL DEFAULT '',
    odometer_km       bigint      CHECK (odometer_km >= 0),
    api_key_id        text        NOT NULL,
    protocol          text        NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    committed_amount  bigint      CHECK (committed_amount > 0 AND committed_amount <= amount),
    coupon            text,
    committed_at      timestamptz,
    ended_at          timestamptz,
    cancel_reason     text,
    -- the answers a retried commit or cancel replays (restored by rebuild)
    commit_result     jsonb,
    cancel_result     jsonb,
    CHECK ((status IN ('COMMITTED', 'REVERSED')) = (committed_amount IS NOT NULL)),
    FOREIGN KEY (convenio, participant) REFERENCES participants (convenio, participant)
);

CREATE INDEX empenhos_pending ON empenhos (convenio, participant) WHERE status = 'PENDING';
CREATE INDEX empenhos_by_participant ON empenhos (convenio, participant, created_at);

CREATE TABLE empenho_history (
    seq         bigserial   NOT NULL,  -- stream order: several changes can share a millisecond
    protocol    text        PRIMARY KEY,
    empenho_id  text        NOT NULL REFERENCES empenhos (id),
    status      text        NOT NULL
                CHECK (status IN ('PENDING', 'COMMITTED', 'CANCELLED', 'REVERSED', 'EXPIRED')),
    at          timestamptz NOT NULL,
    amount      bigint      NOT NULL CHECK (amount > 0)
);

CREATE INDEX empenho_history_by_empenho ON empenho_history (empenho_id, seq);

-- Every change of a balance, signed (a sale is negative), with the pool's balance after it:
-- the convênio's movements (seed 001: CRM > Convênios > Venda a Cliente).
CREATE TABLE movements (
    seq            bigserial   PRIMARY KEY,
    protocol       text        NOT NULL UNIQUE,
    convenio       text        NOT NULL,
    participant    text,       -- NULL for a change of the convênio's own pool
    kind           text        NOT NULL CHECK (kind IN ('SALE', 'REVERSAL', 'LIMIT_CHANGE')),
    amount         bigint      NOT NULL CHECK (amount <> 0),
    balance_after  bigint      NOT NULL,
    pool           text        NOT NULL CHECK (pool IN ('P', 'C')),
    empenho_id     text,
    terminal       text,
    store          text,
    sale           text,
    coupon         text,
    at             timestamptz NOT NULL
);

CREATE INDEX movements_by_convenio ON movements (convenio, seq);
CREATE INDEX movements_by_participant ON movements (convenio, participant, seq);
CREATE INDEX movements_at ON movements (convenio, at);

-- The decision log (seed 004's communication log): every decision under its protocol, with
-- what was asked and what was answered; never a password, proof or key.
CREATE TABLE decisions (
    protocol     text        PRIMARY KEY,
    at           timestamptz NOT NULL,
    kind         text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('APPROVED', 'DECLINED')),
    http_status  smallint    CHECK (http_status BETWEEN 200 AND 499),  -- NULL: no request (sweeper)
    error        text,
    convenio     text,
    participant  text,
    empenho_id   text,
    request      jsonb       NOT NULL,
    answer       jsonb       NOT NULL,
    CHECK (error IS NULL OR outcome = 'DECLINED')
);

CREATE INDEX decisions_by_participant ON decisions (convenio, participant, at);
CREATE INDEX decisions_at ON decisions (at);

CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    digest       text        NOT NULL UNIQUE,  -- SHA-256 of the key; the key itself is never stored
    permissions  text        NOT NULL,
    name         text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

-- One row: the integration key's HMAC under the pepper (seed 001's palavra chave).
CREATE TABLE integration_key (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    digest      text        NOT NULL,
    updated_at  timestamptz NOT NULL
);
