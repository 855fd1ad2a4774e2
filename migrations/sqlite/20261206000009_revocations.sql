-- The revocation feed: what resource servers must refuse among the JWTs they would
-- otherwise accept from their claims alone. Each row revokes one token (`jti`), one grant
-- family's tokens (`sid`), or every token of a user (`sub`) or of a client (`client_id`)
-- issued at or before `issued_before`. `seq` is the feed's cursor: SQLite runs one writer
-- at a time, so rows become visible in `seq` order, and AUTOINCREMENT never reuses a
-- number. A row can be forgotten at `until`: no token it covers is valid by then.
CREATE TABLE revocations (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('jti', 'sid', 'sub', 'client_id')),
    value          TEXT NOT NULL,
    issued_before  TEXT,
    until          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    CHECK ((kind IN ('sub', 'client_id')) = (issued_before IS NOT NULL))
);
CREATE INDEX revocations_until ON revocations (until);
CREATE INDEX revocations_value ON revocations (value);

-- The last time everything issued to a user or a client was revoked: a token issued in
-- that same second would carry the same `iat` as the cutoff, so issuance waits for the
-- next second instead.
ALTER TABLE users ADD COLUMN tokens_revoked_at TEXT;
ALTER TABLE clients ADD COLUMN tokens_revoked_at TEXT;
