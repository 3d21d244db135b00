//! Reading choices from Parquet: record batch by record batch through arrow, decoding
//! only the five columns an import needs, so a ten-million-row file streams in bounded
//! memory and at the speed of the columnar decoder.
//!
//! Column types are checked once against the file's schema, before any row is read: a
//! wrong type is a schema error for the whole file, not ten million invalid rows.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt32Type, UInt64Type,
};
use arrow_array::{
    AnyDictionaryArray, Array, BooleanArray, LargeStringArray, PrimitiveArray, RecordBatch,
    StringArray, StringViewArray,
};
use arrow_schema::{DataType, Schema, TimeUnit};
use optout_core::{MemberId, Timestamp};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::batch::Batcher;
use crate::choice::ImportedChoice;
use crate::error::{ImportError, ReadError};
use crate::field::{
    member_id_from_signed, missing, source_from_text, time_from_text, Column, InColumn,
    PurposeCatalog, RowError,
};
use crate::format::Format;

const INTEGER_TYPES: &str = "an integer (UInt64, Int64, UInt32 or Int32)";
const TEXT_TYPES: &str = "a string (Utf8, LargeUtf8, Utf8View or a dictionary of them)";
const TIME_TYPES: &str = "a timestamp (any unit) or an RFC 3339 string";

pub(crate) fn read<E>(
    path: &Path,
    catalog: &PurposeCatalog<'_>,
    batcher: &mut Batcher<'_, E>,
) -> Result<(), ReadError<E>> {
    let file = File::open(path).map_err(|error| ImportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| corrupt(path, error))?;
    let roots = needed_roots(path, builder.schema())?;
    let projection = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(projection)
        .with_batch_size(batcher.batch_rows())
        .build()
        .map_err(|error| corrupt(path, error))?;
    let mut row: u64 = 0;
    for batch in reader {
        let batch = batch.map_err(|error| corrupt(path, error))?;
        let columns = BatchColumns::new(path, &batch)?;
        for index in 0..batch.num_rows() {
            row += 1;
            batcher.push(row, columns.choice(index, row, catalog))?;
        }
    }
    Ok(())
}

fn corrupt(path: &Path, error: impl std::fmt::Display) -> ImportError {
    ImportError::Corrupt {
        path: path.to_path_buf(),
        format: Format::Parquet,
        reason: error.to_string(),
    }
}

fn schema_error(path: &Path, column: Column, reason: String) -> ImportError {
    ImportError::Schema {
        path: path.to_path_buf(),
        column: column.name().to_string(),
        reason,
    }
}

/// Checks that each needed column is present once with a usable type, and returns the
/// indices of the top-level columns to decode (one per Arrow field).
fn needed_roots(path: &Path, schema: &Schema) -> Result<Vec<usize>, ImportError> {
    let mut roots = Vec::new();
    for column in Column::ALL {
        let mut matches = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.name() == column.name());
        let Some((root, field)) = matches.next() else {
            if column.is_required() {
                return Err(schema_error(
                    path,
                    column,
                    "required column is missing".into(),
                ));
            }
            continue;
        };
        if matches.next().is_some() {
            return Err(schema_error(
                path,
                column,
                "column appears more than once".into(),
            ));
        }
        let (usable, expected) = match column {
            Column::MemberId => (is_integer(field.data_type()), INTEGER_TYPES),
            Column::Purpose | Column::Source => (is_text(field.data_type()), TEXT_TYPES),
            Column::Allowed => (field.data_type() == &DataType::Boolean, "Boolean"),
            Column::At => (is_time(field.data_type()), TIME_TYPES),
        };
        if !usable {
            let reason = format!("has type {}, expected {expected}", field.data_type());
            return Err(schema_error(path, column, reason));
        }
        roots.push(root);
    }
    Ok(roots)
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::UInt64 | DataType::Int64 | DataType::UInt32 | DataType::Int32
    )
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

fn is_time(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(_, _)) || is_text(data_type)
}

/// The needed columns of one record batch, downcast once so the per-row loop only
/// reads values.
struct BatchColumns<'b> {
    member_id: IdColumn<'b>,
    purpose: TextColumn<'b>,
    allowed: &'b BooleanArray,
    at: TimeColumn<'b>,
    source: Option<TextColumn<'b>>,
}

