use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is taken (a company slug, a username, a client id).
    #[error("{0}")]
    Conflict(String),
    /// Something the operation refers to does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database cannot be reached or timed out. Callers answer 503 and retry later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A stored value does not parse: the database was changed outside Tessera.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be reached at start-up; the reason, in the server's words.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The database URL or options are unusable.
    #[error("{0}")]
    Config(String),
    /// Applying migrations failed.
    #[error("migrating the database failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Classifies a driver error, naming the conflicting value for unique violations.
    pub(crate) fn from_sqlx(err: sqlx::Error, conflict: impl FnOnce() -> String) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(conflict())
            }
            sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_outage) => {
                StoreError::Unavailable(err)
            }
            // A protocol error is a conversation with the server cut short: a connection
            // closed during the handshake by a network cut or a proxy, say.
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            _ => StoreError::Database(err),
        }
    }
}

impl StoreError {
    /// A write named a row that is gone (a foreign-key violation): say, a token for a
    /// client deleted meanwhile.
    pub fn is_missing_reference(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::from_sqlx(err, || "a unique value is already taken".into())
    }
}

/// SQLSTATEs that mean "the database is away or overloaded", not "the query is wrong":
/// class 08 (connection exception), 53 (insufficient resources, e.g. too many connections)
/// and 57P0x (shutdown, restart, database dropped).
fn is_outage(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_cut_mid_conversation_is_unavailable_not_a_database_error() {
        // What sqlx reports when a proxy or a network cut closes the connection during the
        // TLS negotiation: seen by the reliability soak as 500s during a database cut.
        let cut = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(matches!(
            StoreError::from_sqlx(cut, String::new),
            StoreError::Unavailable(_)
        ));
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(StoreError::from(io), StoreError::Unavailable(_)));
        // A query the database refuses is still its own error.
        let decode = sqlx::Error::ColumnNotFound("x".into());
        assert!(matches!(StoreError::from(decode), StoreError::Database(_)));
    }
}
