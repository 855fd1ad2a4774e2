#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod bearer;
mod cache;
mod error;
mod extract;
mod jwks;
mod opaque;
mod revocation;
#[cfg(feature = "test-issuer")]
pub mod testing;
mod validate;

pub use bearer::bearer_token;
pub use cache::TokenCacheStats;
pub use error::{GuardError, Rejection};
pub use extract::{
    Admin, Authenticated, AuthzReport, Basic, DEFAULT_REALM, Guard, ScopeRequirement, Scoped,
    reject,
};
pub use jwks::{DEFAULT_MAX_STALE, JwksCache, JwksConfig, JwksError, JwksSource, JwksStats};
pub use opaque::{Introspection, IntrospectionResponse, OpaqueTokens};
pub use revocation::{
    RevocationConfig, RevocationEntry, RevocationError, RevocationList, RevocationStats,
    StalePolicy,
};
pub use validate::{
    Audience, Claims, DEFAULT_TOKEN_CACHE_CAPACITY, MAX_TOKEN_BYTES, ValidationConfig, Validator,
};
