//! Store errors.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken (such as a duplicate name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The record changed since the caller read it (If-Match failed).
    #[error("the record changed since it was read")]
    VersionMismatch,
    /// The request is invalid for the current state (such as rotating a revoked key).
    #[error("{0}")]
    Invalid(String),
    /// The database cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure.
    #[error("store failure: {0}")]
    Database(String),
    /// The schema could not be brought up to date.
    #[error("migrations failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("record"),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}
