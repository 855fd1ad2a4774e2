//! The connection pool as the metrics see it (`tessera_web::metrics::register_pool_metrics`
//! registers its series: the store has no web crates).

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
