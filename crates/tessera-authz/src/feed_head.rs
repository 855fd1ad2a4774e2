//! The head of the revocation feed as this instance knows it, for the long-polls of
//! `GET /oauth/revocations`.
//!
//! Every instance serves the one list in the database. To wake its waiting requests when
//! an entry arrives, whoever wrote it, an instance reads the head (`MAX(seq)`, an indexed
//! read) every [`POLL_INTERVAL`], and at once after a write of its own
//! ([`FeedHead::wrote`]). A write through another instance, or the command line, reaches
//! this instance's feed within one interval.

use std::sync::Arc;
use std::time::Duration;

use tessera_store::Store;
use tokio::sync::{Notify, watch};

/// How often the head is read from the database.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What the waiting requests watch.
#[derive(Clone, Copy, Debug, Default)]
struct Head {
    /// The head, as last read.
    seq: i64,
    /// The server is stopping: waiting requests answer now.
    closing: bool,
}

/// The feed's head, as last read, and a way to ask for a fresh read.
#[derive(Debug)]
pub struct FeedHead {
    head: watch::Sender<Head>,
    wake: Notify,
}

impl Default for FeedHead {
    fn default() -> Self {
        FeedHead {
            head: watch::Sender::new(Head::default()),
            wake: Notify::new(),
        }
    }
}

impl FeedHead {
    /// This instance wrote an entry: read the head now, not at the next interval.
    pub fn wrote(&self) {
        self.wake.notify_one();
    }

    /// The server is stopping: every request waiting for the head answers now (with what
    /// it has), so that a graceful stop does not wait out the long-polls.
    pub fn close(&self) {
        self.head.send_modify(|head| head.closing = true);
    }

    /// Waits until the head is above `seen`, the server stops or `limit` has passed;
    /// whether the head moved.
    pub async fn wait_past(&self, seen: i64, limit: Duration) -> bool {
        let mut head = self.head.subscribe();
        let moved = head.wait_for(|head| head.seq > seen || head.closing);
        match tokio::time::timeout(limit, moved).await {
            Ok(Ok(head)) => head.seq > seen,
            _ => false,
        }
    }

    /// Reads the head every [`POLL_INTERVAL`] and whenever [`wrote`](Self::wrote) asks,
    /// for as long as it is polled. A failed read keeps the last head (the requests
    /// waiting on it answer at their time limit) and is retried at the next interval.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn Store>) -> std::convert::Infallible {
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = self.wake.notified() => {}
            }
            match store.revocation_head().await {
                Ok(read) => {
                    failing = false;
                    self.head.send_if_modified(|head| {
                        let moved = head.seq != read;
                        head.seq = read;
                        moved
                    });
                }
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(
                        error = %crate::error::ErrorChain(&err),
                        "reading the revocation feed's head failed"
                    );
                }
                Err(_) => {}
            }
        }
    }
}
