-- Key rotation: a `next` key is published before it signs and starts signing at
-- `activate_at`; a `retired` key stays published until `remove_at`, when every token it
-- signed has expired, and is then deleted. Every instance reads the same times, so all
-- of them switch keys at the same moment.
ALTER TABLE signing_keys ADD COLUMN activate_at TEXT;
ALTER TABLE signing_keys ADD COLUMN remove_at TEXT;
-- At most one key waits to sign.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
