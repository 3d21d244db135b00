//! Importing historical consent choices from files: Parquet, CSV or JSON Lines with the
//! columns `member_id`, `purpose`, `allowed`, `at` and optionally `source`.
//!
//! Choices made before optout existed (in an older settings service, by support staff)
//! must enter the ledger without one of them being silently dropped or misread, so every
//! row is validated and each invalid one is reported with its file, row and column. The
//! reader streams: it hands valid rows to the caller in bounded batches and never holds
//! a whole file, so the caller can make two cheap passes over a file of tens of millions
//! of rows, one to check everything (and import nothing if any row is invalid), one to
//! append.
//!
//! # Columns
//!
//! | column | Parquet | CSV | JSON Lines |
//! | --- | --- | --- | --- |
//! | `member_id` | UInt64, Int64, UInt32 or Int32 | decimal digits | number, or string of digits |
//! | `purpose` | string | text | string |
//! | `allowed` | Boolean | `true`/`false`, `1`/`0`, `yes`/`no`, any case | `true`/`false` |
//! | `at` | timestamp of any unit, or RFC 3339 string | RFC 3339 | RFC 3339 string |
//! | `source` (optional) | string | text | string |
//!
//! A purpose must be one of the caller's known purposes. A missing, null or empty
//! `source` means `import`. Times must be exact to the microsecond (the ledger's
//! resolution): a finer fraction is invalid rather than rounded. Parquet timestamps
//! are instants since the epoch in UTC, with or without a time zone in the column type.
//! Other columns are ignored.

// Tests may panic on what they did not expect; the library must not.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod batch;
mod choice;
mod csv_input;
mod error;
mod field;
mod format;
mod json_lines_input;
mod parquet_input;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::Path;

use optout_core::Purpose;

pub use batch::{ReadSummary, BATCH_ROWS_DEFAULT, BATCH_ROWS_MAX};
pub use choice::{ImportedChoice, InvalidRow};
pub use error::{ImportError, ReadError};
pub use format::{Format, FormatError};
pub use json_lines_input::JSON_LINE_BYTES_MAX;

use batch::Batcher;
use field::PurposeCatalog;

/// Reads the choices in the file at `path`, validating every row.
///
/// Valid rows go to `on_batch` in file order, in batches of at most `batch_rows` rows
/// (clamped to `1..=BATCH_ROWS_MAX`; only the last batch may be smaller). Each invalid
/// row goes to `on_invalid` as it is found, and reading continues. Memory use is bounded
/// by the batch size, not the file size.
///
/// Stops with [`ReadError::Import`] if the file cannot be read or its columns are
/// wrong (missing, repeated or of a wrong type), and with [`ReadError::Callback`] as
/// soon as `on_batch` returns an error. An empty file (or a Parquet file without rows)
/// holds no choices and is not an error.
pub fn read_choices<E>(
    path: &Path,
    format: Format,
    known_purposes: &BTreeSet<Purpose>,
    batch_rows: usize,
    mut on_batch: impl FnMut(Vec<ImportedChoice>) -> Result<(), E>,
    mut on_invalid: impl FnMut(InvalidRow),
) -> Result<ReadSummary, ReadError<E>> {
    let catalog = PurposeCatalog::new(known_purposes);
    let mut batcher = Batcher::new(path, batch_rows, &mut on_batch, &mut on_invalid);
    match format {
        Format::Parquet => parquet_input::read(path, &catalog, &mut batcher)?,
        Format::Csv => csv_input::read(path, &catalog, &mut batcher)?,
        Format::JsonLines => json_lines_input::read(path, &catalog, &mut batcher)?,
    }
    batcher.finish()
}

/// Checks every row of the file without keeping any: the first of the two passes an
/// import makes. Returns the counts; each invalid row goes to `on_invalid`.
pub fn validate_choices(
    path: &Path,
    format: Format,
    known_purposes: &BTreeSet<Purpose>,
    on_invalid: impl FnMut(InvalidRow),
) -> Result<ReadSummary, ImportError> {
    let discard = |_: Vec<ImportedChoice>| Ok::<(), Infallible>(());
    read_choices(
        path,
        format,
        known_purposes,
        BATCH_ROWS_DEFAULT,
        discard,
        on_invalid,
    )
    .map_err(ImportError::from)
}
