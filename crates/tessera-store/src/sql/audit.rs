//! The audit log: appended in batches by [`crate::AuditLog`]'s writer, listed newest
//! first, never purged.

use sqlx::Row as _;

use super::{D, Pool, Row};
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
