use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ParseError, Role};

/// A scope Tessera can grant.
///
/// Scope tokens are compared byte for byte (RFC 6749 §3.3 makes them case-sensitive):
/// `Admin`, `admin\t` and `аdmin` (with a Cyrillic `а`) are not `admin`, they are unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// See your own profile (`GET /me`). The default when a request names no scope.
    Basic,
    /// Manage the users of your own company.
    Admin,
    /// OpenID Connect sign-in: an ID token, and the UserInfo endpoint.
    OpenId,
    /// The `name`, `preferred_username` and `updated_at` claims (OpenID Connect).
    Profile,
    /// The `email` and `email_verified` claims (OpenID Connect).
    Email,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 5] = [
        Scope::Basic,
        Scope::Admin,
        Scope::OpenId,
        Scope::Profile,
        Scope::Email,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Basic => "basic",
            Scope::Admin => "admin",
            Scope::OpenId => "openid",
            Scope::Profile => "profile",
            Scope::Email => "email",
        }
    }

    /// The role a user must hold to be granted this scope, if any: `admin` needs the admin
    /// role. The one place this rule is written; the authorization server applies it when it
    /// issues, the resource server when it reads an opaque token's user as they are now.
    pub fn required_role(self) -> Option<Role> {
        match self {
            Scope::Basic | Scope::OpenId | Scope::Profile | Scope::Email => None,
            Scope::Admin => Some(Role::Admin),
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Basic => 1,
            Scope::Admin => 2,
            Scope::OpenId => 4,
            Scope::Profile => 8,
            Scope::Email => 16,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "basic" => Ok(Scope::Basic),
            "admin" => Ok(Scope::Admin),
            "openid" => Ok(Scope::OpenId),
            "profile" => Ok(Scope::Profile),
            "email" => Ok(Scope::Email),
            _ => Err(ParseError::new("scope", format!("unknown scope {:?}", s))),
        }
    }
}

/// A set of scopes, as carried by the `scope` parameter and claim (space-separated).
///
/// Parsing is strict (RFC 6749 §3.3): tokens are separated by exactly one space, with no
/// leading or trailing space, and every token must be a known [`Scope`]. Repeating a scope
/// is harmless. The [`Display`](fmt::Display) form is canonical (`basic admin`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// The empty set.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// A set of one scope.
    pub fn only(scope: Scope) -> Self {
        ScopeSet(scope.bit())
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope` to the set.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether every scope of `self` is also in `other`.
    pub fn is_subset(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes of `self` that are not in `other`.
    pub fn difference(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & !other.0)
    }

    /// The scopes of `self` that a holder of `roles` may be granted (see
    /// [`Scope::required_role`]): `admin` is dropped unless `roles` has the admin role.
    pub fn permitted_for(self, roles: &[Role]) -> ScopeSet {
        self.iter()
            .filter(|scope| {
                scope
                    .required_role()
                    .is_none_or(|role| roles.contains(&role))
            })
            .collect()
    }

    /// Whether a holder of `roles` may be granted every scope of `self`.
    pub fn is_permitted_for(self, roles: &[Role]) -> bool {
        self.permitted_for(roles) == self
    }

    /// The scopes in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

/// The longest scope list accepted: room for every scope (32 bytes) several times over.
pub const MAX_SCOPE_LIST_BYTES: usize = 128;

impl FromStr for ScopeSet {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseError::new("scope", "the scope list is empty"));
        }
        // Five scopes exist; a list longer than this is padding, refused before any work.
        if s.len() > MAX_SCOPE_LIST_BYTES {
            return Err(ParseError::new(
                "scope",
                format!("the scope list is longer than {MAX_SCOPE_LIST_BYTES} bytes"),
            ));
        }
        let mut set = ScopeSet::EMPTY;
        for token in s.split(' ') {
            if token.is_empty() {
                return Err(ParseError::new(
                    "scope",
                    "scopes must be separated by exactly one space",
                ));
            }
            set.insert(token.parse()?);
        }
        Ok(set)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({self})")
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "tests/scope.rs"]
mod tests;
