-- Revoked grant families. A family is revoked when a code is replayed or a spent refresh
-- token comes back; recording the family itself (not only its tokens) lets a token that
-- a racing request is about to issue from it be refused, so nothing issued after the
-- revocation is live.
CREATE TABLE revoked_families (
    family_id   uuid PRIMARY KEY,
    revoked_at  timestamptz NOT NULL
);

-- Signed-in browsers at the authorization endpoint. The cookie holds a random secret;
-- only its SHA-256 digest is stored. A session lets the user skip the login page until
-- it expires; it never authorizes an API call.
CREATE TABLE login_sessions (
    session_hash  text PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX login_sessions_expires_at ON login_sessions (expires_at);
