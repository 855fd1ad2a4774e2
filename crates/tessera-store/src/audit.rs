//! The audit log's buffered writer: request handlers queue events and go on, one task
//! writes them in batches.
//!
//! A database write per event would put the database on every request's path (a login, a
//! token) a second time, and under load would turn many small transactions into the
//! bottleneck. Instead [`AuditLog::record`] puts the event on a bounded channel and
//! [`AuditWriter::run`] drains it, up to [`BATCH`] events per transaction. Nothing is
//! dropped to keep up: when [`QUEUE`] events wait, `record` waits too. What cannot be
//! written after the retries is reported on the error log, with how many events were lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::{NewAuditEvent, Store};

/// How many messages (events and flush markers) may wait for the writer before
/// [`AuditLog::record`] waits in turn.
pub const QUEUE: usize = 4096;

/// The most events the writer appends in one transaction.
pub const BATCH: usize = 256;

/// How long the writer waits for a batch to fill before writing what it has.
pub const GATHER: Duration = Duration::from_millis(20);

/// The pauses before each retry of a batch that failed: a database that is away for a
/// moment (a restart, a failover) loses nothing, and one that refuses the batch for
/// another reason holds the writer up about two seconds.
const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1600),
];

/// How long the writer keeps retrying a batch while the database is unavailable (an
/// outage, a network cut), pausing [`OUTAGE_PAUSE`] after the backoff above: events
/// queue meanwhile (up to [`QUEUE`], then `record` waits), and nothing is lost to an
/// outage shorter than this.
pub const OUTAGE_PATIENCE: Duration = Duration::from_secs(60);

/// The pause between retries once the backoff is spent, during an outage.
const OUTAGE_PAUSE: Duration = Duration::from_secs(2);

/// What travels on the channel. A flush marker is answered once everything queued before
/// it has been written (or given up on), which keeps "before" exact without a counter.
#[derive(Debug)]
enum Message {
    Event(NewAuditEvent),
    /// An event whose sender waits until it is stored: answered after its batch commits
    /// (`true`), or once the batch was given up on (`false`).
    Durable(NewAuditEvent, oneshot::Sender<bool>),
    Flush(oneshot::Sender<()>),
}

/// How long [`AuditLog::record_durable`] waits for its event to be stored.
pub const DURABLE_WAIT: Duration = Duration::from_secs(2);

/// A handle to the audit log, cheap to clone: every handler holds one. Records go through a
/// bounded channel to one writer task that inserts them in batches.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
}

/// The task that writes what every [`AuditLog`] handle records; run it with
/// [`AuditWriter::run`].
#[derive(Debug)]
pub struct AuditWriter {
    store: Arc<dyn Store>,
    receiver: mpsc::Receiver<Message>,
}

impl AuditLog {
    /// The handle and the writer that goes with it. Spawn the writer
    /// (`tokio::spawn(writer.run())`); it ends once every clone of the handle is dropped
    /// and everything they recorded has been written.
    pub fn new(store: Arc<dyn Store>) -> (AuditLog, AuditWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (AuditLog { sender }, AuditWriter { store, receiver })
    }

    /// A handle whose writer runs on the current tokio runtime: what a server starts with.
    pub fn spawn(store: Arc<dyn Store>) -> AuditLog {
        let (log, writer) = AuditLog::new(store);
        tokio::spawn(writer.run());
        log
    }

    /// Queues `event` for the writer. Waits while [`QUEUE`] messages are queued already
    /// (backpressure) rather than drop any. If the writer is gone (it was never spawned, or
    /// its runtime shut down) the event cannot be kept: that is logged as an error.
    pub async fn record(&self, event: NewAuditEvent) {
        if let Err(mpsc::error::SendError(Message::Event(event))) =
            self.sender.send(Message::Event(event)).await
        {
            tracing::error!(
                kind = event.kind.as_str(),
                "audit event lost: the audit writer is not running"
            );
        }
    }

    /// Queues `event` and waits until it is stored, at most [`DURABLE_WAIT`]: for what must
    /// be in the log before the caller goes on (a token is delivered only once its
    /// issuance is recorded, so a process killed a moment later has lost no record of a
    /// token it gave out). The writer does not wait for a batch to fill while such an
    /// event waits; events that arrive meanwhile go in the next transaction, so under load
    /// each commit carries many. `false` when the event is not stored in time (the
    /// database is away, or the writer is not running).
    pub async fn record_durable(&self, event: NewAuditEvent) -> bool {
        let (done, stored) = oneshot::channel();
        if let Err(mpsc::error::SendError(Message::Durable(event, _))) =
            self.sender.send(Message::Durable(event, done)).await
        {
            tracing::error!(
                kind = event.kind.as_str(),
                "audit event lost: the audit writer is not running"
            );
            return false;
        }
        matches!(
            tokio::time::timeout(DURABLE_WAIT, stored).await,
            Ok(Ok(true))
        )
    }

