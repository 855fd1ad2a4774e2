//! HTTP integration tests of the authorization server: real server on port 0, real HTTP
//! client, a fresh SQLite database per test.

mod helpers;
mod token;
mod wellknown;
