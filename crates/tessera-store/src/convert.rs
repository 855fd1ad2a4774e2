//! Conversions both adapters share: parsing stored values back into domain types, where a
//! value that does not parse means the database was changed outside Tessera.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};

use tessera_core::ScopeSet;
use uuid::Uuid;

use crate::{Result, StoreError};

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt("id", e))
}

/// Parses a stored name (slug, username, client id, algorithm) into its type.
pub(crate) fn parse_name<T: FromStr>(s: &str, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

pub(crate) fn words<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

pub(crate) fn parse_words<T, S>(items: impl IntoIterator<Item = S>, what: &str) -> Result<Vec<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
    S: AsRef<str>,
{
    items
        .into_iter()
        .map(|w| parse_name(w.as_ref(), what))
        .collect()
}

pub(crate) fn scope_words(scopes: ScopeSet) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

/// Parses space-separated (SQLite) or listed (PostgreSQL) scope names.
pub(crate) fn parse_scopes(s: &str) -> Result<ScopeSet> {
    if s.trim().is_empty() {
        Ok(ScopeSet::EMPTY)
    } else {
        s.parse().map_err(|e| corrupt("scopes", e))
    }
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| corrupt(what, e))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

/// `now` at the precision every backend keeps (PostgreSQL's microseconds), so that what an
/// insert returns equals what a later read finds, on either backend.
pub(crate) fn stored_time(now: DateTime<Utc>) -> DateTime<Utc> {
    now.trunc_subsecs(6)
}