impl<'b> BatchColumns<'b> {
    fn new(path: &Path, batch: &'b RecordBatch) -> Result<Self, ImportError> {
        // The schema was checked before reading, so failures here mean the reader
        // returned something other than what the file's schema promised.
        let array = |column: Column| -> Result<&'b dyn Array, ImportError> {
            batch
                .column_by_name(column.name())
                .map(|array| array.as_ref())
                .ok_or_else(|| schema_error(path, column, "column is missing from a batch".into()))
        };
        let unexpected = |column: Column, array: &dyn Array| {
            let reason = format!("unexpected type {} in a batch", array.data_type());
            schema_error(path, column, reason)
        };
        let member_id = array(Column::MemberId)?;
        let purpose = array(Column::Purpose)?;
        let allowed = array(Column::Allowed)?;
        let at = array(Column::At)?;
        let source = match batch.column_by_name(Column::Source.name()) {
            None => None,
            Some(source) => Some(
                TextColumn::new(source.as_ref())
                    .ok_or_else(|| unexpected(Column::Source, source.as_ref()))?,
            ),
        };
        Ok(BatchColumns {
            member_id: IdColumn::new(member_id)
                .ok_or_else(|| unexpected(Column::MemberId, member_id))?,
            purpose: TextColumn::new(purpose)
                .ok_or_else(|| unexpected(Column::Purpose, purpose))?,
            allowed: allowed
                .as_boolean_opt()
                .ok_or_else(|| unexpected(Column::Allowed, allowed))?,
            at: TimeColumn::new(at).ok_or_else(|| unexpected(Column::At, at))?,
            source,
        })
    }

    fn choice(
        &self,
        index: usize,
        row: u64,
        catalog: &PurposeCatalog<'_>,
    ) -> Result<ImportedChoice, RowError> {
        // Fields are evaluated in the order written, which is the order columns are
        // checked in: the first failing one is the column reported.
        Ok(ImportedChoice {
            member: self.member_id.get(index).in_column(Column::MemberId)?,
            purpose: catalog
                .resolve(self.purpose.get(index).unwrap_or_default())
                .in_column(Column::Purpose)?,
            allowed: present(self.allowed, index)
                .ok_or_else(missing)
                .in_column(Column::Allowed)?,
            at: self.at.get(index).in_column(Column::At)?,
            source: source_from_text(self.source.as_ref().and_then(|source| source.get(index)))
                .in_column(Column::Source)?,
            row,
        })
    }
}

/// The value at `index`, or `None` when it is null.
fn present<A: ValueAt>(array: A, index: usize) -> Option<A::Value> {
    array.is_valid(index).then(|| array.value_at(index))
}

/// Reading one value of an array whose nulls are checked by the caller.
trait ValueAt: Array {
    type Value;
    fn value_at(&self, index: usize) -> Self::Value;
}

impl<T: ArrowPrimitiveType> ValueAt for &PrimitiveArray<T> {
    type Value = T::Native;
    fn value_at(&self, index: usize) -> T::Native {
        self.value(index)
    }
}

impl ValueAt for &BooleanArray {
    type Value = bool;
    fn value_at(&self, index: usize) -> bool {
        self.value(index)
    }
}

