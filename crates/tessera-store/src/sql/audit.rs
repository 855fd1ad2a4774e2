//! The audit log: appended in batches by [`crate::AuditLog`]'s writer, listed newest
//! first, purged of what is older than a cutoff in bounded batches.

use sqlx::Row as _;

use super::{D, Pool, Row, Time};
use crate::Result;
use crate::convert::{parse_name, stored_time};
use crate::dialect::Dialect;
use crate::model::{AuditEvent, AuditFilter, NewAuditEvent, audit_text};

fn audit_event_from_row(row: &Row) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        event: NewAuditEvent {
            at: row.try_get("at")?,
            kind: parse_name(row.try_get("kind")?, "audit event kind")?,
            actor: row.try_get("actor")?,
            client_id: row.try_get("client_id")?,
            company: row.try_get("company")?,
            target: row.try_get("target")?,
            address: row.try_get("address")?,
            detail: row.try_get("detail")?,
        },
    })
}

pub async fn record_audit_events(pool: &Pool, events: &[NewAuditEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // How many rows one statement carries is the dialect's: SQLite limits the bound
    // parameters, PostgreSQL takes one array per column.
    D::insert_audit_events(pool, events).await
}

pub async fn list_audit_events(pool: &Pool, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
    let mut query = sqlx::QueryBuilder::new(
        "SELECT id, at, kind, actor, client_id, company, target, address, detail \
         FROM audit_events WHERE true",
    );
    if let Some(kind) = filter.kind {
        query.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(actor) = audit_text(filter.actor.as_deref()) {
        query.push(" AND actor = ").push_bind(actor);
    }
    if let Some(since) = filter.since {
        query.push(" AND at >= ").push_bind(stored_time(since));
    }
    // The (at) and (kind, at) indexes deliver the time order; only events of one instant
    // are sorted by id (on SQLite the id is the rowid, which every index ends with, so
    // not even those).
    query
        .push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::from(filter.effective_limit()));
    let rows = query.build().fetch_all(pool).await?;
    rows.iter().map(audit_event_from_row).collect()
}

/// One batch of [`purge_audit_events`]: at most [`crate::AUDIT_PURGE_BATCH`] of the events
/// before `$1`, found through the `(at)` index. PostgreSQL compares `timestamptz` values;
/// SQLite the RFC 3339 text, whose byte order is time order (see `tokens::PURGES`).
const PURGE_AUDIT_BATCH: &str = "DELETE FROM audit_events WHERE id IN \
     (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)";

pub async fn purge_audit_events(pool: &Pool, before: Time) -> Result<u64> {
    let mut purged = 0;
    // Each batch commits on its own: a purge of millions of rows never holds the write
    // lock (SQLite) or its row locks (PostgreSQL) for longer than one batch. Another
    // instance purging at the same time deletes some of the rows a batch picked, so a
    // short batch does not mean the end: the purge goes on until a batch finds nothing.
    // A row is deleted, and counted, by one of them only.
    loop {
        let deleted = sqlx::query(PURGE_AUDIT_BATCH)
            .bind(stored_time(before))
            .bind(crate::AUDIT_PURGE_BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(purged);
        }
        purged += deleted;
        tokio::task::yield_now().await;
    }
}
