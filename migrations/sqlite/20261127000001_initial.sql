-- Tessera schema, SQLite dialect: companies, users, clients and signing keys. Token and
-- authorization-code tables arrive with the features that use them, in migrations of
-- their own. Every schema change lands in every dialect under
-- migrations/, with the same file name.
--
-- Times are RFC 3339 text in UTC; ids are UUIDs in hyphenated text; lists (roles, scopes,
-- grant types) are space-separated words; secrets are stored only as SHA-256 hex digests
-- or argon2id PHC strings.

CREATE TABLE companies (
    id          TEXT PRIMARY KEY NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    company_id     TEXT NOT NULL REFERENCES companies (id) ON DELETE RESTRICT,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    roles          TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX users_company_id ON users (company_id);

CREATE TABLE clients (
    client_id               TEXT PRIMARY KEY NOT NULL,
    name                    TEXT NOT NULL,
    secret_hash             TEXT,
    grant_types             TEXT NOT NULL,
    scopes                  TEXT NOT NULL,
    redirect_uris           TEXT NOT NULL,
    access_token_format     TEXT NOT NULL CHECK (access_token_format IN ('jwt', 'opaque')),
    access_token_ttl_secs   INTEGER,
    refresh_token_ttl_secs  INTEGER,
    created_at              TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at   TEXT NOT NULL,
    activated_at TEXT,
    retired_at   TEXT
);
-- At most one key signs at any time, whichever process created it.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
