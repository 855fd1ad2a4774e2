use std::net::IpAddr;
use std::sync::Arc;

use tessera_core::password;
use tessera_store::{AuditKind, NewAuditEvent, StoreError, User};

use crate::state::AppState;
use tokio::sync::Semaphore;

/// Verifies passwords on the blocking thread pool, a bounded number at a time.
///
/// Each argon2id verification takes tens of milliseconds of CPU and 19 MiB of memory. Run
/// on the async workers, a burst of logins would stall every other request; unbounded on
/// the blocking pool, it would exhaust memory. The semaphore keeps the rest of the server
/// responsive while logins queue.
#[derive(Debug, Clone)]
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
}

impl PasswordVerifier {
    /// A verifier running at most `concurrency` verifications at once.
    pub fn new(concurrency: usize) -> Self {
        PasswordVerifier {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Whether `candidate` matches `hash`; with no hash (unknown user), verifies against
    /// [`password::DUMMY_HASH`] and answers `false`, so that both take the same time.
    pub async fn verify(&self, candidate: &str, hash: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or(password::DUMMY_HASH).to_owned();
        let candidate = candidate.to_owned();
        let matched = tokio::task::spawn_blocking(move || password::verify(&candidate, &hash))
            .await
            .unwrap_or(false);
        known && matched
    }
}

/// How a sign-in attempt ended.
#[derive(Debug)]
pub enum SignIn {
    /// The password matched an enabled user.
    Succeeded(User),
    /// Unknown user, wrong password or disabled user: the caller says no more than that.
    Failed,
    /// Too many recent failures for this account or address: refused before checking.
    Limited(tessera_core::ratelimit::Limited),
}

/// Checks a password for `username` from `address` on behalf of `client_id`: rate
/// limited per account and per address, audited either way. Unknown users cost one
/// argon2 verification too, so timing does not tell them apart.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    candidate: &str,
    address: IpAddr,
    client_id: &str,
) -> Result<SignIn, StoreError> {
    if username.is_empty() || candidate.is_empty() || candidate.len() > password::MAX_BYTES {
        return Ok(SignIn::Failed);
    }
    let attempt = match state
        .limits
        .begin_password(username, address, state.now_ms())
    {
        Ok(attempt) => attempt,
        Err((limit, limited)) => {
            tracing::warn!(%address, limit = limit.as_str(), "sign-in refused by a rate limit");
            return Ok(SignIn::Limited(limited));
        }
    };
    let credentials = match state.store.find_user_credentials(username).await {
        Ok(credentials) => credentials,
        Err(err) => {
            // Nothing was checked: not a failed guess.
            state.limits.refund(&attempt, state.now_ms());
            return Err(err);
        }
    };
    let matched = state
        .passwords
        .verify(
            candidate,
            credentials.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await;
    // Only the name of an existing account is recorded: an unknown "username" is often a
    // password typed into the wrong field.
    let actor = credentials
        .as_ref()
        .map(|c| c.user.username.as_str().to_owned());
    let event = |kind| {
        let event = NewAuditEvent::new(kind, state.now())
            .client_id(client_id)
            .address(address.to_string());
        match &actor {
            Some(name) => event.actor(name.as_str()),
            None => event,
        }
    };
    match credentials {
        Some(c) if matched && !c.user.disabled => {
            state.limits.refund(&attempt, state.now_ms());
            state
                .audit(event(AuditKind::LoginSucceeded).company(c.user.company.to_string()))
                .await;
            Ok(SignIn::Succeeded(c.user))
        }
        other => {
            let why = match other {
                Some(c) if c.user.disabled => "user disabled",
                Some(_) => "wrong password",
                None => "unknown user",
            };
            state.audit(event(AuditKind::LoginFailed).detail(why)).await;
            for limit in attempt.exhausted() {
                let exhausted = crate::limits::exhausted_event(state, *limit, address);
                state
                    .audit(match &actor {
                        Some(name) => exhausted.actor(name.as_str()),
                        None => exhausted,
                    })
                    .await;
            }
            Ok(SignIn::Failed)
        }
    }
}
