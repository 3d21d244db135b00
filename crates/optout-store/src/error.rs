//! Errors of the storage layer. Callers branch on them: a rejected request is the
//! caller's fault and changed nothing; a poisoned store needs a restart.

use optout_core::event::TextFieldError;
use optout_core::policy::{PolicyError, PolicyOrderError};
use optout_core::{LedgerPosition, MemberId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The request was refused before anything was written.
    #[error("rejected: {0}")]
    Rejected(String),
    /// An idempotency key was reused for a different choice.
    #[error("idempotency key {key:?} of member {member} was already used for a different choice (position {position})")]
    IdempotencyConflict {
        member: MemberId,
        key: String,
        position: LedgerPosition,
    },
    /// A commit failed earlier; nothing more is written until the process restarts.
    #[error("the ledger refuses writes after a failed commit (restart to recover): {0}")]
    Poisoned(String),
    /// The database failed.
    #[error("storage failure: {0}")]
    Backend(String),
    /// Stored data does not decode (corruption or tampering).
    #[error("stored event at position {position} is unreadable: {problem}")]
    Corrupt {
        position: LedgerPosition,
        problem: String,
    },
    #[error("the ledger writer has stopped")]
    WriterStopped,
}

impl From<PolicyError> for StoreError {
    fn from(error: PolicyError) -> Self {
        StoreError::Rejected(error.to_string())
    }
}

impl From<PolicyOrderError> for StoreError {
    fn from(error: PolicyOrderError) -> Self {
        StoreError::Rejected(error.to_string())
    }
}

impl From<TextFieldError> for StoreError {
    fn from(error: TextFieldError) -> Self {
        StoreError::Rejected(error.to_string())
    }
}
