-- 003_month: the month of a convênio (issue 6): batch runs, balance rollovers and restorations,
-- duplicatas (collection bills) and their items, overdue blocking.

-- Every batch run: one row per (job, key), e.g. ('rollover', '2026-11-30'). A run that ended
-- DONE is never run again; a RUNNING or FAILED one is resumed by the next run of the same key.
CREATE TABLE job_runs (
    job         text        NOT NULL,
    key         text        NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('RUNNING', 'DONE', 'FAILED')),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    attempts    integer     NOT NULL DEFAULT 1 CHECK (attempts > 0),
    counts      jsonb       NOT NULL DEFAULT '{}',
    error       text,
    run_by      text        NOT NULL DEFAULT '',
    PRIMARY KEY (job, key)
);

CREATE INDEX job_runs_recent ON job_runs (started_at DESC);

-- A convênio or participant may also be blocked by the system: for overdue duplicatas (issue
-- 6) or for credit (issue 7). Only the manual BLOCKED is set through the registry API.
ALTER TABLE convenios DROP CONSTRAINT convenios_status_check;
ALTER TABLE convenios ADD CONSTRAINT convenios_status_check
    CHECK (status IN ('ACTIVE', 'BLOCKED', 'BLOCKED_OVERDUE', 'BLOCKED_CREDIT'));
ALTER TABLE participants DROP CONSTRAINT participants_status_check;
ALTER TABLE participants ADD CONSTRAINT participants_status_check
    CHECK (status IN ('ACTIVE', 'BLOCKED', 'BLOCKED_OVERDUE', 'BLOCKED_CREDIT'));

-- Balance changes by the month's batches: ROLLOVER (MONTHLY: back to the limit) and RESTORE
-- (ON_BILLING / ON_SETTLEMENT: the billed amount given back).
ALTER TABLE movements DROP CONSTRAINT movements_kind_check;
ALTER TABLE movements ADD CONSTRAINT movements_kind_check
    CHECK (kind IN ('SALE', 'REVERSAL', 'LIMIT_CHANGE', 'ROLLOVER', 'RESTORE'));
ALTER TABLE movements ADD COLUMN batch_key text;  -- the period or duplicata a ROLLOVER / RESTORE belongs to

-- A collection bill to the company (participant NULL) or in a participant's name, for the
-- committed sales (and reversals of sales already billed) of a period.
CREATE TABLE duplicatas (
    id              text        PRIMARY KEY,
    convenio        text        NOT NULL REFERENCES convenios (code),
    participant     text,
    period          text        NOT NULL CHECK (period IN ('DAILY', 'MONTHLY')),
    period_start    date        NOT NULL,
    period_end      date        NOT NULL CHECK (period_end > period_start),  -- exclusive
    amount          bigint      NOT NULL,  -- sales less reversals; may be <= 0 (a credit)
    items           integer     NOT NULL CHECK (items > 0),
    payment_method  text        NOT NULL,
    issued_at       timestamptz NOT NULL,
    due_date        date        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('OPEN', 'PAID')),
    paid_at         timestamptz,
    paid_by         text,
    paid_note       text,
    -- ON_BILLING / ON_SETTLEMENT: the billed amount is given back to the balances by a run
    -- that may die half-way; PENDING until every pool got its share
    restore         text        NOT NULL CHECK (restore IN ('NONE', 'PENDING', 'DONE')),
    restore_started_at timestamptz,  -- set by the first attempt: a later one checks the journal
    restored_at     timestamptz,
    CHECK ((status = 'PAID') = (paid_at IS NOT NULL))
);

CREATE UNIQUE INDEX duplicatas_once ON duplicatas (convenio, coalesce(participant, ''), period_start, period_end);
CREATE INDEX duplicatas_by_convenio ON duplicatas (convenio, period_start);
CREATE INDEX duplicatas_open ON duplicatas (due_date) WHERE status = 'OPEN';
CREATE INDEX duplicatas_restore_pending ON duplicatas (convenio) WHERE restore = 'PENDING';

-- What a duplicata bills: one row per sale or reversal movement, and a movement is billed
-- once (its protocol is the key), however often or however far the job runs.
CREATE TABLE duplicata_items (
    movement     text        PRIMARY KEY REFERENCES movements (protocol),
    duplicata    text        NOT NULL REFERENCES duplicatas (id),
    participant  text,
    pool         text        NOT NULL CHECK (pool IN ('P', 'C')),
    empenho_id   text,
    kind         text        NOT NULL CHECK (kind IN ('SALE', 'REVERSAL')),
    amount       bigint      NOT NULL CHECK (amount <> 0),  -- billed: a sale positive, a reversal negative
    at           timestamptz NOT NULL
);

CREATE INDEX duplicata_items_by_duplicata ON duplicata_items (duplicata);
