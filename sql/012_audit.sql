-- 012_audit: the audit log of every back-office action (who, when, what, before, after).
-- Rows come from the registry's, keys' and stores' events (ledger/writer/audit.py, one per event,
-- under its protocol) and from actions that touch Postgres only (privacy exports and erasures,
-- gateway/audit/log.py). Never a password, proof, key or personal document: before and after
-- hold what the back office sees (a document masked, a key by its id).

CREATE TABLE audit_log (
    seq         bigserial   NOT NULL UNIQUE,
    protocol    text        PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,  -- the API key id, "cli:<login>", or "system"
    action      text        NOT NULL,  -- the event type, e.g. convenio.updated, privacy.erased
    target      text        NOT NULL,  -- what it acted on, e.g. "participant EMP001/CLI001"
    before      jsonb,
    after       jsonb
);

CREATE INDEX audit_log_at ON audit_log (at, seq);
CREATE INDEX audit_log_target ON audit_log (target, at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
