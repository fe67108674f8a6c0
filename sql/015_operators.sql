-- 015_operators: the people who log in to the back office (gateway/operators). A password is kept
-- only as its argon2id hash over an HMAC keyed with the server's pepper, never in clear; failed
-- logins and sessions are transient and live in Redis. Every change is in audit_log too.

CREATE TABLE operators (
    login                text        PRIMARY KEY CHECK (login ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    permissions          text        NOT NULL CHECK (permissions ~ '^([0-9]+(,[0-9]+)*)?$'),  -- "603,9000"
    pw_hash              text        NOT NULL CHECK (pw_hash LIKE '$argon2id$%'),
    must_change_password boolean     NOT NULL DEFAULT true,
    status               text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'BLOCKED')),
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    created_by           text        NOT NULL
);
