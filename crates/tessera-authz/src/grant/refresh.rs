//! The refresh token grant (RFC 6749 §6): rotation, and reuse detection (RFC 9700
//! §4.14.2).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tessera_core::{ErrorCode, secret};
use tessera_store::{AuditKind, Client, NewAuditEvent, Rotation};
use uuid::Uuid;

use super::issue::{REFRESH_PREFIX, SignIn, Subject, new_secret};
use super::{GrantEngine, GrantError, Issued, scope};

impl GrantEngine {
    /// Exchanges a refresh token for a new access token and a new refresh token.
    pub(super) async fn refresh_grant(
        &self,
        client: &Client,
        presented: &str,
        requested: Option<&str>,
        now: DateTime<Utc>,
        address: IpAddr,
    ) -> Result<Issued, GrantError> {
        let invalid = GrantError::invalid_grant;
        let digest = secret::digest(presented);

        // Everything that can refuse the request is checked before the token is spent, so
        // a refused refresh leaves the client its token.
        let Some(found) = self.store.find_refresh_token(&digest).await? else {
            return Err(invalid("the refresh token is not valid"));
        };
        if found.client_id != client.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        if now >= found.expires_at {
            return Err(invalid("the refresh token has expired"));
        }
        // Spent or revoked already: answered without making an access token first. The
        // rotation below checks again, atomically, for requests that race this one.
        if found.revoked_at.is_some() {
            return Err(invalid("the refresh token was revoked"));
        }
        if found.used_at.is_some() {
            return Err(self.reused(client, found.family_id, now, address).await);
        }
        let user = match self.store.find_user_by_id(found.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => {
                self.revoke_family(Some(client), found.family_id, now)
                    .await?;
                return Err(invalid("the user may no longer obtain tokens"));
            }
        };
        // Everything of the user or the client was revoked after this token was made: a
        // rotation that raced the revocation may have stored it unrevoked.
        let cutoff = user.tokens_revoked_at.max(client.tokens_revoked_at);
        if cutoff.is_some_and(|cutoff| found.created_at <= cutoff) {
            self.revoke_family(Some(client), found.family_id, now)
                .await?;
            return Err(invalid("the refresh token was revoked"));
        }
        let scope = match requested {
            // RFC 6749 §6: a refresh may narrow the scope, never widen it.
            Some(raw) => {
                let requested = scope::parse(raw)?;
                let widened = requested.difference(found.scope);
                if !widened.is_empty() {
                    return Err(GrantError::new(
                        ErrorCode::InvalidScope,
                        format!("the scope {widened} was not granted; a refresh cannot widen it"),
                    ));
                }
                scope::within_client(requested, client)?;
                scope::within_roles(requested, &user)?;
                requested
            }
            None => scope::current(found.scope, &user, client),
        };
        if scope.is_empty() {
            return Err(invalid(
                "the user may no longer be granted any of the scopes",
            ));
        }

        // The access token exists before the old refresh token is spent: a failure while
        // making it (a database outage, say) leaves the client its refresh token to retry
        // with, where failing after the rotation would make the retry look like reuse. An
        // opaque token of a rotation that then loses is revoked with its family, or never
        // delivered.
        let (access_token, expires_in, token_id) = self
            .access_token(
                client,
                Subject::User(&user),
                scope,
                Some(found.family_id),
                now,
            )
            .await?;
        // Core §12.2: the new ID token names the same sign-in, without a nonce. Made before
        // the rotation too, for the same reason.
        let id_token = match found.auth_time {
            Some(auth_time) => self.id_token(
                client,
                &user,
                scope,
                found.family_id,
                SignIn {
                    auth_time,
                    nonce: None,
                },
                &access_token,
                now,
            )?,
            None => None,
        };
        let successor = new_secret(REFRESH_PREFIX)?;
        match self
            .store
            .rotate_refresh_token(&digest, &secret::digest(&successor), now)
            .await?
        {
            Rotation::Rotated(_) => Ok(Issued {
                access_token,
                token_id,
                expires_in,
                scope,
                refresh_token: Some(successor),
                id_token,
                user: Some(user),
            }),
            Rotation::Reused { family_id } => {
                Err(self.reused(client, family_id, now, address).await)
            }
            Rotation::Revoked => Err(invalid("the refresh token was revoked")),
            Rotation::Unknown => Err(invalid("the refresh token is not valid")),
        }
    }

    /// A spent refresh token came back: it leaked, or the client raced itself. Either way
    /// the family can no longer be trusted (RFC 9700 §4.14.2): it is revoked, and the
    /// request gets `invalid_grant` (or the store's error, when the revocation fails).
    async fn reused(
        &self,
        client: &Client,
        family_id: Uuid,
        now: DateTime<Utc>,
        address: IpAddr,
    ) -> GrantError {
        match self.revoke_family(Some(client), family_id, now).await {
            Ok(revoked) => {
                tracing::warn!(
                    client_id = %client.client_id,
                    %family_id,
                    revoked,
                    "refresh token reused; its family is revoked"
                );
                self.reuse_detected(
                    client,
                    family_id,
                    address,
                    format!("family revoked, {revoked} tokens"),
                )
                .await;
                GrantError::invalid_grant("the refresh token was already used")
            }
            Err(err) => err.into(),
        }
    }

    /// Audits a one-time secret (refresh token or authorization code) that came back.
    pub(super) async fn reuse_detected(
        &self,
        client: &Client,
        family_id: Uuid,
        address: IpAddr,
        detail: String,
    ) {
        self.audit(
            NewAuditEvent::new(AuditKind::RefreshReuse, self.clock.now_utc())
                .client_id(client.client_id.as_str())
                .address(address.to_string())
                .target(format!("family {family_id}"))
                .detail(detail),
        )
        .await;
    }
}
