//! The audit log's retention: a running authorization server deletes the events older
//! than [`Settings::audit_retention`](crate::Settings::audit_retention) at start-up and
//! then every [`AUDIT_PURGE_INTERVAL`], and records each purge that deleted something as
//! an `audit.purged` event.
//!
//! Every instance on a database purges; the deletes are idempotent, and the store counts
//! each event once however many instances delete at the same time.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Clock;
use tessera_store::{AuditKind, AuditLog, NewAuditEvent, Store};

use crate::error::ErrorChain;

/// How long audit events are kept by default: 90 days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// The shortest retention accepted: one hour. A shorter one would delete what an operator
/// is still reading about an incident in progress.
pub const MIN_AUDIT_RETENTION: Duration = Duration::from_secs(3600);

/// How often a running server purges the audit log, after the purge at start-up.
pub const AUDIT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// `retention` as a span of time, or why it is refused: shorter than
/// [`MIN_AUDIT_RETENTION`], or too long to subtract from a date.
pub(crate) fn check(retention: Duration) -> Result<chrono::Duration, String> {
    if retention < MIN_AUDIT_RETENTION {
        return Err(format!(
            "the audit retention must be at least {} s (one hour), or none to keep events forever",
            MIN_AUDIT_RETENTION.as_secs()
        ));
    }
    chrono::Duration::from_std(retention)
        .ok()
        .filter(|span| *span <= chrono::Duration::days(100 * 365))
        .ok_or_else(|| "the audit retention may be at most 100 years".to_owned())
}

/// Deletes the audit events older than `retention` now and then every
/// [`AUDIT_PURGE_INTERVAL`], for as long as it is polled; never returns.
pub(crate) async fn purge_periodically(
    store: Arc<dyn Store>,
    audit: AuditLog,
    clock: Clock,
    retention: chrono::Duration,
) -> std::convert::Infallible {
    let mut ticks = tokio::time::interval(AUDIT_PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        purge_once(store.as_ref(), &audit, &clock, retention).await;
    }
}

/// One purge: deletes what is older than `retention`, logs and records how many went.
/// A failure is logged and left to the next tick.
async fn purge_once(
    store: &dyn Store,
    audit: &AuditLog,
    clock: &Clock,
    retention: chrono::Duration,
) {
    let now = clock.now_utc();
    let Some(before) = now.checked_sub_signed(retention) else {
        return;
    };
    match store.purge_audit_events(before).await {
        Ok(0) => {}
        Ok(purged) => {
            let before_text = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            tracing::info!(purged, before = %before_text, "purged audit events older than the retention");
            audit
                .record(
                    NewAuditEvent::new(AuditKind::AuditPurged, now)
                        .actor("retention")
                        .detail(format!("purged={purged} before={before_text}")),
                )
                .await;
        }
        Err(err) => {
            tracing::warn!(error = %ErrorChain(&err), "purging old audit events failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_under_an_hour_or_past_a_century_is_refused() {
        assert!(check(Duration::from_secs(3599)).is_err());
        assert_eq!(check(MIN_AUDIT_RETENTION), Ok(chrono::Duration::hours(1)));
        assert_eq!(
            check(DEFAULT_AUDIT_RETENTION),
            Ok(chrono::Duration::days(90))
        );
        assert!(check(Duration::from_secs(u64::MAX)).is_err());
    }
}
