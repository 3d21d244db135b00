//! What reading a file yields, row by row: an [`ImportedChoice`] for each valid row and
//! an [`InvalidRow`] for each row that cannot be imported.
//!
//! Both carry the row number so that a later failure (e.g. a duplicate found while
//! appending) and every validation message can point at the exact line in the source.

use std::fmt;
use std::path::PathBuf;

use optout_core::{MemberId, Purpose, Source, Timestamp};

/// A valid row: one historical choice, ready to be appended to the ledger.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ImportedChoice {
    pub member: MemberId,
    pub purpose: Purpose,
    pub allowed: bool,
    pub at: Timestamp,
    /// From the `source` column; [`Source::Import`] when the column is absent or empty.
    pub source: Source,
    /// The row this came from; numbered as in [`InvalidRow::row`].
    pub row: u64,
}

/// A row that cannot be imported, and why.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvalidRow {
    pub file: PathBuf,
    /// The 1-based number of the data row: the header of a CSV file is not counted, so
    /// row 1 is the first record after it. In JSON Lines, row N is line N (blank lines
    /// are skipped but counted). In Parquet, row N is the N-th row of the file.
    pub row: u64,
    /// The first column found invalid (columns are checked in the order `member_id`,
    /// `purpose`, `allowed`, `at`, `source`), or `None` when the row as a whole is
    /// unreadable (e.g. malformed JSON).
    pub column: Option<String>,
    pub reason: String,
}

impl fmt::Display for InvalidRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: row {}: ", self.file.display(), self.row)?;
        if let Some(column) = &self.column {
            write!(f, "column {column}: ")?;
        }
        f.write_str(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_row_and_column() {
        let mut invalid = InvalidRow {
            file: PathBuf::from("in/choices.csv"),
            row: 7,
            column: Some("purpose".to_string()),
            reason: "missing".to_string(),
        };
        assert_eq!(
            invalid.to_string(),
            "in/choices.csv: row 7: column purpose: missing"
        );
        invalid.column = None;
        assert_eq!(invalid.to_string(), "in/choices.csv: row 7: missing");
    }
}
