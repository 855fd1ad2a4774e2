#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod company;
mod error;
mod hashing;
mod headers;
mod json;
mod limits;
mod opaque;
mod routes;
mod startup;

pub use limits::{FAILED_CREATE_QUOTA, INVALID_TOKEN_QUOTA};
pub use startup::{
    Application, DEFAULT_ADDR, DEFAULT_HASH_QUEUE, DEFAULT_REVOCATION_MAX_STALE,
    INACTIVE_CACHE_CAPACITY, INACTIVE_CACHE_TTL, INTROSPECTION_CACHE_CAPACITY, OpaqueValidation,
    RevocationFeed, Settings, StartupError,
};
pub use tessera_guard::DEFAULT_MAX_STALE as DEFAULT_JWKS_MAX_STALE;
pub use tessera_guard::{DEFAULT_TOKEN_CACHE_CAPACITY, StalePolicy};
