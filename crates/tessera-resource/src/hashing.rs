//! Password hashing on a bounded pool: a few threads of its own and a short queue, so that
//! a burst of user creations or password changes takes a bounded amount of memory and CPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tessera_core::password;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// Hashes waiting for a thread, by default, beyond which a request is refused with `503`.
pub const DEFAULT_HASH_QUEUE: usize = 16;

/// One hash: the password, and where its PHC string goes.
type Job = (String, oneshot::Sender<Result<String, tessera_core::Error>>);

/// Hashes passwords (argon2id: tens of milliseconds of CPU and 19 MiB each) on `threads`
/// threads, one hash per thread at a time, with at most `queue` more waiting. A hash that
/// finds the queue full is refused at once ([`ApiError::busy`]: `503` with
/// `Retry-After`), so memory stays at `threads` × 19 MiB whatever the load.
#[derive(Debug)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// What the pool did, for metrics and tests.
#[derive(Debug, Default)]
struct Counts {
    /// Hashes running now.
    running: AtomicU64,
    /// The most that ever ran at once.
    peak: AtomicU64,
    /// Hashes refused because the queue was full.
    refused: AtomicU64,
}

/// A snapshot of a [`Hasher`]'s counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HasherStats {
    /// Hashes running now.
    pub running: u64,
    /// The most that ever ran at once: never more than the threads.
    pub peak: u64,
    /// Hashes refused with `503` because the queue was full.
    pub refused: u64,
}

impl Hasher {
    /// A pool of `threads` hashing threads (at least one) and a queue of `queue` (at least
    /// one). The threads end when the hasher is dropped.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (jobs, receiver) = mpsc::channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let counts = Arc::new(Counts::default());
        for n in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let counts = Arc::clone(&counts);
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-hash-{n}"))
                .spawn(move || hash_jobs(&receiver, &counts));
            if let Err(err) = spawned {
                // Fewer threads only means fewer hashes at once; with none at all, every
                // hash waits until the queue refuses it.
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        Hasher { jobs, counts }
    }

    /// The argon2id PHC string of `password`, or `503` when the queue is full.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let (answer, answered) = oneshot::channel();
        match self.jobs.try_send((password, answer)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("password hashing queue full; request refused");
                return Err(ApiError::busy(
                    "too many passwords are being hashed; retry later",
                ));
            }
            Err(TrySendError::Closed(_)) => {
                return Err(ApiError::busy(
                    "password hashing is unavailable; retry later",
                ));
            }
        }
        match answered.await {
            Ok(Ok(hash)) => Ok(hash),
            Ok(Err(err)) => Err(ApiError::internal("hashing a password failed", &err)),
            Err(err) => Err(ApiError::internal("the hashing thread failed", &err)),
        }
    }

    /// The pool's counts.
    pub fn stats(&self) -> HasherStats {
        HasherStats {
            running: self.counts.running.load(Ordering::Relaxed),
            peak: self.counts.peak.load(Ordering::Relaxed),
            refused: self.counts.refused.load(Ordering::Relaxed),
        }
    }
}

/// A hashing thread: takes jobs until the hasher is gone.
fn hash_jobs(receiver: &Mutex<mpsc::Receiver<Job>>, counts: &Counts) {
    loop {
        let job = match receiver.lock() {
            Ok(mut receiver) => receiver.blocking_recv(),
            Err(poisoned) => poisoned.into_inner().blocking_recv(),
        };
        let Some((password, answer)) = job else {
            return;
        };
        if answer.is_closed() {
            // The request is gone (its client hung up): nobody waits for this hash.
            continue;
        }
        let running = counts.running.fetch_add(1, Ordering::AcqRel) + 1;
        counts.peak.fetch_max(running, Ordering::AcqRel);
        let hashed = password::hash(&password);
        counts.running.fetch_sub(1, Ordering::AcqRel);
        // The caller may have given up waiting; nothing to tell it then.
        let _ = answer.send(hashed);
    }
}
