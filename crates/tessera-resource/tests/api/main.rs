//! HTTP tests of the resource server: the real server on port 0, a fresh SQLite database
//! per test, tokens from a test issuer on loopback (real JWKS over HTTP).

// Tests fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod attacks;
mod hardening;
mod helpers;
mod last_admin;
mod parity;
mod revocation;
mod users;
