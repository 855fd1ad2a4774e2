//! Group commit for opaque access tokens: concurrent issuances share one transaction.
//!
//! An opaque token must be stored durably before it is handed out, and a durable commit
//! waits for the disk. One commit per token makes the disk's sync rate the ceiling of
//! opaque issuance. [`TokenBatcher::insert`] instead hands the token to one writer task,
//! which stores everything that is waiting in one transaction and then answers every
//! caller: under load many tokens share a sync; an idle server writes a lone token at once,
//! with no added wait. Every caller still hears back only after its token is committed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::{NewAccessToken, Result, Store, StoreError};

/// The most tokens stored in one transaction.
pub const TOKEN_BATCH: usize = 128;

/// How many insertions may wait for the writer before callers wait to queue theirs.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<()>>;

/// A handle that stores opaque access tokens through one batching writer task. Cheap to
/// clone; the writer ends when every clone is dropped and the queue is empty.
#[derive(Debug, Clone)]
pub struct TokenBatcher {
    store: Arc<dyn Store>,
    sender: mpsc::Sender<(NewAccessToken, DateTime<Utc>, Reply)>,
}

impl TokenBatcher {
    /// A handle whose writer runs on the current tokio runtime.
    pub fn spawn(store: Arc<dyn Store>) -> TokenBatcher {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(store.clone(), receiver));
        TokenBatcher { store, sender }
    }

    /// Stores `token` (issued at `now`), returning once it is committed, with the same
    /// errors as [`Store::insert_access_token`]. Tokens of a grant family take the
    /// family's own path (they must serialise with its revocation), not the batch.
    pub async fn insert(&self, token: NewAccessToken, now: DateTime<Utc>) -> Result<()> {
        if token.family_id.is_some() {
            return self.store.insert_access_token(&token, now).await;
        }
        let (reply, answer) = oneshot::channel();
        if self.sender.send((token, now, reply)).await.is_err() {
            return Err(writer_gone());
        }
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::WorkerCrashed)
}

/// What each token of a batch hears when the database was unavailable for the batch.
fn unavailable() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolTimedOut)
}

async fn run(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<(NewAccessToken, DateTime<Utc>, Reply)>,
) {
    let mut waiting = Vec::with_capacity(TOKEN_BATCH);
    while receiver.recv_many(&mut waiting, TOKEN_BATCH).await > 0 {
        let (rows, replies): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .map(|(token, now, reply)| ((token, now), reply))
            .unzip();
        if rows.len() == 1 {
            let (token, now) = &rows[0];
            let result = store.insert_access_token(token, *now).await;
            answer(replies, vec![result]);
            continue;
        }
        match store.insert_access_tokens(&rows).await {
            Ok(()) => answer(replies, rows.iter().map(|_| Ok(())).collect()),
            // The database is away: every token of the batch fails alike, at once, rather
            // than each waiting out its own timeout behind the others.
            Err(StoreError::Unavailable(_)) => {
                answer(replies, rows.iter().map(|_| Err(unavailable())).collect());
            }
            Err(_) => {
                // One bad row (a client deleted meanwhile) must not fail the others: store
                // each alone, so every caller gets the answer its own token deserves.
                let mut results = Vec::with_capacity(rows.len());
                for (token, now) in &rows {
                    results.push(store.insert_access_token(token, *now).await);
                }
                answer(replies, results);
            }
        }
    }
}

fn answer(replies: Vec<Reply>, results: Vec<Result<()>>) {
    for (reply, result) in replies.into_iter().zip(results) {
        // The caller may be gone (its client hung up); the token is stored either way.
        let _ = reply.send(result);
    }
}