    /// Waits until every event recorded through any handle before this call has been
    /// written, or given up on after the retries: for tests, and for shutdown before the
    /// runtime stops. Returns at once when the writer is not running.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            // An error means the writer stopped before answering: nothing more will be
            // written either way.
            let _ = written.await;
        }
    }

    /// Drives `serving` (a server) to its end, then waits at most `limit` for the events
    /// already recorded to be written, so that stopping a server loses none of them.
    pub async fn outlive<F: Future>(&self, serving: F, limit: Duration) -> F::Output {
        let served = serving.await;
        self.flush_before_exit(limit).await;
        served
    }

    /// [`flush`](Self::flush) for a server that is stopping: waits at most `limit`, and
    /// logs when the events could not all be written by then.
    pub async fn flush_before_exit(&self, limit: Duration) {
        if tokio::time::timeout(limit, self.flush()).await.is_err() {
            tracing::error!(
                "audit events recorded before shutdown could not all be written within {} s",
                limit.as_secs()
            );
        }
    }
}

impl AuditWriter {
    /// Writes batches until every [`AuditLog`] handle is dropped and the queue is empty.
    /// A batch that fails is retried after each pause of [`RETRY_BACKOFF`]; when the last
    /// retry fails too, its events are lost, which is logged with how many and why, and the
    /// writer goes on with the next batch.
    pub async fn run(mut self) {
        let mut messages = Vec::with_capacity(BATCH);
        let mut events = Vec::with_capacity(BATCH);
        let mut flushes = Vec::new();
        let mut durables = Vec::new();
        // Zero means the channel is closed and drained: every handle is gone.
        while self.receiver.recv_many(&mut messages, BATCH).await > 0 {
            self.gather(&mut messages).await;
            for message in messages.drain(..) {
                match message {
                    Message::Event(event) => events.push(event),
                    Message::Durable(event, done) => {
                        events.push(event);
                        durables.push(done);
                    }
                    Message::Flush(done) => flushes.push(done),
                }
            }
            // A flush marker waits for the events queued before it, which are all in this
            // batch or an earlier one: answering after the batch is written is enough.
            if !events.is_empty() {
                let stored = self.write(&events).await;
                events.clear();
                for done in durables.drain(..) {
                    // The caller may have stopped waiting.
                    let _ = done.send(stored);
                }
            }
            for done in flushes.drain(..) {
                // The caller may have stopped waiting; nothing to tell it then.
                let _ = done.send(());
            }
        }
    }

    /// Waits [`GATHER`] for more events to join a batch that is not full, unless a flush
    /// is waiting, then takes what has arrived. A busy server records thousands of events
    /// a second: one transaction for all that arrive within a few milliseconds costs far
    /// less than one each, and the events reach the table at most that much later. The
    /// writer sleeps through the wait instead of waking for each event: every wake-up
    /// would cost the request worker that sent the event a switch to this task's thread.
    async fn gather(&mut self, messages: &mut Vec<Message>) {
        let flushing = |messages: &[Message]| {
            messages
                .iter()
                .any(|m| matches!(m, Message::Flush(_) | Message::Durable(..)))
        };
        if messages.len() >= BATCH || flushing(messages) {
            return;
        }
        tokio::time::sleep(GATHER).await;
        while messages.len() < BATCH {
            match self.receiver.try_recv() {
                Ok(message) => messages.push(message),
                Err(_) => break,
            }
        }
    }

    /// Appends one batch, retrying as [`RETRY_BACKOFF`] says, and for as long as
    /// [`OUTAGE_PATIENCE`] while the database is unavailable.
    async fn write(&self, events: &[NewAuditEvent]) -> bool {
        let mut pauses = RETRY_BACKOFF.iter();
        let started = tokio::time::Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let err = match self.store.record_audit_events(events).await {
                Ok(()) => return true,
                Err(err) => err,
            };
            let outage = matches!(err, crate::StoreError::Unavailable(_))
                && started.elapsed() < OUTAGE_PATIENCE;
            match pauses.next().or(outage.then_some(&OUTAGE_PAUSE)) {
                Some(pause) => {
                    tracing::warn!(
                        events = events.len(),
                        error = %error_chain(&err),
                        "writing audit events failed; retrying in {} ms",
                        pause.as_millis()
                    );
                    tokio::time::sleep(*pause).await;
                }
                None => {
                    tracing::error!(
                        lost = events.len(),
                        error = %error_chain(&err),
                        "{} audit events lost: writing them failed {} times",
                        events.len(),
                        tries
                    );
                    return false;
                }
            }
        }
    }
}

/// `err` and its causes on one line, `: `-separated. The driver's errors show the
/// database's message, not the parameters bound to the statement, so the events' fields
/// stay out of the log.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
