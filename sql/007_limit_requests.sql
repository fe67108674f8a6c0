-- 007_limit_requests: limit-change requests and the registry's change history (issue 7, seed 004:
-- "Solicitação de Alteração de Limite" and "Histórico").

-- A request for a participant's new limit: a suggested limit ("Limite de Crédito Sugerido"), a
-- reason and an urgent flag ("Emergencial"); an operator approves it, possibly for another
-- amount, or rejects it with a reason. A back-office record: nothing at the checkout reads it.
-- No foreign key to participants: that projection may lag behind Redis, which is the registry's
-- authority (gateway/limit_requests.py checks the participant there).
CREATE TABLE limit_requests (
    id               text        PRIMARY KEY CHECK (id ~ '^L[0-9A-Z]{26}$'),
    convenio         text        NOT NULL,
    participant      text        NOT NULL,
    current_limit    bigint      NOT NULL CHECK (current_limit >= 0),  -- the limit when it was asked
    suggested_limit  bigint      NOT NULL CHECK (suggested_limit >= 0),
    reason           text        NOT NULL CHECK (reason <> ''),
    urgent           boolean     NOT NULL DEFAULT false,
    status           text        NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    requested_by     text        NOT NULL,
    requested_at     timestamptz NOT NULL,
    -- set (and committed) before an approval applies its limit in Redis, cleared when Redis
    -- refuses it: while set, the limit may already be applied, so only another approval may
    -- finish the request (a rejection would leave the limit raised under a REJECTED request)
    approving_limit  bigint      CHECK (approving_limit >= 0),
    decided_by       text,
    decided_at       timestamptz,
    approved_limit   bigint      CHECK (approved_limit >= 0),
    decision_reason  text,
    CHECK ((status = 'PENDING') = (decided_at IS NULL)),
    CHECK ((status = 'PENDING') = (decided_by IS NULL)),
    CHECK ((status = 'APPROVED') = (approved_limit IS NOT NULL)),
    CHECK (status <> 'REJECTED' OR decision_reason <> ''),
    CHECK (status = 'PENDING' OR approving_limit IS NULL)
);

CREATE INDEX limit_requests_by_participant ON limit_requests (convenio, participant, requested_at);

-- Every change of a limit (a participant's `limit`, a convênio's `total_limit`) or a status,
-- with who, when, before, after and why: kept by the ledger writer from participant.* and
-- convenio.* events (ledger/history_projections.py; a creation is a change from nothing). The
-- steps of limit requests are rows of kind REQUEST, written by gateway/limit_requests.py in
-- the transaction that records the step.
CREATE TABLE registry_history (
    seq             bigserial   PRIMARY KEY,
    -- unique, so a redelivered event or a repeated step writes once: "<event protocol>:limit",
    -- "<event protocol>:status", "<request id>:REQUESTED" / ":APPROVED" / ":REJECTED"
    protocol        text        NOT NULL UNIQUE,
    convenio        text        NOT NULL,
    participant     text,       -- NULL: the convênio's own change
    kind            text        NOT NULL CHECK (kind IN ('LIMIT', 'STATUS', 'REQUEST')),
    at              timestamptz NOT NULL,
    changed_by      text        NOT NULL DEFAULT '',  -- "apikey:<id>", an operator, or "system"
    -- LIMIT: the limit before (NULL at creation) and after; REQUEST: the limit when asked, and
    -- the approved limit (NULL while pending or when rejected)
    before_amount   bigint      CHECK (before_amount >= 0),
    after_amount    bigint      CHECK (after_amount >= 0),
    before_status   text,       -- STATUS: NULL at creation
    after_status    text,
    reason          text        NOT NULL DEFAULT '',
    request_id      text,       -- the limit request behind the change, if any
    request_status  text        CHECK (request_status IN ('PENDING', 'APPROVED', 'REJECTED')),
    suggested       bigint      CHECK (suggested >= 0),
    urgent          boolean,
    CHECK (kind <> 'LIMIT' OR after_amount IS NOT NULL),
    CHECK (kind <> 'STATUS' OR after_status IS NOT NULL),
    CHECK ((kind = 'REQUEST') = (request_status IS NOT NULL)),
    CHECK (kind <> 'REQUEST' OR (request_id IS NOT NULL AND suggested IS NOT NULL AND urgent IS NOT NULL))
);

-- newest first, per participant (or per convênio: participant '')
CREATE INDEX registry_history_by_subject ON registry_history (convenio, coalesce(participant, ''), at DESC, seq DESC);
