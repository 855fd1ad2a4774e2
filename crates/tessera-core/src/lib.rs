#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod claims;
mod clock;
mod error;
mod issuer;
mod keys;
mod names;
mod oauth;
#[cfg(feature = "password")]
pub mod password;
pub mod pkce;
pub mod profile;
mod scope;
pub mod seal;
pub mod secret;

pub use claims::{AccessTokenClaims, IdTokenClaims};
pub use clock::{Clock, millis_to_utc};
pub use error::{Error, ErrorKind, ParseError};
pub use issuer::parse_issuer;
pub use keys::{Jwk, JwkSet, SigningAlgorithm, SigningKey};
pub use names::{ClientId, CompanySlug, GrantType, Role, TokenFormat, Username};
pub use oauth::{ErrorCode, OAuthError};
pub use scope::{MAX_SCOPE_LIST_BYTES, Scope, ScopeSet};
pub use seal::MasterKey;
