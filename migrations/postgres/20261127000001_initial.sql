-- Tessera schema, PostgreSQL dialect: companies, users, clients and signing keys. The same
-- schema as migrations/sqlite, file for file, in native types: uuid ids, timestamptz times,
-- text[] lists (roles, scopes, grant types), jsonb documents, bytea keys. Secrets are
-- stored only as SHA-256 hex digests or argon2id PHC strings.

CREATE TABLE companies (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    company_id     uuid NOT NULL REFERENCES companies (id) ON DELETE RESTRICT,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    roles          text[] NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX users_company_id ON users (company_id);

CREATE TABLE clients (
    client_id               text PRIMARY KEY,
    name                    text NOT NULL,
    secret_hash             text,
    grant_types             text[] NOT NULL,
    scopes                  text[] NOT NULL,
    redirect_uris           jsonb NOT NULL,
    access_token_format     text NOT NULL CHECK (access_token_format IN ('jwt', 'opaque')),
    access_token_ttl_secs   bigint,
    refresh_token_ttl_secs  bigint,
    created_at              timestamptz NOT NULL
);

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL,
    private_key  bytea NOT NULL,
    public_jwk   jsonb NOT NULL,
    state        text NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at   timestamptz NOT NULL,
    activated_at timestamptz,
    retired_at   timestamptz
);
-- At most one key signs at any time, whichever process created it.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
