-- Opaque access tokens: only the SHA-256 digest of each token is stored, and looked up
-- through the primary key. Revocation stamps revoked_at; rows are never reused.
CREATE TABLE access_tokens (
    token_hash  text PRIMARY KEY,
    client_id   text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    subject     text NOT NULL,
    scope       text[] NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
