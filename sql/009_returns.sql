-- 009_returns: returns (devoluções) of committed sales, in part and at any time: of an empenho
-- (back to its pool, or as a DEVOLUCAO credit of the customer) and of a credit hold (back to the
-- credits it took). A sale's returns never add up to more than it committed.

ALTER TABLE empenhos ADD COLUMN returned bigint NOT NULL DEFAULT 0 CHECK (returned >= 0);
ALTER TABLE empenhos ADD CONSTRAINT empenhos_returned_within_commit
    CHECK (returned = 0 OR returned <= committed_amount);
-- the local day and month the hold counted in, per limit-window scope (P participant, C
-- convênio): a return gives back to those windows while they are current
ALTER TABLE empenhos ADD COLUMN windows jsonb;

CREATE TABLE empenho_returns (
    id              text        PRIMARY KEY,
    empenho_id      text        NOT NULL REFERENCES empenhos (id),
    protocol        text        NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    amount          bigint      NOT NULL CHECK (amount > 0),
    returned_after  bigint      NOT NULL CHECK (returned_after >= amount),
    refund          text        NOT NULL CHECK (refund IN ('POOL', 'CREDIT')),
    credit_reference text,      -- CREDIT: the DEVOLUCAO credit it became
    store           text        NOT NULL,
    terminal        text        NOT NULL,
    reason          text,
    api_key_id      text        NOT NULL
);

CREATE INDEX empenho_returns_by_empenho ON empenho_returns (empenho_id, at);
CREATE INDEX empenho_returns_at ON empenho_returns (at);

ALTER TABLE movements DROP CONSTRAINT movements_kind_check;
ALTER TABLE movements ADD CONSTRAINT movements_kind_check
    CHECK (kind IN ('SALE', 'REVERSAL', 'RETURN', 'LIMIT_CHANGE', 'ROLLOVER', 'RESTORE'));
ALTER TABLE duplicata_items DROP CONSTRAINT duplicata_items_kind_check;
ALTER TABLE duplicata_items ADD CONSTRAINT duplicata_items_kind_check CHECK (kind IN ('SALE', 'REVERSAL', 'RETURN'));

ALTER TABLE credit_holds ADD COLUMN returned bigint NOT NULL DEFAULT 0 CHECK (returned >= 0);
ALTER TABLE credit_hold_parts ADD COLUMN returned bigint NOT NULL DEFAULT 0 CHECK (returned >= 0);

CREATE TABLE credit_hold_returns (
    id              text        PRIMARY KEY,
    hold_id         text        NOT NULL REFERENCES credit_holds (id),
    protocol        text        NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    amount          bigint      NOT NULL CHECK (amount > 0),
    returned_after  bigint      NOT NULL CHECK (returned_after >= amount),
    store           text,
    terminal        text,
    reason          text,
    api_key_id      text        NOT NULL,
    credits         jsonb       NOT NULL  -- what went back to which credit: [{reference, type, amount, expired}]
);

CREATE INDEX credit_hold_returns_by_hold ON credit_hold_returns (hold_id, at);

-- finance's lines of returns: RETURN gives a part back to a credit; RETURN_EXPIRED gives it back to
-- a credit that has expired meanwhile (it stays expired: the share lapses with it). `return_id`
-- and `sale` name the return and the sale it gives back (a credit hold, or for a DEVOLUCAO credit
-- a refund became, the empenho).
ALTER TABLE credit_movements DROP CONSTRAINT credit_movements_kind_check;
ALTER TABLE credit_movements ADD CONSTRAINT credit_movements_kind_check
    CHECK (kind IN ('CREDIT', 'DEBIT', 'RETURN', 'RETURN_EXPIRED'));
ALTER TABLE credit_movements ADD COLUMN return_id text;
ALTER TABLE credit_movements ADD COLUMN sale text;
