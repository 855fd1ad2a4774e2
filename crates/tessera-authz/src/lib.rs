#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod client_auth;
mod error;
mod form;
mod introspect;
mod pages;
mod passwords;
mod settings;
mod startup;
mod state;
mod token;
mod wellknown;

pub use settings::{DEFAULT_ACCESS_TOKEN_TTL_SECS, DEFAULT_ADDR, DEFAULT_AUDIENCE, Settings};
pub use startup::{Application, StartupError};
pub use token::{OPAQUE_PREFIX, SUPPORTED_GRANTS};
