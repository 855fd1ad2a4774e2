//! The client credentials grant (RFC 6749 §4.4).

use chrono::{DateTime, Utc};
use tessera_core::{ErrorCode, Scope, ScopeSet};
use tessera_store::Client;

use super::issue::Subject;
use super::{GrantEngine, GrantError, Issued};

impl GrantEngine {
    /// Issues the client a token of its own, with no refresh token.
    pub(super) async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: ScopeSet,
        now: DateTime<Utc>,
    ) -> Result<Issued, GrantError> {
        // RFC 6749 §4.4: only confidential clients act on their own behalf.
        if client.is_public() {
            return Err(GrantError::new(
                ErrorCode::UnauthorizedClient,
                "public clients may not use the client_credentials grant",
            ));
        }
        // A client's own token speaks for no user: there is no one to sign in or describe.
        if [Scope::OpenId, Scope::Profile, Scope::Email]
            .into_iter()
            .any(|user_scope| scope.contains(user_scope))
        {
            return Err(GrantError::new(
                ErrorCode::InvalidScope,
                "openid, profile and email describe a user; a client's own token has none",
            ));
        }
        let (access_token, expires_in, token_id) = self
            .access_token(client, Subject::Client, scope, None, now)
            .await?;
        Ok(Issued {
            access_token,
            token_id,
            expires_in,
            scope,
            refresh_token: None,
            id_token: None,
            user: None,
        })
    }
}
