-- The audit log: who did what, when and from where (logins, tokens issued and revoked,
-- refresh-token reuse, key and user changes). Rows are only ever appended, never updated
-- or purged. No foreign keys: an event outlives the user, client or key it names, and
-- names it as text. No field holds a secret, a token or a password.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT,
    client_id  TEXT,
    company    TEXT,
    target     TEXT,
    address    TEXT,
    detail     TEXT
);
-- Newest first, and newest of one kind first: the two ways the log is read.
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);
