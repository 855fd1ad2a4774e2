-- Expired rows are purged periodically (Store::purge_expired); this index keeps that cheap
-- for refresh tokens (access_tokens and authorization_codes have theirs already).
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
