use std::sync::Arc;

use tessera_core::password;
use tessera_store::{StoreError, User};

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

/// The user whose password this is, if they may sign in. Unknown users cost one argon2
/// verification too, so timing does not tell them apart.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    candidate: &str,
) -> Result<Option<User>, StoreError> {
    if username.is_empty() || candidate.is_empty() || candidate.len() > password::MAX_BYTES {
        return Ok(None);
    }
    let credentials = state.store.find_user_credentials(username).await?;
    let matched = state
        .passwords
        .verify(
            candidate,
            credentials.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await;
    Ok(match credentials {
        Some(c) if matched && !c.user.disabled => Some(c.user),
        _ => None,
    })
}
