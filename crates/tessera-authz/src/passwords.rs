//! Password checks: argon2id on threads of their own, rate limited and audited.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tessera_core::{Clock, password};
use tessera_store::{AuditKind, AuditLog, NewAuditEvent, Store, StoreError, User};
use tokio::sync::{mpsc, oneshot};

use crate::limits::{RateLimits, Refused};

/// Verifies passwords on a few threads of its own, one verification per thread at a time.
///
/// Each argon2id verification takes tens of milliseconds of CPU and 19 MiB of memory. Run
/// on the async workers, a burst of logins would stall every other request; on the shared
/// blocking pool, each of its many threads would come to hold a 19 MiB buffer in its own
/// allocator arena (a burst of logins left the server at 700 MB). Here a fixed number of
/// threads each keep one buffer and reuse it, so memory stays at `concurrency` × 19 MiB
/// whatever the load, while further logins queue.
#[derive(Debug, Clone)]
pub struct PasswordVerifier {
    jobs: mpsc::Sender<Job>,
}

/// One verification: the candidate, the hash (or none), and where the answer goes.
type Job = (String, Option<String>, oneshot::Sender<bool>);

/// Verifications waiting for a thread before callers wait to queue theirs.
const QUEUE: usize = 1024;

impl PasswordVerifier {
    /// A verifier running `concurrency` verification threads (at least one). They end
    /// when every clone of the verifier is dropped.
    pub fn new(concurrency: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{n}"))
                .spawn(move || verify_jobs(&queue));
            if let Err(err) = spawned {
                // Fewer threads only means fewer verifications at once; with none at all,
                // every verification answers `false` (see `verify`).
                tracing::error!(error = %err, "cannot start a password verification thread");
            }
        }
        PasswordVerifier { jobs }
    }

    /// Whether `candidate` matches `hash`; with no hash (unknown user), verifies against
    /// [`password::DUMMY_HASH`] and answers `false`, so that both take the same time.
    pub async fn verify(&self, candidate: &str, hash: Option<&str>) -> bool {
        let (answer, answered) = oneshot::channel();
        let job = (candidate.to_owned(), hash.map(str::to_owned), answer);
        if self.jobs.send(job).await.is_err() {
            return false;
        }
        answered.await.unwrap_or(false)
    }
}

/// A verification thread: takes jobs until the verifier is gone, computing every one in
/// the same argon2 memory.
fn verify_jobs(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = password::Memory::new();
    loop {
        let job = match queue.lock() {
            Ok(mut queue) => queue.blocking_recv(),
            Err(poisoned) => poisoned.into_inner().blocking_recv(),
        };
        let Some((candidate, hash, answer)) = job else {
            return;
        };
        if answer.is_closed() {
            // The request is gone (its client hung up): nobody waits for this answer.
            continue;
        }
        let known = hash.is_some();
        let phc = hash.as_deref().unwrap_or(password::DUMMY_HASH);
        let matched = password::verify_in(&candidate, phc, &mut memory);
        // The caller may have given up waiting; nothing to tell it then.
        let _ = answer.send(known && matched);
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
    Limited(tessera_web::ratelimit::Limited),
}

/// What a sign-in needs: the verifier, the rate limits, the users, the audit log and the
/// clock. The password grant and the login form share one.
#[derive(Debug, Clone)]
pub struct Passwords {
    /// Runs the argon2id verifications.
    pub verifier: PasswordVerifier,
    /// The brute-force limits, asked before any lookup or hashing.
    pub limits: Arc<RateLimits>,
    /// Where the users are.
    pub store: Arc<dyn Store>,
    /// Where sign-ins are recorded.
    pub audit: AuditLog,
    /// The time.
    pub clock: Clock,
}

impl Passwords {
    /// Checks a password for `username` from `address` on behalf of `client_id`: rate
    /// limited per account and per address, audited either way. Unknown users cost one
    /// argon2 verification too, so timing does not tell them apart.
    pub async fn authenticate(
        &self,
        username: &str,
        candidate: &str,
        address: IpAddr,
        client_id: &str,
    ) -> Result<SignIn, StoreError> {
        if username.is_empty() || candidate.is_empty() || candidate.len() > password::MAX_BYTES {
            return Ok(SignIn::Failed);
        }
        let attempt = match self
            .limits
            .begin_password(username, address, self.clock.now_millis())
            .await
        {
            Ok(attempt) => attempt,
            Err(Refused::Limit(limit, limited)) => {
                tracing::warn!(%address, limit = limit.as_str(), "sign-in refused by a rate limit");
                return Ok(SignIn::Limited(limited));
            }
            // The database that keeps the limits is away: nothing is checked.
            Err(Refused::Store(err)) => return Err(err),
        };
        let credentials = match self.store.find_user_credentials(username).await {
            Ok(credentials) => credentials,
            Err(err) => {
                // Nothing was checked: not a failed guess.
                self.limits.refund(&attempt, self.clock.now_millis()).await;
                return Err(err);
            }
        };
        let matched = self
            .verifier
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
            let event = NewAuditEvent::new(kind, self.clock.now_utc())
                .client_id(client_id)
                .address(address.to_string());
            match &actor {
                Some(name) => event.actor(name.as_str()),
                None => event,
            }
        };
        match credentials {
            Some(c) if matched && !c.user.disabled => {
                self.limits.refund(&attempt, self.clock.now_millis()).await;
                self.audit
                    .record(event(AuditKind::LoginSucceeded).company(c.user.company.to_string()))
                    .await;
                Ok(SignIn::Succeeded(c.user))
            }
            other => {
                let why = match other {
                    Some(c) if c.user.disabled => "user disabled",
                    Some(_) => "wrong password",
                    None => "unknown user",
                };
                self.audit
                    .record(event(AuditKind::LoginFailed).detail(why))
                    .await;
                for limit in attempt.exhausted() {
                    let exhausted =
                        self.limits
                            .exhausted_event(*limit, address, self.clock.now_utc());
                    self.audit
                        .record(match &actor {
                            Some(name) => exhausted.actor(name.as_str()),
                            None => exhausted,
                        })
                        .await;
                }
                Ok(SignIn::Failed)
            }
        }
    }
}
