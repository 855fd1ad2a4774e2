//! The client credentials grant (RFC 6749 §4.4).

use chrono::{DateTime, Utc};
use tessera_core::{ErrorCode, ScopeSet};
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
        let (access_token, expires_in) = self
            .access_token(client, Subject::Client, scope, None, now)
            .await?;
        Ok(Issued {
            access_token,
            expires_in,
            scope,
            refresh_token: None,
            id_token: None,
            user: None,
        })
    }
}
