//! Clients from memory. Every token, introspection and revocation request authenticates a
//! client, and clients change rarely: each store keeps the clients it has read, so that a
//! client authentication costs no database round trip.
//!
//! The cache stays true in two ways. A change made through this store (registering,
//! deleting, rotating a secret, revoking a client's tokens) empties it at once, after the
//! change commits. A change made anywhere else (another server on the same database, the
//! `tessera client` commands) is seen through `client_generation`, a counter that a trigger
//! on `clients` raises with every change in the same transaction: before answering from
//! memory, the store reads the counter again whenever [`CHECK_EVERY`] has passed since its
//! last read, and empties the cache when the counter moved. A change committed elsewhere
//! therefore reaches this store's answers within [`CHECK_EVERY`] plus one read of the
//! counter. An idle store reads the counter with the first lookup after the pause, so it
//! never answers from an older state than that.
//!
//! A client read from the database races with a change: the read may return the old row
//! just before the cache is emptied. Each emptying starts a new epoch, and a client read
//! during an older epoch is not kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Result;
use crate::model::Client;

/// How long the cache answers without reading the change counter again.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The most clients kept; a cache this full is emptied and fills again (a deployment has
/// tens of clients, not thousands: only a mistake or an attack gets here, and unknown
/// client ids are never kept).
const MAX_CLIENTS: usize = 10_000;

/// The clients a store has read, kept true as the module says.
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    state: Mutex<State>,
    /// Taken by the one lookup that reads the counter; the others wait for its answer
    /// rather than read it too.
    checking: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<String, Client>,
    /// Raised by every emptying.
    epoch: u64,
    /// The counter as last read, if it has been.
    generation: Option<i64>,
    /// Until when the last read of the counter holds.
    fresh_until: Option<Instant>,
}

impl ClientCache {
    /// Makes sure the cache reflects every change committed before `CHECK_EVERY` ago,
    /// reading the counter with `generation` when the last read is older than that.
    pub async fn check<F, Fut>(&self, generation: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64>>,
    {
        if self.is_fresh() {
            return Ok(());
        }
        let _checking = self.checking.lock().await;
        if self.is_fresh() {
            return Ok(());
        }
        // The read holds from when it was sent: a change it does not see committed after.
        let sent = Instant::now();
        let now = generation().await?;
        let mut state = self.lock();
        if state.generation != Some(now) {
            state.empty();
            state.generation = Some(now);
        }
        state.fresh_until = sent.checked_add(CHECK_EVERY);
        Ok(())
    }

    /// The client `client_id` if kept, else the epoch to [`keep`](Self::keep) it under
    /// once read from the database.
    pub fn get(&self, client_id: &str) -> std::result::Result<Client, u64> {
        let state = self.lock();
        state.clients.get(client_id).cloned().ok_or(state.epoch)
    }

    /// Keeps `client`, read from the database during `epoch`, unless the cache was emptied
    /// since (the row may predate the change that emptied it).
    pub fn keep(&self, epoch: u64, client: &Client) {
        let mut state = self.lock();
        if state.epoch != epoch {
            return;
        }
        if state.clients.len() >= MAX_CLIENTS {
            state.empty();
            return;
        }
        state
            .clients
            .insert(client.client_id.to_string(), client.clone());
    }

    /// Forgets every client: a change was just committed through this store.
    pub fn empty(&self) {
        self.lock().empty();
    }

    fn is_fresh(&self) -> bool {
        self.lock()
            .fresh_until
            .is_some_and(|until| Instant::now() < until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a map that is still whole: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn empty(&mut self) {
        self.clients.clear();
        self.epoch = self.epoch.wrapping_add(1);
    }
}
