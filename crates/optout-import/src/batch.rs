//! The `Batcher`: where every format reader hands its rows. It counts them, reports
//! invalid ones at once, and passes valid ones on in batches of a bounded size, so
//! memory stays flat however large the file is.

use std::path::Path;

use crate::choice::{ImportedChoice, InvalidRow};
use crate::error::ReadError;
use crate::field::RowError;

/// Batch size used when the caller has no better idea.
pub const BATCH_ROWS_DEFAULT: usize = 8_192;
/// Largest batch handed to `on_batch`; larger requests are lowered to it.
pub const BATCH_ROWS_MAX: usize = 1 << 20;

/// What one pass over a file found.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReadSummary {
    /// Data rows read: `rows_valid + rows_invalid`.
    pub rows_total: u64,
    pub rows_valid: u64,
    pub rows_invalid: u64,
}

pub(crate) struct Batcher<'c, E> {
    path: &'c Path,
    batch_rows: usize,
    pending: Vec<ImportedChoice>,
    on_batch: &'c mut dyn FnMut(Vec<ImportedChoice>) -> Result<(), E>,
    on_invalid: &'c mut dyn FnMut(InvalidRow),
    summary: ReadSummary,
}

impl<'c, E> Batcher<'c, E> {
    /// `batch_rows` is clamped to `1..=BATCH_ROWS_MAX`.
    pub(crate) fn new(
        path: &'c Path,
        batch_rows: usize,
        on_batch: &'c mut dyn FnMut(Vec<ImportedChoice>) -> Result<(), E>,
        on_invalid: &'c mut dyn FnMut(InvalidRow),
    ) -> Self {
        let batch_rows = batch_rows.clamp(1, BATCH_ROWS_MAX);
        Batcher {
            path,
            batch_rows,
            pending: Vec::with_capacity(batch_rows),
            on_batch,
            on_invalid,
            summary: ReadSummary::default(),
        }
    }

    pub(crate) fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Takes the outcome of one data row; `row` is its 1-based number.
    pub(crate) fn push(
        &mut self,
        row: u64,
        outcome: Result<ImportedChoice, RowError>,
    ) -> Result<(), ReadError<E>> {
        self.summary.rows_total += 1;
        match outcome {
            Ok(choice) => {
                self.summary.rows_valid += 1;
                self.pending.push(choice);
                if self.pending.len() >= self.batch_rows {
                    self.flush()?;
                }
            }
            Err(error) => {
                self.summary.rows_invalid += 1;
                (self.on_invalid)(InvalidRow {
                    file: self.path.to_path_buf(),
                    row,
                    column: error.column.map(|column| column.name().to_string()),
                    reason: error.reason,
                });
            }
        }
        Ok(())
    }

    /// Hands over the last, partial batch and returns the counts.
    pub(crate) fn finish(mut self) -> Result<ReadSummary, ReadError<E>> {
        let last = std::mem::take(&mut self.pending);
        if !last.is_empty() {
            (self.on_batch)(last).map_err(ReadError::Callback)?;
        }
        Ok(self.summary)
    }

    fn flush(&mut self) -> Result<(), ReadError<E>> {
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch_rows));
        (self.on_batch)(batch).map_err(ReadError::Callback)
    }
}
