-- Brute-force limits shared by every instance on the database: wrong passwords per account
-- and per address, failed client authentications per client and address and per address.
-- Each row is one limit's key (namespaced: `pw-account:<name>`, `pw-address:<ip>`,
-- `client:<ip>/<id>`, `client-address:<ip>`) and the time, in Unix milliseconds, at which
-- its allowance is whole again: the state of the generic cell rate algorithm, the same
-- number an in-memory limiter keeps. A row whose `whole_at` is past holds nothing and is
-- purged. SQLite runs on one machine and keeps its limits in memory; the table exists
-- there too so that both schemas stay the same.
CREATE TABLE rate_limits (
    key       TEXT PRIMARY KEY,
    whole_at  INTEGER NOT NULL
);
CREATE INDEX rate_limits_whole_at ON rate_limits (whole_at);
