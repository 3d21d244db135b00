//! What the readers of a column chunk's own pages ([`crate::text_pages`],
//! [`crate::list_pages`]) share: parquet's page reader for the chunk, the first error kept
//! and named by its column, and `PLAIN` byte strings (a u32 little-endian length, then
//! the bytes), the layout of dictionary pages, `PLAIN` values and version 1 levels.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::file::metadata::RowGroupMetaData;
use parquet::file::serialized_reader::SerializedPageReader;

/// Parquet's page reader for leaf `leaf` of `row_group` of `path`; errors name `column`.
pub fn open(
    path: &Path,
    row_group: &RowGroupMetaData,
    leaf: usize,
    column: &str,
) -> Result<SerializedPageReader<File>, String> {
    let chunk = row_group
        .columns()
        .get(leaf)
        .ok_or_else(|| format!("column {column}: no chunk in the row group"))?;
    let file = File::open(path).map_err(|error| format!("cannot open: {error}"))?;
    let rows = usize::try_from(row_group.num_rows()).unwrap_or(0);
    SerializedPageReader::new(Arc::new(file), chunk, rows, None)
        .map_err(|error| format!("column {column}: {error}"))
}

/// A column's first error, kept so that a caller can tell an input fault from an output
/// one after the writer hands the error back.
pub struct Failure {
    column: String,
    first: Option<String>,
}

impl Failure {
    pub fn new(column: String) -> Failure {
        Failure {
            column,
            first: None,
        }
    }

    /// Records `problem` (the first one only) as the column's, and returns it as an error
    /// message naming the column.
    pub fn fail(&mut self, problem: String) -> String {
        let message = format!("column {}: {problem}", self.column);
        self.first.get_or_insert_with(|| message.clone());
        message
    }

    /// The first error recorded, if any.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    /// Takes the first error recorded, or `otherwise` when there is none.
    pub fn take_or(&mut self, otherwise: String) -> String {
        self.first.take().unwrap_or(otherwise)
    }
}

/// Where the bytes of the `PLAIN` string whose length is at `position` of `page` are,
/// when they are all in the page.
#[inline(always)]
pub fn plain_span(page: &[u8], position: usize) -> Option<(usize, usize)> {
    let start = position.checked_add(4)?;
    let end = start.checked_add(read_length(page, position)?)?;
    (end <= page.len()).then_some((start, end))
}

/// The spans of the `count` strings of a `PLAIN` dictionary page.
pub fn plain_spans(page: &[u8], count: usize) -> Result<Vec<(usize, usize)>, String> {
    let mut spans = Vec::with_capacity(count.min(page.len() / 4));
    let mut position = 0;
    for _ in 0..count {
        let (start, end) = plain_span(page, position)
            .ok_or("a dictionary page cut short, or a string past its end")?;
        spans.push((start, end));
        position = end;
    }
    Ok(spans)
}

/// The length (u32 little endian) at `position` of `bytes`.
#[inline]
pub fn read_length(bytes: &[u8], position: usize) -> Option<usize> {
    let length = bytes.get(position..position.checked_add(4)?)?;
    Some(u32::from_le_bytes(<[u8; 4]>::try_from(length).ok()?) as usize)
}