enum IdColumn<'b> {
    UInt64(&'b PrimitiveArray<UInt64Type>),
    Int64(&'b PrimitiveArray<Int64Type>),
    UInt32(&'b PrimitiveArray<UInt32Type>),
    Int32(&'b PrimitiveArray<Int32Type>),
}

impl<'b> IdColumn<'b> {
    fn new(array: &'b dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::UInt64 => array.as_primitive_opt().map(IdColumn::UInt64),
            DataType::Int64 => array.as_primitive_opt().map(IdColumn::Int64),
            DataType::UInt32 => array.as_primitive_opt().map(IdColumn::UInt32),
            DataType::Int32 => array.as_primitive_opt().map(IdColumn::Int32),
            _ => None,
        }
    }

    fn get(&self, index: usize) -> Result<MemberId, String> {
        match *self {
            IdColumn::UInt64(array) => present(array, index).map(MemberId).ok_or_else(missing),
            IdColumn::Int64(array) => {
                member_id_from_signed(present(array, index).ok_or_else(missing)?)
            }
            IdColumn::UInt32(array) => present(array, index)
                .map(|id| MemberId(u64::from(id)))
                .ok_or_else(missing),
            IdColumn::Int32(array) => {
                member_id_from_signed(i64::from(present(array, index).ok_or_else(missing)?))
            }
        }
    }
}

/// A string column in any of the layouts the Parquet reader may produce: it follows
/// the Arrow schema stored in the file, so files written from LargeUtf8, Utf8View or
/// dictionary arrays come back that way.
enum TextColumn<'b> {
    Utf8(&'b StringArray),
    LargeUtf8(&'b LargeStringArray),
    Utf8View(&'b StringViewArray),
    Dictionary {
        array: &'b dyn AnyDictionaryArray,
        /// `None` when the dictionary has no values (then every key is null).
        keys: Option<Vec<usize>>,
        values: Box<TextColumn<'b>>,
    },
}

impl<'b> TextColumn<'b> {
    fn new(array: &'b dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => array.as_string_opt().map(TextColumn::Utf8),
            DataType::LargeUtf8 => array.as_string_opt().map(TextColumn::LargeUtf8),
            DataType::Utf8View => array.as_string_view_opt().map(TextColumn::Utf8View),
            DataType::Dictionary(_, _) => {
                let dictionary = array.as_any_dictionary_opt()?;
                let values = TextColumn::new(dictionary.values().as_ref())?;
                // `normalized_keys` panics on an empty dictionary.
                let keys = (!dictionary.values().is_empty()).then(|| dictionary.normalized_keys());
                Some(TextColumn::Dictionary {
                    array: dictionary,
                    keys,
                    values: Box::new(values),
                })
            }
            _ => None,
        }
    }

    /// The string at `index`, or `None` when it is null.
    fn get(&self, index: usize) -> Option<&'b str> {
        match self {
            TextColumn::Utf8(array) => array.is_valid(index).then(|| array.value(index)),
            TextColumn::LargeUtf8(array) => array.is_valid(index).then(|| array.value(index)),
            TextColumn::Utf8View(array) => array.is_valid(index).then(|| array.value(index)),
            TextColumn::Dictionary {
                array,
                keys,
                values,
            } => {
                if array.is_null(index) {
                    return None;
                }
                let key = keys.as_ref()?.get(index).copied()?;
                values.get(key)
            }
        }
    }
}

enum TimeColumn<'b> {
    Text(TextColumn<'b>),
    Seconds(&'b PrimitiveArray<TimestampSecondType>),
    Milliseconds(&'b PrimitiveArray<TimestampMillisecondType>),
    Microseconds(&'b PrimitiveArray<TimestampMicrosecondType>),
    Nanoseconds(&'b PrimitiveArray<TimestampNanosecondType>),
}

impl<'b> TimeColumn<'b> {
    fn new(array: &'b dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                array.as_primitive_opt().map(TimeColumn::Seconds)
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                array.as_primitive_opt().map(TimeColumn::Milliseconds)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                array.as_primitive_opt().map(TimeColumn::Microseconds)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                array.as_primitive_opt().map(TimeColumn::Nanoseconds)
            }
            _ => TextColumn::new(array).map(TimeColumn::Text),
        }
    }

    /// Arrow timestamps count from the epoch in UTC whether or not the column names a
    /// time zone (the zone only says how to display them), so the value is used as is.
    fn get(&self, index: usize) -> Result<Timestamp, String> {
        let (value, unit) = match self {
            TimeColumn::Text(text) => return time_from_text(text.get(index).unwrap_or_default()),
            TimeColumn::Seconds(array) => (present(*array, index), TimeUnit::Second),
            TimeColumn::Milliseconds(array) => (present(*array, index), TimeUnit::Millisecond),
            TimeColumn::Microseconds(array) => (present(*array, index), TimeUnit::Microsecond),
            TimeColumn::Nanoseconds(array) => (present(*array, index), TimeUnit::Nanosecond),
        };
        time_from_units(value.ok_or_else(missing)?, unit)
    }
}

/// Converts a count of `unit`s since the epoch to microseconds, exactly: a nanosecond
/// time that is not a whole microsecond is refused rather than truncated.
fn time_from_units(value: i64, unit: TimeUnit) -> Result<Timestamp, String> {
    let micros = match unit {
        TimeUnit::Second => value.checked_mul(1_000_000),
        TimeUnit::Millisecond => value.checked_mul(1_000),
        TimeUnit::Microsecond => Some(value),
        TimeUnit::Nanosecond => {
            if value % 1_000 != 0 {
                return Err(format!(
                    "time {value} ns is not a whole number of microseconds"
                ));
            }
            Some(value / 1_000)
        }
    };
    micros
        .map(Timestamp::from_micros)
        .ok_or_else(|| format!("time {value} {unit:?}s is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_unit_to_exact_microseconds() {
        let micros = |value, unit| time_from_units(value, unit).map(Timestamp::as_micros);
        assert_eq!(micros(2, TimeUnit::Second), Ok(2_000_000));
        assert_eq!(micros(-3, TimeUnit::Millisecond), Ok(-3_000));
        assert_eq!(micros(7, TimeUnit::Microsecond), Ok(7));
        assert_eq!(micros(-7_000, TimeUnit::Nanosecond), Ok(-7));
        assert!(micros(7_001, TimeUnit::Nanosecond).is_err());
        assert!(micros(-1_500, TimeUnit::Nanosecond).is_err());
        assert!(micros(i64::MAX, TimeUnit::Second).is_err());
    }
}
