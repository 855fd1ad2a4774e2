//! The connection pool as the metrics see it.

use std::sync::Arc;

use tessera_core::metrics::{MetricKind, Registry};

use crate::Store;

/// A moment's view of a store's connection pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections, idle or in use.
    pub open: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// Registers `tessera_db_pool_connections{state="in_use"|"idle"}` and
/// `tessera_db_pool_max_connections`, read from `store` at every scrape.
pub fn register_pool_metrics(registry: &Registry, store: &Arc<dyn Store>) {
    let connections = Arc::clone(store);
    registry.collect(
        "tessera_db_pool_connections",
        "Database connections open in the pool, by state.",
        MetricKind::Gauge,
        &["state"],
        move || {
            let status = connections.pool_status();
            vec![
                (
                    vec!["in_use".to_owned()],
                    f64::from(status.open.saturating_sub(status.idle)),
                ),
                (vec!["idle".to_owned()], f64::from(status.idle)),
            ]
        },
    );
    let max = Arc::clone(store);
    registry.collect(
        "tessera_db_pool_max_connections",
        "The most database connections the pool opens.",
        MetricKind::Gauge,
        &[],
        move || vec![(Vec::new(), f64::from(max.pool_status().max))],
    );
}
