//! The authorization code grant (RFC 6749 §4.1.3 with RFC 7636 §4.6): redeeming a code.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tessera_core::{pkce, secret};
use tessera_store::{Client, Redemption};
use uuid::Uuid;

use super::issue::{Family, SignIn};
use super::{GrantEngine, GrantError, Issued, scope};

impl GrantEngine {
    /// Spends the code in the store first (one atomic statement, so of concurrent
    /// redemptions exactly one wins), then checks it; a code that comes back revokes the
    /// family it started.
    pub(super) async fn code_grant(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now: DateTime<Utc>,
        address: IpAddr,
    ) -> Result<Issued, GrantError> {
        let invalid = GrantError::invalid_grant;
        let family = Uuid::new_v4();
        let redeemed = match self
            .store
            .redeem_authorization_code(&secret::digest(code), family, now)
            .await?
        {
            Redemption::First(redeemed) => redeemed,
            Redemption::Replay { family_id } => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                // The family may be another client's: its owner is not known here.
                let revoked = self.revoke_family(None, family_id, now).await?;
                tracing::warn!(
                    client_id = %client.client_id,
                    %family_id,
                    revoked,
                    "authorization code replayed; its grant is revoked"
                );
                self.reuse_detected(
                    client,
                    family_id,
                    address,
                    format!("authorization code replayed; family revoked, {revoked} tokens"),
                )
                .await;
                return Err(invalid("the authorization code was already used"));
            }
            Redemption::Unknown => return Err(invalid("the authorization code is not valid")),
        };
        if redeemed.client_id != client.client_id {
            return Err(invalid(
                "the authorization code was issued to another client",
            ));
        }
        if now >= redeemed.expires_at {
            return Err(invalid("the authorization code has expired"));
        }
        if redeemed.redirect_uri != redirect_uri {
            return Err(invalid(
                "redirect_uri differs from the one in the authorization request",
            ));
        }
        if !pkce::verifier_matches(verifier, &redeemed.code_challenge) {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        let user = self.active_user(redeemed.user_id).await?;
        let scope = scope::current(redeemed.scope, &user, client);
        if scope.is_empty() {
            return Err(invalid(
                "the user may no longer be granted the consented scope",
            ));
        }
        self.issue_for_user(
            client,
            user,
            scope,
            Family::Existing {
                id: redeemed.family_id,
                granted: redeemed.scope,
                sign_in: redeemed.auth_time.map(|auth_time| SignIn {
                    auth_time,
                    nonce: redeemed.nonce,
                }),
            },
            now,
        )
        .await
    }
}
