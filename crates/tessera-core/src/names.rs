//! Parsed newtypes for names that arrive from requests and command lines.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ParseError;

/// Declares a string newtype whose only constructor is a validating `FromStr`.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(s).map_err(|m| ParseError::new($what, m))?;
                Ok($name(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn check_chars(s: &str, max: usize, allowed: fn(u8) -> bool, spelled: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > max {
        return Err(format!("must be 1 to {max} characters long"));
    }
    if !s.bytes().all(allowed) {
        return Err(format!("may contain only {spelled}"));
    }
    Ok(())
}

name_type!(
    /// A login name: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit.
    ///
    /// Only lower case is accepted, so two accounts can never differ by case alone.
    Username,
    "username",
    |s| {
        check_chars(
            s,
            64,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'),
            "lower-case letters a-z, digits, '.', '_' and '-'",
        )?;
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("must start with a letter or a digit".into());
        }
        Ok(())
    }
);

name_type!(
    /// A company's URL slug, e.g. `acme`: 1 to 63 of `a-z`, `0-9` and `-`, with no leading,
    /// trailing or doubled `-`.
    CompanySlug,
    "company slug",
    |s| {
        check_chars(
            s,
            63,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
            "lower-case letters a-z, digits and '-'",
        )?;
        if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
            return Err("may not start or end with '-' or contain '--'".into());
        }
        Ok(())
    }
);

name_type!(
    /// A client identifier: 1 to 128 of `A-Z`, `a-z`, `0-9`, `.`, `_`, `-`.
    ///
    /// RFC 6749 allows any printable ASCII; Tessera is stricter so that identifiers are
    /// safe in URLs, logs and the Basic authentication header without escaping.
    ClientId,
    "client_id",
    |s| check_chars(
        s,
        128,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'),
        "letters, digits, '.', '_' and '-'",
    )
);

/// A role a user holds within their company.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May be granted the `admin` scope: manages the users of their own company.
    Admin,
    /// A plain user.
    User,
}

/// An OAuth grant type (RFC 6749 §4), as named in the `grant_type` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `password` (RFC 6749 §4.3): for first-party clients only.
    Password,
    /// `client_credentials` (RFC 6749 §4.4): confidential clients acting for themselves.
    ClientCredentials,
    /// `authorization_code` (RFC 6749 §4.1 with RFC 7636 PKCE).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
}

/// The format of the access tokens a client receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// A signed RFC 9068 JWT carrying every claim an API decides on.
    Jwt,
    /// A random string whose meaning lives only in the token store.
    Opaque,
}

/// Implements `as_str`, `Display` and `FromStr` for a field-less enum from one table.
macro_rules! wire_enum {
    ($ty:ty, $what:literal, { $($variant:path => $wire:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $wire),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($variant),)+
                    _ => Err(ParseError::new(
                        $what,
                        format!("{s:?} is not one of {}", [$($wire),+].join(", ")),
                    )),
                }
            }
        }
    };
}

wire_enum!(Role, "role", { Role::Admin => "admin", Role::User => "user" });
wire_enum!(GrantType, "grant type", {
    GrantType::Password => "password",
    GrantType::ClientCredentials => "client_credentials",
    GrantType::AuthorizationCode => "authorization_code",
    GrantType::RefreshToken => "refresh_token",
});
wire_enum!(TokenFormat, "token format", { TokenFormat::Jwt => "jwt", TokenFormat::Opaque => "opaque" });

#[cfg(test)]
#[path = "tests/names.rs"]
mod tests;
