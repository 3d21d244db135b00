//! Reading choices from CSV: a header line naming the columns (in any order, extra
//! columns ignored), then one choice per record, read one record at a time into a
//! reused buffer.
//!
//! Fields are trimmed of surrounding whitespace; an empty field is a null. A record with
//! too few fields or bytes that are not UTF-8 is an invalid row, not a fatal error, so
//! one pass reports every such row.

use std::fs::File;
use std::path::Path;

use csv::{ByteRecord, ReaderBuilder, Trim};

use crate::batch::Batcher;
use crate::choice::ImportedChoice;
use crate::error::{ImportError, ReadError};
use crate::field::{
    allowed_from_text, member_id_from_text, source_from_text, time_from_text, Column, InColumn,
    PurposeCatalog, RowError,
};
use crate::format::Format;

const UTF8_BOM: &str = "\u{feff}";

pub(crate) fn read<E>(
    path: &Path,
    catalog: &PurposeCatalog<'_>,
    batcher: &mut Batcher<'_, E>,
) -> Result<(), ReadError<E>> {
    let file = File::open(path).map_err(|error| ImportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(Trim::All)
        .from_reader(file);
    let headers = reader
        .byte_headers()
        .map_err(|error| csv_error(path, error))?;
    if headers.is_empty() {
        // Not even a header line: an empty file holds no choices.
        return Ok(());
    }
    let layout = Layout::from_headers(path, headers)?;
    let mut record = ByteRecord::new();
    let mut row: u64 = 0;
    while reader
        .read_byte_record(&mut record)
        .map_err(|error| csv_error(path, error))?
    {
        row += 1;
        batcher.push(row, layout.choice(&record, row, catalog))?;
    }
    Ok(())
}

fn csv_error(path: &Path, error: csv::Error) -> ImportError {
    let reason = error.to_string();
    match error.into_kind() {
        csv::ErrorKind::Io(error) => ImportError::Io {
            path: path.to_path_buf(),
            error,
        },
        _ => ImportError::Corrupt {
            path: path.to_path_buf(),
            format: Format::Csv,
            reason,
        },
    }
}

/// Where each needed column is in a record.
struct Layout {
    member_id: usize,
    purpose: usize,
    allowed: usize,
    at: usize,
    source: Option<usize>,
    header_fields: usize,
}

impl Layout {
    fn from_headers(path: &Path, headers: &ByteRecord) -> Result<Self, ImportError> {
        let names: Vec<&[u8]> = headers
            .iter()
            .enumerate()
            .map(|(index, name)| match index {
                // Spreadsheet exports often start with a byte order mark.
                0 => name.strip_prefix(UTF8_BOM.as_bytes()).unwrap_or(name),
                _ => name,
            })
            .collect();
        let schema_error = |column: Column, reason: &str| ImportError::Schema {
            path: path.to_path_buf(),
            column: column.name().to_string(),
            reason: reason.to_string(),
        };
        let find = |column: Column| -> Result<Option<usize>, ImportError> {
            let mut matches = names
                .iter()
                .enumerate()
                .filter(|(_, name)| **name == column.name().as_bytes())
                .map(|(index, _)| index);
            match (matches.next(), matches.next()) {
                (Some(_), Some(_)) => Err(schema_error(column, "column appears more than once")),
                (index, _) => Ok(index),
            }
        };
        let required = |column: Column| {
            find(column)?
                .ok_or_else(|| schema_error(column, "required column is missing from the header"))
        };
        Ok(Layout {
            member_id: required(Column::MemberId)?,
            purpose: required(Column::Purpose)?,
            allowed: required(Column::Allowed)?,
            at: required(Column::At)?,
            source: find(Column::Source)?,
            header_fields: names.len(),
        })
    }

    fn choice(
        &self,
        record: &ByteRecord,
        row: u64,
        catalog: &PurposeCatalog<'_>,
    ) -> Result<ImportedChoice, RowError> {
        let text = |column: Column, index: usize| -> Result<&str, RowError> {
            let field = record.get(index).ok_or_else(|| RowError {
                column: Some(column),
                reason: format!(
                    "record has {} fields, the header has {}",
                    record.len(),
                    self.header_fields
                ),
            })?;
            std::str::from_utf8(field)
                .map_err(|_| "not valid UTF-8".to_string())
                .in_column(column)
        };
        Ok(ImportedChoice {
            member: member_id_from_text(text(Column::MemberId, self.member_id)?)
                .in_column(Column::MemberId)?,
            purpose: catalog
                .resolve(text(Column::Purpose, self.purpose)?)
                .in_column(Column::Purpose)?,
            allowed: allowed_from_text(text(Column::Allowed, self.allowed)?)
                .in_column(Column::Allowed)?,
            at: time_from_text(text(Column::At, self.at)?).in_column(Column::At)?,
            source: match self.source {
                Some(index) => source_from_text(Some(text(Column::Source, index)?)),
                None => source_from_text(None),
            }
            .in_column(Column::Source)?,
            row,
        })
    }
}
