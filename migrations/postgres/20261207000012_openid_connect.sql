-- OpenID Connect (Core 1.0, RP-Initiated Logout 1.0).
--
-- Users gain the optional standard claims of the `profile` and `email` scopes.
ALTER TABLE users ADD COLUMN name text;
ALTER TABLE users ADD COLUMN email text;

-- Where a client may send the browser after a logout, registered exactly like its
-- redirect URIs.
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris jsonb NOT NULL DEFAULT '[]';

-- A code carries the relying party's `nonce` and when the user entered their password
-- (`auth_time`) to the ID token its redemption issues; a refresh token carries
-- `auth_time` on, so that every ID token of a grant names the same sign-in.
ALTER TABLE authorization_codes ADD COLUMN nonce text;
ALTER TABLE authorization_codes ADD COLUMN auth_time timestamptz;
ALTER TABLE refresh_tokens ADD COLUMN auth_time timestamptz;

-- Remembered consent: the scopes a user allowed a client, so that a later request for
-- no more than these (even `prompt=none`) skips the consent page. Signing out
-- everywhere forgets it; deleting the user or the client takes it along.
CREATE TABLE consents (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope       text[] NOT NULL,
    granted_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);
