//! `Format`: which of the three supported file formats an import reads.
//!
//! The format is normally told by the file's extension, but exports from other systems
//! are often named oddly (`choices.txt`, `part-0000`), so the caller can always name it
//! explicitly instead (e.g. from a `--format` flag).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::ImportError;

/// A file format that choices can be imported from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Format {
    /// Apache Parquet, read column by column in record batches.
    Parquet,
    /// Comma-separated values with a header line naming the columns.
    Csv,
    /// One JSON object per line (also known as NDJSON).
    JsonLines,
}

/// A format name that is not one of `parquet`, `csv`, `jsonl` (or `ndjson`, `json`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {input:?}: expected parquet, csv or jsonl")]
pub struct FormatError {
    pub input: String,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Parquet, Format::Csv, Format::JsonLines];

    /// Tells the format from the file's extension, ignoring case: `.parquet`, `.csv`,
    /// `.jsonl`, `.ndjson` or `.json` (read as JSON Lines: one object per line).
    pub fn from_path(path: &Path) -> Result<Format, ImportError> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("parquet") => Ok(Format::Parquet),
            Some("csv") => Ok(Format::Csv),
            Some("jsonl" | "ndjson" | "json") => Ok(Format::JsonLines),
            _ => Err(ImportError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The name used in messages and accepted by `FromStr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" | "json-lines" => Ok(Format::JsonLines),
            _ => Err(FormatError {
                input: s.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_format_from_extension_ignoring_case() {
        assert_eq!(
            Format::from_path(Path::new("a/b.parquet")).unwrap(),
            Format::Parquet
        );
        assert_eq!(Format::from_path(Path::new("b.CSV")).unwrap(), Format::Csv);
        for name in ["b.jsonl", "b.ndjson", "b.json"] {
            assert_eq!(
                Format::from_path(Path::new(name)).unwrap(),
                Format::JsonLines
            );
        }
        for name in ["b.txt", "b", "parquet"] {
            let error = Format::from_path(Path::new(name)).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn parses_names_it_displays() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>().unwrap(), format);
        }
        assert!("xml".parse::<Format>().is_err());
    }
}
