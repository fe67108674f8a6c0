-- 006_credits: the customers' current account (seed 000) and the order-status integration
-- (seed 003), issue 7. Kept by ledger/credit_projections.py from the events of
-- gateway/lua/credit_*.lua and order_status_*.lua; Redis stays the authority for what a credit
-- has remaining, these tables are its durable record and finance's export (docs/credits.md).

-- A credit: money the retailer owes the customer, usable to pay orders until it expires.
CREATE TABLE credits (
    id           text        PRIMARY KEY,
    customer     text        NOT NULL,
    reference    text        NOT NULL,
    type         text        NOT NULL CHECK (type ~ '^[A-Z][A-Z0-9_]{1,31}$'),
    amount       bigint      NOT NULL CHECK (amount > 0),
    remaining    bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    channel      text        NOT NULL CHECK (channel IN ('STORE', 'WEB')),
    store        text,
    terminal     text,
    order_ref    text,
    expires_at   timestamptz,
    seq          integer     NOT NULL CHECK (seq > 0),  -- the customer's n-th credit: "the oldest" among equals
    fingerprint  text        NOT NULL,  -- what a POST of the same reference must match to replay
    api_key_id   text        NOT NULL DEFAULT '',
    protocol     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    UNIQUE (customer, reference)
);

CREATE INDEX credits_by_customer ON credits (customer, seq);

-- An order paying with credits: PENDING, then COMMITTED (all or part), CANCELLED, EXPIRED, or
-- (after commit) REVERSED; like an empenho.
CREATE TABLE credit_holds (
    id                text        PRIMARY KEY,
    customer          text        NOT NULL,
    amount            bigint      NOT NULL CHECK (amount > 0),
    status            text        NOT NULL
                      CHECK (status IN ('PENDING', 'COMMITTED', 'CANCELLED', 'REVERSED', 'EXPIRED')),
    order_ref         text        NOT NULL,
    channel           text        NOT NULL CHECK (channel IN ('STORE', 'WEB')),
    store             text,
    terminal          text,
    api_key_id        text        NOT NULL DEFAULT '',
    idem              text,       -- digest of the Idempotency-Key, never the key itself
    fingerprint       text,
    protocol          text        NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    committed_amount  bigint      CHECK (committed_amount > 0 AND committed_amount <= amount),
    coupon            text,
    committed_at      timestamptz,
    ended_at          timestamptz,
    cancel_reason     text,
    answer            jsonb,      -- the hold's answer, which a retry within the idempotency window replays
    commit_result     jsonb,
    cancel_result     jsonb,
    CHECK ((status IN ('COMMITTED', 'REVERSED')) = (committed_amount IS NOT NULL))
);

CREATE INDEX credit_holds_by_order ON credit_holds (order_ref);
CREATE INDEX credit_holds_by_customer ON credit_holds (customer, created_at);
CREATE INDEX credit_holds_pending ON credit_holds (customer) WHERE status = 'PENDING';

-- What a hold took from each credit, in the order it took them; `committed` once posted.
CREATE TABLE credit_hold_parts (
    hold_id    text     NOT NULL REFERENCES credit_holds (id),
    seq        smallint NOT NULL CHECK (seq > 0),
    credit_id  text     NOT NULL REFERENCES credits (id),
    held       bigint   NOT NULL CHECK (held > 0),
    committed  bigint   CHECK (committed >= 0 AND committed <= held),
    PRIMARY KEY (hold_id, seq)
);

CREATE INDEX credit_hold_parts_by_credit ON credit_hold_parts (credit_id);

CREATE TABLE credit_hold_history (
    seq       bigserial   NOT NULL,  -- stream order
    protocol  text        PRIMARY KEY,
    hold_id   text        NOT NULL REFERENCES credit_holds (id),
    status    text        NOT NULL
              CHECK (status IN ('PENDING', 'COMMITTED', 'CANCELLED', 'REVERSED', 'EXPIRED')),
    at        timestamptz NOT NULL,
    amount    bigint      NOT NULL CHECK (amount > 0)
);

CREATE INDEX credit_hold_history_by_hold ON credit_hold_history (hold_id, seq);

-- Finance's record: every credit (a credit registered, or given back by a returned order) and
-- debit (a committed hold) of a customer's current account, one row per credit touched, with
-- the credit's reference and type. Holds, cancels and expiries of holds are not movements.
CREATE TABLE credit_movements (
    seq              bigserial   PRIMARY KEY,
    movement         text        NOT NULL UNIQUE,  -- the event's protocol, '.n' for its n-th credit
    protocol         text        NOT NULL,
    at               timestamptz NOT NULL,
    customer         text        NOT NULL,
    credit_id        text        NOT NULL REFERENCES credits (id),
    reference        text        NOT NULL,
    type             text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('CREDIT', 'DEBIT', 'RETURN')),
    amount           bigint      NOT NULL CHECK (amount <> 0 AND (amount < 0) = (kind = 'DEBIT')),
    remaining_after  bigint      NOT NULL CHECK (remaining_after >= 0),
    hold_id          text,
    order_ref        text,
    channel          text,
    store            text,
    terminal         text
);

CREATE INDEX credit_movements_at ON credit_movements (at);
CREATE INDEX credit_movements_by_customer ON credit_movements (customer, seq);

-- The order-status integration's parameters (seed 003), as last set.
CREATE TABLE order_status_params (
    singleton        boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    commit_statuses  text        NOT NULL,  -- comma-separated, like the seed's parameter
    cancel_statuses  text        NOT NULL,
    update_balance   boolean     NOT NULL,
    updated_at       timestamptz NOT NULL,
    updated_by       text        NOT NULL DEFAULT ''
);

-- What processing an order status did (the report a re-post answers again).
CREATE TABLE order_statuses (
    order_ref       text        NOT NULL,
    status          text        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('COMMIT', 'CANCEL', 'NONE')),
    update_balance  boolean     NOT NULL,
    report          jsonb       NOT NULL,
    protocol        text        NOT NULL,
    at              timestamptz NOT NULL,
    PRIMARY KEY (order_ref, status)
);
