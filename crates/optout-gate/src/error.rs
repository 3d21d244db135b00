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
    /// A broken invariant of the gate itself, not of its input.
    #[error("internal error: {0}")]
    Internal(String),
    /// Another worker failed first; its error is the one reported.
    #[error("stopped because another worker failed")]
    Cancelled,
}

impl GateError {
    /// Whether the caller can fix it by changing the input or the command line. A path
    /// that does not exist, cannot be opened or is not a file is the caller's; any other
    /// failure to read (an I/O error of the device) and every failure to write is the
    /// machine's, like the gate's own broken invariants.
    pub fn is_bad_input(&self) -> bool {
        match self {
            GateError::Unreadable { error, .. } => is_bad_path(error),
            GateError::UnknownFormat { .. }
            | GateError::EmptyDirectory { .. }
            | GateError::NoInputs
            | GateError::Corrupt { .. }
            | GateError::Schema { .. }
            | GateError::Row { .. }
            | GateError::FieldNotAllowed { .. }
            | GateError::Usage(_)
            | GateError::Strict(_) => true,
            GateError::Write { .. }
            | GateError::WriteParquet { .. }
            | GateError::WorkerPanicked
            | GateError::Internal(_)
            | GateError::Cancelled => false,
        }
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

/// Whether a failure to read names a path the caller got wrong.
fn is_bad_path(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::IsADirectory
            | ErrorKind::NotADirectory
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidData
            | ErrorKind::InvalidFilename
            | ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    /// The caller's mistakes (exit 2) and the machine's failures (a runtime error) apart.
    #[test]
    fn io_failures_are_not_bad_input_but_wrong_paths_are() {
        let unreadable = |kind: ErrorKind| GateError::Unreadable {
            path: PathBuf::from("x.parquet"),
            error: Error::from(kind),
        };
        assert!(unreadable(ErrorKind::NotFound).is_bad_input());
        assert!(unreadable(ErrorKind::PermissionDenied).is_bad_input());
        assert!(unreadable(ErrorKind::IsADirectory).is_bad_input());
        assert!(!unreadable(ErrorKind::Other).is_bad_input());
        assert!(!unreadable(ErrorKind::Interrupted).is_bad_input());
        let write = GateError::Write {
            path: PathBuf::from("out"),
            error: Error::from(ErrorKind::StorageFull),
        };
        assert!(!write.is_bad_input());
        assert!(!GateError::Internal("no input number 3".into()).is_bad_input());
        assert!(GateError::Usage("output directory is not empty".into()).is_bad_input());
    }
}
