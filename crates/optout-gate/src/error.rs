//! `GateError`: everything that stops a gate or verify run, with the file, column and
//! row a user needs to fix it. `is_bad_input` separates the caller's mistakes (a missing
//! column, a corrupt file, a field outside the allow-list) from failures of the machine
//! (a full disk), so the binary can map them to distinct exit codes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a Parquet or JSON Lines file (expected .parquet, .jsonl, .ndjson or .json)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: no Parquet or JSON Lines files in this directory", path.display())]
    EmptyDirectory { path: PathBuf },
    #[error("no input files given")]
    NoInputs,
    #[error("{}: corrupt or truncated {format}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error("{}: column {column:?} {reason}", path.display())]
    Schema {
        path: PathBuf,
        column: String,
        reason: String,
    },
    #[error("{}: row {row}: {reason}", path.display())]
    Row {
        path: PathBuf,
        row: u64,
        reason: String,
    },
    #[error("field {field:?} is not allowed for purpose {purpose}: the policy in force at the cutoff allows {allowed}")]
    FieldNotAllowed {
        field: String,
        purpose: String,
        allowed: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("--strict: {0}")]
    Strict(String),
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write Parquet {}: {reason}", path.display())]
    WriteParquet { path: PathBuf, reason: String },
    #[error("a gate worker stopped unexpectedly")]
    WorkerPanicked,
    /// Another worker failed first; its error is the one reported.
    #[error("stopped because another worker failed")]
    Cancelled,
}

impl GateError {
    /// Whether the caller can fix it by changing the input or the command line.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            GateError::Write { .. }
                | GateError::WriteParquet { .. }
                | GateError::WorkerPanicked
                | GateError::Cancelled
        )
    }

    pub(crate) fn corrupt_parquet(path: &std::path::Path, error: impl std::fmt::Display) -> Self {
        GateError::Corrupt {
            path: path.to_path_buf(),
            format: "Parquet",
            reason: error.to_string(),
        }
    }

    pub(crate) fn schema(
        path: &std::path::Path,
        column: &str,
        reason: impl Into<String>,
    ) -> GateError {
        GateError::Schema {
            path: path.to_path_buf(),
            column: column.to_string(),
            reason: reason.into(),
        }
    }
}
