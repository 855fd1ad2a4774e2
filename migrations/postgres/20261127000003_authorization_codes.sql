-- Authorization codes (RFC 6749 §4.1 with PKCE): one-time secrets, stored as SHA-256
-- digests. Redemption stamps redeemed_at and the grant family in one conditional UPDATE,
-- so of any number of concurrent redemptions exactly one wins; a replay finds the family
-- and revokes what the first redemption issued. Opaque access tokens record the family
-- they were issued from (NULL for the password and client_credentials grants).
CREATE TABLE authorization_codes (
    code_hash       text PRIMARY KEY,
    client_id       text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri    text NOT NULL,
    scope           text[] NOT NULL,
    code_challenge  text NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    redeemed_at     timestamptz,
    family_id       uuid
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

ALTER TABLE access_tokens ADD COLUMN family_id uuid;
CREATE INDEX access_tokens_family_id ON access_tokens (family_id) WHERE family_id IS NOT NULL;
