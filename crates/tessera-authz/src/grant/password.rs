//! The resource owner password credentials grant (RFC 6749 §4.3).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tessera_core::ScopeSet;
use tessera_store::Client;

use super::issue::Family;
use super::{GrantEngine, GrantError, Issued, scope};
use crate::passwords::SignIn;

impl GrantEngine {
    /// Checks the password (rate limited and audited by the password checks), then the
    /// user's roles against `requested`, and issues the tokens.
    pub(super) async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        candidate: &str,
        requested: ScopeSet,
        now: DateTime<Utc>,
        address: IpAddr,
    ) -> Result<Issued, GrantError> {
        let signed_in = self
            .passwords
            .authenticate(username, candidate, address, client.client_id.as_str())
            .await?;
        let user = match signed_in {
            SignIn::Succeeded(user) => user,
            SignIn::Failed => {
                return Err(GrantError::invalid_grant("invalid username or password"));
            }
            SignIn::Limited(limited) => return Err(GrantError::RateLimited(limited)),
        };
        scope::within_roles(requested, &user)?;
        self.issue_for_user(client, user, requested, Family::New, now)
            .await
    }
}
