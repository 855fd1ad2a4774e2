#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod company;
mod error;
mod headers;
mod json;
mod opaque;
mod routes;
mod startup;

pub use startup::{
    Application, DEFAULT_ADDR, DEFAULT_REVOCATION_MAX_STALE, INTROSPECTION_CACHE_CAPACITY,
    OpaqueValidation, RevocationFeed, Settings, StartupError,
};
pub use tessera_guard::{DEFAULT_TOKEN_CACHE_CAPACITY, StalePolicy};
