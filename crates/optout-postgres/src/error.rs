//! Errors of opening a PostgreSQL ledger. Once open, the ledger speaks `StoreError` like
//! every backend; opening has failures of its own that callers branch on (another writer
//! holds the ledger, the schema is newer than this build).

use optout_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid ledger schema name {0:?}: expected 1-63 characters of a-z, 0-9 and _, not starting with a digit")]
    InvalidSchemaName(String),
    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// Another session holds the ledger's writer lock: only one process may append.
    #[error("the ledger in schema {schema:?} is already open for writing by another process ({holder}); only one writer may append to a ledger: stop that process, or open this one read-only")]
    WriterLocked { schema: String, holder: String },
    #[error("schema {schema:?} holds ledger schema version {found}, newer than this optout supports ({supported}); upgrade optout")]
    SchemaTooNew {
        schema: String,
        found: i32,
        supported: i32,
    },
    /// A read-only node found no ledger (version 0) or an older layout in the schema: the
    /// writer creates and migrates it.
    #[error("schema {schema:?} holds no ledger of layout version {expected} (found {found}): start the ledger's writer first, which creates or migrates it")]
    NotInitialised {
        schema: String,
        found: i32,
        expected: i32,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PostgresError> for StoreError {
    fn from(error: PostgresError) -> Self {
        match error {
            PostgresError::Store(error) => error,
            other => StoreError::Backend(other.to_string()),
        }
    }
}
