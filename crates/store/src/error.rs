//! The store's error type.

/// Failures of the persistence layer. Messages never carry SQL or credentials;
/// callers map them to generic API errors and log the source chain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not connect to the {backend} database")]
    Connect {
        backend: crate::Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not prepare the data directory for the database file")]
    DataDir(#[source] std::io::Error),
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("unsafe database role: {0}")]
    UnsafeRole(String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// The thing asked for does not exist (in this organisation).
    #[error("not found")]
    NotFound,
    /// The change conflicts with what is stored; the code is safe to show.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Input the store refuses; the message is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// Input the store refuses, field by field (forms show each message beside its field).
    #[error("{}", crate::audience::describe_problems(.0))]
    InvalidFields(Vec<crate::audience::FieldProblem>),
}
