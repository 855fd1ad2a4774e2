//! The scope rules: what a client may ask for, what a user may hold.
//!
//! Which role a scope needs is core's rule ([`ScopeSet::permitted_for`]); this module
//! applies it with the client's own limit.

use tessera_core::{ErrorCode, Scope, ScopeSet};
use tessera_store::{Client, User};

use super::GrantError;

/// Why a scope asked for by name is refused to a user without the role it needs.
pub const ADMIN_NEEDS_ROLE: &str = "the admin scope requires the admin role";

/// The scope asked for (default `basic`), refused with `invalid_scope` when unknown,
/// malformed or not allowed for the client. Never widened, never normalised.
pub(super) fn requested(raw: Option<&str>, client: &Client) -> Result<ScopeSet, GrantError> {
    let requested = match raw {
        None => ScopeSet::only(Scope::Basic),
        Some(raw) => parse(raw)?,
    };
    within_client(requested, client)?;
    Ok(requested)
}

/// A scope list as sent, or `invalid_scope` saying what is wrong with it.
pub(super) fn parse(raw: &str) -> Result<ScopeSet, GrantError> {
    raw.parse::<ScopeSet>()
        .map_err(|e| GrantError::new(ErrorCode::InvalidScope, e.to_string()))
}

/// `invalid_scope` naming what `requested` asks beyond the client's scopes.
pub(super) fn within_client(requested: ScopeSet, client: &Client) -> Result<(), GrantError> {
    let refused = requested.difference(client.scopes);
    if !refused.is_empty() {
        return Err(GrantError::new(
            ErrorCode::InvalidScope,
            format!("this client may not request the scope {refused}"),
        ));
    }
    Ok(())
}

/// Whether `user` may be granted everything in `requested`, by name.
pub fn admits(requested: ScopeSet, user: &User) -> bool {
    requested.is_permitted_for(&user.roles)
}

/// `invalid_scope` when `user` may not be granted everything in `requested`.
pub(super) fn within_roles(requested: ScopeSet, user: &User) -> Result<(), GrantError> {
    if admits(requested, user) {
        Ok(())
    } else {
        Err(GrantError::new(ErrorCode::InvalidScope, ADMIN_NEEDS_ROLE))
    }
}

/// What `user` may hold now of `granted`: what their roles still permit, and only what the
/// client may still be granted. A demoted user's refresh loses `admin`.
pub(super) fn current(granted: ScopeSet, user: &User, client: &Client) -> ScopeSet {
    let within_client = granted.difference(granted.difference(client.scopes));
    within_client.permitted_for(&user.roles)
}
