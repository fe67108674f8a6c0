-- 004_reconciliation: the terminals' closing files (fechamento de caixa) matched against the
-- committed empenhos (issue 6; seeds 001, 002, 004), and the convênio's financial account that
-- reconciled sales move (the receivable). ledger/reconciliation.py writes these tables; the
-- CSV format and the states are in docs/reconciliation.md. Money is bigint centavos.

-- Every closing file imported, once: a file is known by its content's SHA-256, so importing
-- the same file again changes nothing.
CREATE TABLE closing_files (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL,  -- the file name as given, for operators
    sha256       text        NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    imported_at  timestamptz NOT NULL,
    imported_by  text        NOT NULL,
    lines        integer     NOT NULL CHECK (lines >= 0),  -- data lines (the header not counted)
    sales        integer     NOT NULL CHECK (sales >= 0),
    informative  integer     NOT NULL CHECK (informative >= 0),
    sales_amount bigint      NOT NULL CHECK (sales_amount >= 0)
);

-- One record per data line of a closing file (origin FILE), and one per committed empenho no
-- file reported (origin LEDGER). `missing` says which side lacks the sale while it is
-- NOT_RECONCILED or FAILED (NULL: not tried yet, or tried again after an undo).
-- A ledger-side record mirrors the file record that later reported its sale (`partner`).
CREATE TABLE reconciliation_records (
    id              bigserial   PRIMARY KEY,
    origin          text        NOT NULL CHECK (origin IN ('FILE', 'LEDGER')),
    file_id         bigint      REFERENCES closing_files (id),
    line            integer     CHECK (line >= 2),  -- the file's line number (1 is the header)
    type            text        NOT NULL,  -- SALE, or an informative type (ADJUSTMENT, INFO)
    store           text        NOT NULL,
    terminal        text        NOT NULL,
    business_date   date        NOT NULL,  -- the file's date; a sale's committed_at in America/Sao_Paulo
    coupon          text        NOT NULL,
    convenio        text        NOT NULL,
    participant     text        NOT NULL,
    amount          bigint      NOT NULL,  -- as the file reported it (origin LEDGER: committed_amount)
    empenho_id      text,       -- the sale matched (empenhos.id; no foreign key: the writer owns empenhos)
    ledger_amount   bigint      CHECK (ledger_amount >= 0),  -- the sale's live amount (0: reversed)
    state           text        NOT NULL
                    CHECK (state IN ('NOT_RECONCILED', 'RECONCILED', 'DIVERGENT', 'INFORMATIVE', 'FAILED')),
    missing         text        CHECK (missing IN ('FILE', 'LEDGER')),
    note            text        NOT NULL DEFAULT '',
    partner         bigint      REFERENCES reconciliation_records (id),
    -- the look-back window counts from this day: the record's date, or the day of an undo
    window_from     date        NOT NULL,
    last_run_on     date,       -- the last run that looked at this record
    updated_at      timestamptz NOT NULL,
    CHECK ((origin = 'FILE') = (file_id IS NOT NULL AND line IS NOT NULL)),
    CHECK (origin = 'FILE' OR (empenho_id IS NOT NULL AND type = 'SALE')),
    CHECK ((state = 'INFORMATIVE') = (type <> 'SALE')),
    CHECK (missing IS NULL OR state IN ('NOT_RECONCILED', 'FAILED')),
    CHECK (type <> 'SALE' OR amount > 0),
    CHECK (state NOT IN ('RECONCILED', 'DIVERGENT') OR origin = 'LEDGER' OR empenho_id IS NOT NULL),
    CHECK (partner IS NULL OR origin = 'LEDGER')
);

CREATE UNIQUE INDEX reconciliation_records_line ON reconciliation_records (file_id, line) WHERE origin = 'FILE';
-- a sale is claimed by one file line at a time, and has at most one ledger-side record
CREATE UNIQUE INDEX reconciliation_records_claim ON reconciliation_records (empenho_id)
    WHERE origin = 'FILE' AND state IN ('RECONCILED', 'DIVERGENT');
CREATE UNIQUE INDEX reconciliation_records_ledger_side ON reconciliation_records (empenho_id)
    WHERE origin = 'LEDGER';
CREATE INDEX reconciliation_records_open ON reconciliation_records (window_from)
    WHERE state IN ('NOT_RECONCILED', 'DIVERGENT');
CREATE INDEX reconciliation_records_by_day ON reconciliation_records (business_date, store, terminal);
CREATE INDEX reconciliation_records_by_convenio ON reconciliation_records (convenio, business_date);

-- Every state change of a record (seed 004's Histórico: when, who, state, note), oldest first.
CREATE TABLE reconciliation_history (
    seq     bigserial   PRIMARY KEY,
    record  bigint      NOT NULL REFERENCES reconciliation_records (id),
    at      timestamptz NOT NULL,
    by      text        NOT NULL,
    state   text        NOT NULL
            CHECK (state IN ('NOT_RECONCILED', 'RECONCILED', 'DIVERGENT', 'INFORMATIVE', 'FAILED')),
    note    text        NOT NULL DEFAULT ''
);

CREATE INDEX reconciliation_history_by_record ON reconciliation_history (record, seq);

-- The convênio's financial account (seed 001: "ao conciliar a tesouraria, serão gerados os
-- movimentos na conta financeira do convênio"): what the convênio owes for reconciled sales.
-- A reconciled sale adds its amount (RECONCILED); undoing the reconciliation (UNDONE), or the
-- ledger reversing the sale afterwards (REVERSED), adds the counter-movement.
-- Each movement belongs to the history row of the change that made it, so a change can move
-- the account once only.
CREATE TABLE receivable_movements (
    seq            bigserial   PRIMARY KEY,
    history_seq    bigint      NOT NULL UNIQUE REFERENCES reconciliation_history (seq),
    record         bigint      NOT NULL REFERENCES reconciliation_records (id),
    convenio       text        NOT NULL,
    participant    text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('RECONCILED', 'UNDONE', 'REVERSED')),
    amount         bigint      NOT NULL CHECK (amount <> 0),
    empenho_id     text        NOT NULL,
    business_date  date        NOT NULL,  -- the sale's day
    at             timestamptz NOT NULL,
    by             text        NOT NULL,
    CHECK ((kind = 'RECONCILED') = (amount > 0))
);

CREATE INDEX receivable_movements_by_convenio ON receivable_movements (convenio, seq);

-- The reconciliation and the cash-closing report read the sales of a few days: committed_at
-- and a reversal's ended_at, by range.
CREATE INDEX empenhos_committed_at ON empenhos (committed_at) WHERE committed_at IS NOT NULL;
CREATE INDEX empenhos_reversed_at ON empenhos (ended_at) WHERE status = 'REVERSED';
