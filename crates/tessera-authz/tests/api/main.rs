//! HTTP integration tests of the authorization server: real server on port 0, real HTTP
//! client, a fresh SQLite database per test.

// Tests fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authorize;
mod browser;
mod hardening;
mod helpers;
mod introspect;
mod keys;
mod oidc;
mod refresh;
mod token;
mod wellknown;
