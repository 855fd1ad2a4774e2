-- The revocation feed: what resource servers must refuse among the JWTs they would
-- otherwise accept from their claims alone. Each row revokes one token (`jti`), one grant
-- family's tokens (`sid`), or every token of a user (`sub`) or of a client (`client_id`)
-- issued at or before `issued_before`. `seq` is the feed's cursor: writers of this table
-- take one advisory lock (see the store's dialect), so rows become visible in `seq`
-- order and a reader that has seen `seq` N never finds a row below N later. A row can be
-- forgotten at `until`: no token it covers is valid by then.
CREATE TABLE revocations (
    seq            bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('jti', 'sid', 'sub', 'client_id')),
    value          text NOT NULL,
    issued_before  timestamptz,
    until          timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    CHECK ((kind IN ('sub', 'client_id')) = (issued_before IS NOT NULL))
);
CREATE INDEX revocations_until ON revocations (until);
CREATE INDEX revocations_value ON revocations (value);

-- The last time everything issued to a user or a client was revoked: a token issued in
-- that same second would carry the same `iat` as the cutoff, so issuance waits for the
-- next second instead.
ALTER TABLE users ADD COLUMN tokens_revoked_at timestamptz;
ALTER TABLE clients ADD COLUMN tokens_revoked_at timestamptz;
