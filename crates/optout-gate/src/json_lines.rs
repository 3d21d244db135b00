//! JSON Lines on both sides of the gate: reading input rows (one JSON object a line,
//! the id a non-negative integer, the jurisdiction a string), and writing Arrow values
//! as JSON for JSON Lines output of Parquet inputs.
//!
//! Values are carried as parsed JSON, so a JSON Lines dataset keeps its fields exactly as
//! they were; Arrow types without an obvious JSON form are refused when the run is
//! planned, not half way through it.

use std::io::BufRead;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};
use optout_core::Timestamp;
use serde_json::{Map, Value};

use crate::error::GateError;

/// Whether JSON Lines output can carry a column of this type.
pub fn json_supported(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Timestamp(_, _) => true,
        DataType::List(item) | DataType::LargeList(item) => json_supported(item.data_type()),
        _ => false,
    }
}

/// The JSON form of row `row` of `array` (types checked by [`json_supported`]).
pub fn json_value(array: &dyn Array, row: usize) -> Value {
    if row >= array.len() || array.is_null(row) {
        return Value::Null;
    }
    macro_rules! number {
        ($type:ty) => {
            array
                .as_primitive_opt::<$type>()
                .map_or(Value::Null, |values| Value::from(values.value(row)))
        };
    }
    match array.data_type() {
        DataType::Boolean => array
            .as_boolean_opt()
            .map_or(Value::Null, |values| Value::Bool(values.value(row))),
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float32 => number!(Float32Type),
        DataType::Float64 => number!(Float64Type),
        DataType::Utf8 => array
            .as_string_opt::<i32>()
            .map_or(Value::Null, |values| Value::from(values.value(row))),
        DataType::LargeUtf8 => array
            .as_string_opt::<i64>()
            .map_or(Value::Null, |values| Value::from(values.value(row))),
        DataType::Utf8View => array
            .as_string_view_opt()
            .map_or(Value::Null, |values| Value::from(values.value(row))),
        DataType::List(_) => array
            .as_list_opt::<i32>()
            .map_or(Value::Null, |list| list_value(list.value(row).as_ref())),
        DataType::LargeList(_) => array
            .as_list_opt::<i64>()
            .map_or(Value::Null, |list| list_value(list.value(row).as_ref())),
        DataType::Timestamp(unit, _) => {
            let value = match unit {
                TimeUnit::Second => array
                    .as_primitive_opt::<TimestampSecondType>()
                    .and_then(|values| values.value(row).checked_mul(1_000_000)),
                TimeUnit::Millisecond => array
                    .as_primitive_opt::<TimestampMillisecondType>()
                    .and_then(|values| values.value(row).checked_mul(1_000)),
                TimeUnit::Microsecond => array
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .map(|values| values.value(row)),
                TimeUnit::Nanosecond => array
                    .as_primitive_opt::<TimestampNanosecondType>()
                    .map(|values| values.value(row) / 1_000),
            };
            value.map_or(Value::Null, |micros| {
                Value::from(Timestamp::from_micros(micros).to_rfc3339())
            })
        }
        _ => Value::Null,
    }
}

fn list_value(items: &dyn Array) -> Value {
    Value::Array((0..items.len()).map(|row| json_value(items, row)).collect())
}

/// One parsed input line.
pub struct JsonRow {
    /// 1-based line number.
    pub line: u64,
    pub object: Map<String, Value>,
}

/// Calls `visit` for each non-blank line of a JSON Lines file; a line that is not a JSON
/// object stops the read with an error naming the file and line.
pub fn read_rows(
    path: &Path,
    mut visit: impl FnMut(JsonRow) -> Result<(), GateError>,
) -> Result<(), GateError> {
    let file = std::fs::File::open(path).map_err(|error| GateError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|error| {
            // Bytes that are not UTF-8 are the file's fault; any other failure the device's.
            if error.kind() == std::io::ErrorKind::InvalidData {
                GateError::Corrupt {
                    path: path.to_path_buf(),
                    format: "JSON Lines",
                    reason: format!("line {}: {error}", number + 1),
                }
            } else {
                GateError::Unreadable {
                    path: path.to_path_buf(),
                    error,
                }
            }
        })?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let object: Map<String, Value> =
            serde_json::from_str(&line).map_err(|error| GateError::Corrupt {
                path: path.to_path_buf(),
                format: "JSON Lines",
                reason: format!("line {number} is not a JSON object: {error}"),
            })?;
        visit(JsonRow {
            line: number,
            object,
        })?;
    }
}

/// A JSON id: a non-negative integer that fits in 64 bits.
pub fn json_id(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}
