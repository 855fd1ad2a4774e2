-- Refresh tokens, stored as SHA-256 digests. Each belongs to a grant family that starts
-- with a password grant or an authorization code's redemption. Using one spends it
-- (used_at) and inserts its successor in one transaction; presenting a spent one again
-- means it leaked, and the whole family is revoked. expires_at is the family's absolute
-- end, carried from token to token; scope is what the resource owner granted, which a
-- refresh may narrow for its access token but never widen.
CREATE TABLE refresh_tokens (
    token_hash  text PRIMARY KEY,
    family_id   uuid NOT NULL,
    client_id   text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope       text[] NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
