-- Opaque access tokens: only the SHA-256 digest of each token is stored, and looked up
-- through the primary key. Revocation stamps revoked_at; rows are never reused.
CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    client_id   TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
