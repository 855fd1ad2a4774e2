//! Tests of the guard as a library: a real actix-web app using its extractors, keys from a
//! real HTTP JWKS on loopback.

// Tests fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod jwks;
mod revocation;
