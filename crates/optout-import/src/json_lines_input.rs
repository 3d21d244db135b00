//! Reading choices from JSON Lines: one JSON object per line, keys named like the
//! columns (extra keys ignored), read one line at a time into a reused buffer.
//!
//! JSON has no schema to check up front, so a missing key is an invalid row rather than
//! a schema error. A line longer than [`JSON_LINE_BYTES_MAX`] is an invalid row and is
//! skipped without being held in memory, so one runaway line cannot exhaust it.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use optout_core::{MemberId, Source};

use crate::batch::Batcher;
use crate::choice::ImportedChoice;
use crate::error::{ImportError, ReadError};
use crate::field::{
    member_id_from_text, missing, quoted, source_from_text, time_from_text, Column, InColumn,
    PurposeCatalog, RowError,
};

/// Longest line accepted, in bytes (without the line break).
pub const JSON_LINE_BYTES_MAX: usize = 1 << 20;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) fn read<E>(
    path: &Path,
    catalog: &PurposeCatalog<'_>,
    batcher: &mut Batcher<'_, E>,
) -> Result<(), ReadError<E>> {
    let io_error = |error| ImportError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_error)?);
    let mut line = Vec::new();
    let mut row: u64 = 0;
    while let Some(length) =
        next_line(&mut reader, &mut line, JSON_LINE_BYTES_MAX).map_err(io_error)?
    {
        row += 1;
        let outcome = match length {
            LineLength::TooLong => Err(RowError::whole_row(format!(
                "line is longer than {JSON_LINE_BYTES_MAX} bytes"
            ))),
            LineLength::Within => {
                let text = match row {
                    1 => line.strip_prefix(UTF8_BOM).unwrap_or(&line),
                    _ => &line,
                };
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                choice(text, row, catalog)
            }
        };
        batcher.push(row, outcome)?;
    }
    Ok(())
}

enum LineLength {
    Within,
    /// Longer than the limit; the line's bytes were dropped.
    TooLong,
}

/// Reads the next line into `line` without its `\n` or `\r\n`; `None` at the end of the
/// input. Past `bytes_max` bytes the rest of the line is read and dropped.
fn next_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    bytes_max: usize,
) -> io::Result<Option<LineLength>> {
    line.clear();
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            break;
        }
        read_any = true;
        let newline = available.iter().position(|&byte| byte == b'\n');
        let chunk = available
            .get(..newline.unwrap_or(available.len()))
            .unwrap_or_default();
        too_long = too_long || line.len().saturating_add(chunk.len()) > bytes_max;
        if too_long {
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        let consumed = chunk.len() + usize::from(newline.is_some());
        reader.consume(consumed);
        if newline.is_some() {
            break;
        }
    }
    if !read_any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(if too_long {
        LineLength::TooLong
    } else {
        LineLength::Within
    }))
}

/// The keys of one line. Values are kept as JSON so each column gets its own message
/// ("expected a boolean") instead of serde's positional one; `null` reads as absent.
#[derive(Deserialize)]
struct JsonRow {
    member_id: Option<Value>,
    purpose: Option<Value>,
    allowed: Option<Value>,
    at: Option<Value>,
    source: Option<Value>,
}

fn choice(line: &[u8], row: u64, catalog: &PurposeCatalog<'_>) -> Result<ImportedChoice, RowError> {
    // Serde would also accept an array, matching its items to fields by position.
    let first = line.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(RowError::whole_row("expected a JSON object".to_string()));
    }
    let fields: JsonRow = serde_json::from_slice(line)
        .map_err(|error| RowError::whole_row(format!("malformed JSON: {error}")))?;
    Ok(ImportedChoice {
        member: member_id(fields.member_id.as_ref()).in_column(Column::MemberId)?,
        purpose: text(fields.purpose.as_ref())
            .and_then(|name| catalog.resolve(name))
            .in_column(Column::Purpose)?,
        allowed: allowed(fields.allowed.as_ref()).in_column(Column::Allowed)?,
        at: text(fields.at.as_ref())
            .and_then(time_from_text)
            .in_column(Column::At)?,
        source: source(fields.source.as_ref()).in_column(Column::Source)?,
        row,
    })
}

/// A number, or a string of decimal digits (for writers that cannot emit integers
/// above 2^53 exactly).
fn member_id(value: Option<&Value>) -> Result<MemberId, String> {
    match value {
        None => Err(missing()),
        Some(Value::Number(number)) => match (number.as_u64(), number.as_i64()) {
            (Some(id), _) => Ok(MemberId(id)),
            (None, Some(negative)) => Err(format!("negative member id {negative}")),
            (None, None) => Err(format!(
                "expected a whole number from 0 to {}, found {number}",
                u64::MAX
            )),
        },
        Some(Value::String(digits)) => member_id_from_text(digits),
        Some(other) => Err(format!(
            "expected an integer or a string of digits, found {}",
            describe(other)
        )),
    }
}

/// A string value; absent reads as empty, which the value's own check calls missing.
fn text(value: Option<&Value>) -> Result<&str, String> {
    match value {
        None => Ok(""),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(format!("expected a string, found {}", describe(other))),
    }
}

fn allowed(value: Option<&Value>) -> Result<bool, String> {
    match value {
        None => Err(missing()),
        Some(Value::Bool(allowed)) => Ok(*allowed),
        Some(other) => Err(format!("expected true or false, found {}", describe(other))),
    }
}

fn source(value: Option<&Value>) -> Result<Source, String> {
    match value {
        None => Ok(Source::Import),
        Some(Value::String(name)) => source_from_text(Some(name)),
        Some(other) => Err(format!("expected a string, found {}", describe(other))),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(value) => format!("boolean {value}"),
        Value::Number(value) => format!("number {value}"),
        Value::String(value) => format!("string {}", quoted(value)),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], bytes_max: usize) -> Vec<Option<String>> {
        let mut reader = input;
        let mut line = Vec::new();
        let mut found = Vec::new();
        while let Some(length) = next_line(&mut reader, &mut line, bytes_max).unwrap() {
            found.push(match length {
                LineLength::Within => Some(String::from_utf8(line.clone()).unwrap()),
                LineLength::TooLong => None,
            });
        }
        found
    }

    #[test]
    fn splits_lines_and_drops_overlong_ones() {
        assert_eq!(lines(b"", 10), Vec::<Option<String>>::new());
        assert_eq!(
            lines(b"a\r\nb\n\nc", 10),
            [
                Some("a".into()),
                Some("b".into()),
                Some("".into()),
                Some("c".into())
            ]
        );
        assert_eq!(lines(b"0123456789x\nok\n", 10), [None, Some("ok".into())]);
        assert_eq!(lines(b"0123456789\n", 10), [Some("0123456789".into())]);
    }

    #[test]
    fn member_ids_may_be_numbers_or_digit_strings() {
        let id = |json: &str| member_id(Some(&serde_json::from_str(json).unwrap()));
        assert_eq!(id("18446744073709551615"), Ok(MemberId(u64::MAX)));
        assert_eq!(id("\"18446744073709551615\""), Ok(MemberId(u64::MAX)));
        assert!(id("-1").unwrap_err().contains("negative"));
        assert!(id("18446744073709551616").is_err());
        assert!(id("1.0").is_err());
        assert!(id("true").unwrap_err().contains("boolean"));
    }
}
