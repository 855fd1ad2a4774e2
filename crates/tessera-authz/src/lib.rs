#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod authorize;
mod client_auth;
mod error;
mod feed;
pub mod feed_head;
mod form;
mod grant;
mod introspect;
pub mod keys;
pub mod limits;
mod logout;
mod pages;
mod passwords;
pub mod retention;
mod settings;
mod startup;
mod state;
mod token;
mod userinfo;
mod wellknown;

pub use grant::CODE_TTL_SECS;
pub use grant::{OPAQUE_PREFIX, REFRESH_PREFIX, SUPPORTED_GRANTS, refused_to_public_clients};
pub use settings::{
    DEFAULT_ACCESS_TOKEN_TTL_SECS, DEFAULT_ADDR, DEFAULT_AUDIENCE, DEFAULT_REFRESH_TOKEN_TTL_SECS,
    DEFAULT_REQUEST_TIMEOUT, FEED_READER, FeedReaderSecret, MAX_ACCESS_TOKEN_TTL_SECS,
    MAX_REFRESH_TOKEN_TTL_SECS, Settings,
};
pub use startup::{Application, PURGE_INTERVAL, StartupError};
