//! Errors that stop an import: the file cannot be read, its columns are wrong, or the
//! caller's batch callback failed.
//!
//! A bad *row* is not an error here: it is reported as an [`InvalidRow`](crate::InvalidRow)
//! and reading goes on, so one pass can list every problem in a file. Everything below
//! means the file as a whole cannot be imported, and says which file (and column) it is.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;

use crate::format::Format;

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file name does not tell the format; the caller must name it.
    #[error("{}: cannot tell the format from the file name: expected .parquet, .csv, .jsonl, .ndjson or .json", path.display())]
    UnknownFormat { path: PathBuf },

    /// Opening or reading the file failed.
    #[error("{}: cannot read: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },

    /// A required column is missing, appears twice, or has a type that cannot hold it.
    #[error("{}: column {column}: {reason}", path.display())]
    Schema {
        path: PathBuf,
        column: String,
        reason: String,
    },

    /// The bytes are not a readable file of this format (truncated or corrupt Parquet,
    /// a CSV decoding failure).
    #[error("{}: not a readable {format} file: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        format: Format,
        reason: String,
    },
}

/// What [`read_choices`](crate::read_choices) returns on failure: either the file could
/// not be read, or the caller's `on_batch` callback returned an error, passed on as is.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The error returned by `on_batch`; reading stopped there.
    #[error(transparent)]
    Callback(E),
}

impl From<ReadError<Infallible>> for ImportError {
    fn from(error: ReadError<Infallible>) -> Self {
        match error {
            ReadError::Import(error) => error,
            ReadError::Callback(never) => match never {},
        }
    }
}
