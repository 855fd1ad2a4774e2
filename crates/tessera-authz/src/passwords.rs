use std::sync::Arc;

use tessera_core::password;
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
    /// A hash of a random password, verified when the user does not exist, so that an
    /// unknown username costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordVerifier {
    /// A verifier running at most `concurrency` verifications at once.
    pub fn new(concurrency: usize) -> Result<Self, tessera_core::Error> {
        let dummy_hash = password::hash(&tessera_core::secret::generate()?)?;
        Ok(PasswordVerifier {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Whether `candidate` matches `hash`; with no hash (unknown user), verifies against
    /// the dummy hash and answers `false`.
    pub async fn verify(&self, candidate: &str, hash: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash: Arc<str> = hash
            .map(Arc::from)
            .unwrap_or_else(|| self.dummy_hash.clone());
        let candidate = candidate.to_owned();
        let matched = tokio::task::spawn_blocking(move || password::verify(&candidate, &hash))
            .await
            .unwrap_or(false);
        known && matched
    }
}
