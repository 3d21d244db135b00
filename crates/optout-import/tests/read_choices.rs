//! End-to-end tests of `read_choices`: small Parquet, CSV and JSON Lines files written to
//! a temporary directory, read back through the public API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{StringDictionaryBuilder, UInt64Builder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use optout_core::{MemberId, Purpose, Source, Timestamp};
use optout_import::{
    read_choices, validate_choices, Format, ImportError, ImportedChoice, InvalidRow, ReadError,
    ReadSummary,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const ID_2_32_PLUS_1: u64 = (1 << 32) + 1;

fn known_purposes() -> BTreeSet<Purpose> {
    ["ai_training", "ai_personalization"]
        .into_iter()
        .map(|name| Purpose::new(name).unwrap())
        .collect()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn choice(
    member: u64,
    purpose: &str,
    allowed: bool,
    time: &str,
    source: Source,
    row: u64,
) -> ImportedChoice {
    ImportedChoice {
        member: MemberId(member),
        purpose: Purpose::new(purpose).unwrap(),
        allowed,
        at: at(time),
        source,
        row,
    }
}

/// Everything one read produced.
#[derive(Debug)]
struct Outcome {
    choices: Vec<ImportedChoice>,
    batch_sizes: Vec<usize>,
    invalid: Vec<InvalidRow>,
    summary: ReadSummary,
}

impl Outcome {
    /// `(row, column)` of each invalid row, in the order reported.
    fn invalid_cells(&self) -> Vec<(u64, Option<&str>)> {
        self.invalid
            .iter()
            .map(|invalid| (invalid.row, invalid.column.as_deref()))
            .collect()
    }

    fn rows(&self) -> Vec<u64> {
        self.choices.iter().map(|choice| choice.row).collect()
    }
}

fn read_with(path: &Path, format: Format, batch_rows: usize) -> Result<Outcome, ImportError> {
    let mut choices = Vec::new();
    let mut batch_sizes = Vec::new();
    let mut invalid = Vec::new();
    let summary = read_choices(
        path,
        format,
        &known_purposes(),
        batch_rows,
        |batch| {
            batch_sizes.push(batch.len());
            choices.extend(batch);
            Ok::<(), Infallible>(())
        },
        |row| invalid.push(row),
    )?;
    assert_eq!(summary.rows_valid, choices.len() as u64);
    assert_eq!(summary.rows_invalid, invalid.len() as u64);
    assert_eq!(
        summary.rows_total,
        summary.rows_valid + summary.rows_invalid
    );
    Ok(Outcome {
        choices,
        batch_sizes,
        invalid,
        summary,
    })
}

fn read(path: &Path) -> Result<Outcome, ImportError> {
    read_with(path, Format::from_path(path).unwrap(), 1024)
}

fn write_text(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn write_parquet(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> PathBuf {
    write_parquet_with(dir, name, columns, None)
}

fn write_parquet_with(
    dir: &Path,
    name: &str,
    columns: Vec<(&str, ArrayRef)>,
    properties: Option<WriterProperties>,
) -> PathBuf {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), properties).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn booleans(values: &[Option<bool>]) -> ArrayRef {
    Arc::new(BooleanArray::from(values.to_vec()))
}

fn micros(times: &[&str]) -> ArrayRef {
    let values: Vec<i64> = times.iter().map(|time| at(time).as_micros()).collect();
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone_utc())
}

/// Asserts the error is a schema error for `column` whose message names the file.
fn assert_schema_error(error: &ImportError, path: &Path, expected_column: &str) {
    let message = error.to_string();
    match error {
        ImportError::Schema {
            path: in_error,
            column,
            ..
        } => {
            assert_eq!(in_error, path);
            assert_eq!(column, expected_column, "{message}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(expected_column), "{message}");
}

mod parquet_files {
    use super::*;

    #[test]
    fn valid_rows_come_back_in_file_order_with_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(
            dir.path(),
            "choices.parquet",
            vec![
                ("note", strings(&[Some("x"), None, Some("z")])),
                ("source", strings(&[Some("web"), None, Some("gpc")])),
                (
                    "member_id",
                    Arc::new(UInt64Array::from(vec![ID_2_32_PLUS_1, u64::MAX, 0])),
                ),
                (
                    "purpose",
                    strings(&[
                        Some("ai_training"),
                        Some("ai_personalization"),
                        Some("ai_training"),
                    ]),
                ),
                ("allowed", booleans(&[Some(false), Some(true), Some(false)])),
                (
                    "at",
                    micros(&[
                        "2024-05-01T10:00:00.123456Z",
                        "1969-12-31T23:59:59.999999Z",
                        "2024-05-01T10:00:00Z",
                    ]),
                ),
            ],
        );
        let outcome = read_with(&path, Format::Parquet, 2).unwrap();
        assert_eq!(
            outcome.choices,
            [
                choice(
                    ID_2_32_PLUS_1,
                    "ai_training",
                    false,
                    "2024-05-01T10:00:00.123456Z",
                    Source::Web,
                    1
                ),
                choice(
                    u64::MAX,
                    "ai_personalization",
                    true,
                    "1969-12-31T23:59:59.999999Z",
                    Source::Import,
                    2
                ),
                choice(
                    0,
                    "ai_training",
                    false,
                    "2024-05-01T10:00:00Z",
                    Source::Gpc,
                    3
                ),
            ]
        );
        assert_eq!(outcome.batch_sizes, [2, 1]);
        assert!(outcome.invalid.is_empty());
    }

    #[test]
    fn timestamps_of_every_unit_convert_to_exact_microseconds() {
        // Each unit encodes the same instants; nanoseconds that are not whole
        // microseconds must be refused, not truncated.
        let dir = tempfile::tempdir().unwrap();
        let base = at("2024-05-01T10:00:00Z").as_micros();
        let times: Vec<(&str, ArrayRef, Vec<i64>)> = vec![
            (
                "s",
                Arc::new(TimestampSecondArray::from(vec![base / 1_000_000, -1])),
                vec![base, -1_000_000],
            ),
            (
                "ms",
                Arc::new(
                    TimestampMillisecondArray::from(vec![base / 1_000 + 5, -1])
                        .with_timezone("+02:00"),
                ),
                vec![base + 5_000, -1_000],
            ),
            (
                "us",
                Arc::new(TimestampMicrosecondArray::from(vec![base + 7, -1])),
                vec![base + 7, -1],
            ),
            (
                "ns",
                Arc::new(
                    TimestampNanosecondArray::from(vec![(base + 9) * 1_000, -1_000])
                        .with_timezone_utc(),
                ),
                vec![base + 9, -1],
            ),
        ];
        for (unit, array, expected) in times {
            let path = write_parquet(
                dir.path(),
                &format!("{unit}.parquet"),
                vec![
                    ("member_id", Arc::new(UInt64Array::from(vec![1, 2]))),
                    (
                        "purpose",
                        strings(&[Some("ai_training"), Some("ai_training")]),
                    ),
                    ("allowed", booleans(&[Some(true), Some(false)])),
                    ("at", array),
                ],
            );
            let outcome = read(&path).unwrap();
            let found: Vec<i64> = outcome.choices.iter().map(|c| c.at.as_micros()).collect();
            assert_eq!(found, expected, "unit {unit}");
        }

        let path = write_parquet(
            dir.path(),
            "ns-fraction.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(vec![1, 2]))),
                (
                    "purpose",
                    strings(&[Some("ai_training"), Some("ai_training")]),
                ),
                ("allowed", booleans(&[Some(true), Some(false)])),
                (
                    "at",
                    Arc::new(TimestampNanosecondArray::from(vec![
                        base * 1_000 + 1,
                        base * 1_000,
                    ])),
                ),
            ],
        );
        let outcome = read(&path).unwrap();
        assert_eq!(outcome.invalid_cells(), [(1, Some("at"))]);
        assert_eq!(outcome.rows(), [2]);
    }

    #[test]
    fn each_invalid_value_is_reported_with_its_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let time = "2024-05-01T10:00:00Z";
        let path = write_parquet(
            dir.path(),
            "bad.parquet",
            vec![
                (
                    "member_id",
                    Arc::new(Int64Array::from(vec![
                        Some(1),
                        None,
                        Some(-3),
                        Some(4),
                        Some(5),
                        Some(6),
                        Some(7),
                        Some(8),
                    ])),
                ),
                (
                    "purpose",
                    strings(&[
                        Some("ai_training"),
                        Some("ai_training"),
                        Some("ai_training"),
                        Some("ads"),
                        Some("ai_training"),
                        Some("ai_training"),
                        Some("ai_training"),
                        Some("ai_training"),
                    ]),
                ),
                (
                    "allowed",
                    booleans(&[
                        Some(true),
                        Some(true),
                        Some(true),
                        Some(true),
                        None,
                        Some(true),
                        Some(true),
                        Some(true),
                    ]),
                ),
                (
                    "at",
                    strings(&[
                        Some(time),
                        Some(time),
                        Some(time),
                        Some(time),
                        Some(time),
                        Some("yesterday"),
                        Some(time),
                        Some(time),
                    ]),
                ),
                (
                    "source",
                    strings(&[
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        Some("fax"),
                        Some("admin"),
                    ]),
                ),
            ],
        );
        let outcome = read(&path).unwrap();
        assert_eq!(
            outcome.invalid_cells(),
            [
                (2, Some("member_id")),
                (3, Some("member_id")),
                (4, Some("purpose")),
                (5, Some("allowed")),
                (6, Some("at")),
                (7, Some("source")),
            ]
        );
        let reasons: Vec<&str> = outcome.invalid.iter().map(|i| i.reason.as_str()).collect();
        assert!(reasons[0].contains("missing"), "{reasons:?}");
        assert!(reasons[1].contains("negative"), "{reasons:?}");
        assert!(
            reasons[2].contains("unknown purpose \"ads\""),
            "{reasons:?}"
        );
        assert!(reasons[4].contains("yesterday"), "{reasons:?}");
        assert!(reasons[5].contains("fax"), "{reasons:?}");
        assert_eq!(
            outcome.invalid[1].to_string(),
            format!(
                "{}: row 3: column member_id: negative member id -3",
                path.display()
            )
        );
        assert_eq!(
            outcome.choices,
            [
                choice(1, "ai_training", true, time, Source::Import, 1),
                choice(8, "ai_training", true, time, Source::Admin, 8),
            ]
        );
    }

    #[test]
    fn signed_32_bit_ids_are_accepted_when_not_negative() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(
            dir.path(),
            "int32.parquet",
            vec![
                ("member_id", Arc::new(Int32Array::from(vec![i32::MAX, -1]))),
                (
                    "purpose",
                    strings(&[Some("ai_training"), Some("ai_training")]),
                ),
                ("allowed", booleans(&[Some(true), Some(true)])),
                (
                    "at",
                    micros(&["2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"]),
                ),
            ],
        );
        let outcome = read(&path).unwrap();
        assert_eq!(outcome.choices[0].member, MemberId(i32::MAX as u64));
        assert_eq!(outcome.invalid_cells(), [(2, Some("member_id"))]);
    }

    #[test]
    fn large_view_and_dictionary_strings_are_read_like_plain_ones() {
        // The reader returns string columns in the layout recorded in the file's Arrow
        // schema, so each layout must be understood for purpose, at and source.
        let dir = tempfile::tempdir().unwrap();
        let mut purposes = StringDictionaryBuilder::<Int32Type>::new();
        purposes.append_value("ai_training");
        purposes.append_null();
        let path = write_parquet(
            dir.path(),
            "layouts.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(vec![1, 2]))),
                ("purpose", Arc::new(purposes.finish())),
                ("allowed", booleans(&[Some(true), Some(false)])),
                (
                    "at",
                    Arc::new(LargeStringArray::from(vec![
                        "2024-05-01T12:00:00.5+02:00",
                        "2024-05-01T10:00:00Z",
                    ])),
                ),
                (
                    "source",
                    Arc::new(StringViewArray::from(vec![Some("mobile"), None])),
                ),
            ],
        );
        let stored = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .schema()
            .clone();
        let types: Vec<String> = stored
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(
            types[1..],
            [
                "Dictionary(Int32, Utf8)",
                "Boolean",
                "LargeUtf8",
                "Utf8View"
            ][..]
        );
        let outcome = read(&path).unwrap();
        assert_eq!(
            outcome.choices,
            [choice(
                1,
                "ai_training",
                true,
                "2024-05-01T10:00:00.5Z",
                Source::Mobile,
                1
            )]
        );
        assert_eq!(outcome.invalid_cells(), [(2, Some("purpose"))]);
    }

    #[test]
    fn row_numbers_continue_across_row_groups_and_batches() {
        let dir = tempfile::tempdir().unwrap();
        let rows = 1_000_u64;
        let mut ids = UInt64Builder::new();
        let mut purposes = Vec::new();
        for id in 1..=rows {
            ids.append_value(id);
            // Every 100th row has an unknown purpose.
            purposes.push(Some(if id % 100 == 0 { "ads" } else { "ai_training" }));
        }
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(64))
            .build();
        let path = write_parquet_with(
            dir.path(),
            "groups.parquet",
            vec![
                ("member_id", Arc::new(ids.finish())),
                ("purpose", strings(&purposes)),
                ("allowed", booleans(&vec![Some(true); rows as usize])),
                ("at", micros(&vec!["2024-05-01T10:00:00Z"; rows as usize])),
            ],
            Some(properties),
        );
        let outcome = read_with(&path, Format::Parquet, 50).unwrap();
        assert_eq!(outcome.summary.rows_total, rows);
        let invalid_rows: Vec<u64> = outcome.invalid.iter().map(|i| i.row).collect();
        assert_eq!(invalid_rows, (1..=10).map(|n| n * 100).collect::<Vec<_>>());
        assert!(outcome.choices.iter().all(|c| c.row == c.member.get()));
        assert!(outcome.batch_sizes.iter().all(|&size| size <= 50));
        assert_eq!(outcome.choices.len(), 990);
    }

    #[test]
    fn missing_required_column_is_a_schema_error_naming_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(
            dir.path(),
            "no-allowed.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(vec![1]))),
                ("purpose", strings(&[Some("ai_training")])),
                ("at", micros(&["2024-05-01T10:00:00Z"])),
            ],
        );
        assert_schema_error(&read(&path).unwrap_err(), &path, "allowed");
    }

    #[test]
    fn wrong_column_types_are_schema_errors_naming_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(
            dir.path(),
            "text-id.parquet",
            vec![
                ("member_id", strings(&[Some("1")])),
                ("purpose", strings(&[Some("ai_training")])),
                ("allowed", booleans(&[Some(true)])),
                ("at", micros(&["2024-05-01T10:00:00Z"])),
            ],
        );
        let error = read(&path).unwrap_err();
        assert_schema_error(&error, &path, "member_id");
        assert!(error.to_string().contains("has type Utf8"), "{error}");

        let path = write_parquet(
            dir.path(),
            "int-allowed.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(vec![1]))),
                ("purpose", strings(&[Some("ai_training")])),
                ("allowed", Arc::new(Int32Array::from(vec![1]))),
                ("at", micros(&["2024-05-01T10:00:00Z"])),
            ],
        );
        assert_schema_error(&read(&path).unwrap_err(), &path, "allowed");
    }

    #[test]
    fn source_column_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(
            dir.path(),
            "no-source.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(vec![1]))),
                ("purpose", strings(&[Some("ai_training")])),
                ("allowed", booleans(&[Some(true)])),
                ("at", micros(&["2024-05-01T10:00:00Z"])),
            ],
        );
        let outcome = read(&path).unwrap();
        assert_eq!(outcome.choices[0].source, Source::Import);
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let whole = write_parquet(
            dir.path(),
            "whole.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(vec![1, 2, 3]))),
                ("purpose", strings(&[Some("ai_training"); 3])),
                ("allowed", booleans(&[Some(true); 3])),
                ("at", micros(&["2024-05-01T10:00:00Z"; 3])),
            ],
        );
        let bytes = std::fs::read(&whole).unwrap();
        let cases = [
            ("truncated.parquet", bytes[..bytes.len() / 2].to_vec()),
            ("footer-cut.parquet", bytes[..bytes.len() - 1].to_vec()),
            ("zero-bytes.parquet", Vec::new()),
            (
                "text.parquet",
                b"member_id,purpose\n1,ai_training\n".to_vec(),
            ),
        ];
        for (name, contents) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            let error = read(&path).unwrap_err();
            assert!(
                matches!(error, ImportError::Corrupt { .. }),
                "{name}: {error:?}"
            );
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{error}"
            );
        }
    }

    #[test]
    fn file_without_rows_gives_zero_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_parquet(
            dir.path(),
            "empty.parquet",
            vec![
                ("member_id", Arc::new(UInt64Array::from(Vec::<u64>::new()))),
                ("purpose", strings(&[])),
                ("allowed", booleans(&[])),
                ("at", micros(&[])),
            ],
        );
        let outcome = read(&path).unwrap();
        assert_eq!(outcome.summary, ReadSummary::default());
        assert!(outcome.batch_sizes.is_empty());
    }

    #[test]
    fn schema_with_nullable_fields_and_utc_zone_matches_the_real_workload() {
        // The production export: UInt64, Utf8, Boolean, Timestamp(us, UTC), Utf8.
        let schema = Schema::new(vec![
            Field::new("member_id", DataType::UInt64, false),
            Field::new("purpose", DataType::Utf8, false),
            Field::new("allowed", DataType::Boolean, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("source", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from(vec![42])),
                strings(&[Some("ai_training")]),
                booleans(&[Some(false)]),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        at("2024-05-01T10:00:00.000001Z").as_micros()
                    ])
                    .with_timezone("UTC"),
                ),
                strings(&[Some("api")]),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.parquet");
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None)
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let outcome = read(&path).unwrap();
        assert_eq!(
            outcome.choices,
            [choice(
                42,
                "ai_training",
                false,
                "2024-05-01T10:00:00.000001Z",
                Source::Api,
                1
            )]
        );
    }
}

mod csv_files {
    use super::*;

    #[test]
    fn valid_rows_come_back_in_file_order_with_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_text(
            dir.path(),
            "choices.csv",
            "\u{feff}at,note,allowed,purpose,member_id,source\r\n\
             2024-05-01T10:00:00.123456Z,\"a, quoted note\",TRUE,ai_training,4294967297,web\r\n\
             2024-05-01T12:00:00.000001+02:00,,no,ai_personalization,18446744073709551615,\r\n\
             \" 2024-05-01T10:00:00Z \",x,1,ai_training, 7 ,GPC\r\n",
        );
        let outcome = read_with(&path, Format::Csv, 2).unwrap();
        assert_eq!(
            outcome.choices,
            [
                choice(
                    ID_2_32_PLUS_1,
                    "ai_training",
                    true,
                    "2024-05-01T10:00:00.123456Z",
                    Source::Web,
                    1
                ),
                choice(
                    u64::MAX,
                    "ai_personalization",
                    false,
                    "2024-05-01T10:00:00.000001Z",
                    Source::Import,
                    2
                ),
                choice(
                    7,
                    "ai_training",
                    true,
                    "2024-05-01T10:00:00Z",
                    Source::Gpc,
                    3
                ),
            ]
        );
        assert_eq!(outcome.batch_sizes, [2, 1]);
        assert!(outcome.invalid.is_empty());
    }

    #[test]
    fn each_invalid_value_is_reported_with_its_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_text(
            dir.path(),
            "bad.csv",
            "member_id,purpose,allowed,at,source\n\
             1,ai_training,true,2024-05-01T10:00:00Z,web\n\
             ,ai_training,true,2024-05-01T10:00:00Z,web\n\
             12a,ai_training,true,2024-05-01T10:00:00Z,web\n\
             -5,ai_training,true,2024-05-01T10:00:00Z,web\n\
             18446744073709551616,ai_training,true,2024-05-01T10:00:00Z,web\n\
             6,ads,true,2024-05-01T10:00:00Z,web\n\
             7,AI Training,true,2024-05-01T10:00:00Z,web\n\
             8,ai_training,maybe,2024-05-01T10:00:00Z,web\n\
             9,ai_training,true,yesterday,web\n\
             10,ai_training,true,2024-05-01T10:00:00.0000001Z,web\n\
             11,ai_training,true,2024-05-01T10:00:00Z,fax\n\
             12,ai_training,true\n\
             13,ai_training,false,2024-05-01T10:00:00Z,api\n",
        );
        let outcome = read(&path).unwrap();
        assert_eq!(
            outcome.invalid_cells(),
            [
                (2, Some("member_id")),
                (3, Some("member_id")),
                (4, Some("member_id")),
                (5, Some("member_id")),
                (6, Some("purpose")),
                (7, Some("purpose")),
                (8, Some("allowed")),
                (9, Some("at")),
                (10, Some("at")),
                (11, Some("source")),
                (12, Some("at")),
            ]
        );
        assert!(
            outcome.invalid[2].reason.contains("negative"),
            "{:?}",
            outcome.invalid[2]
        );
        assert!(
            outcome.invalid[10].reason.contains("3 fields"),
            "{:?}",
            outcome.invalid[10]
        );
        assert_eq!(outcome.rows(), [1, 13]);
        assert_eq!(outcome.choices[1].source, Source::Api);
    }

    #[test]
    fn missing_or_repeated_columns_are_schema_errors_naming_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_text(
            dir.path(),
            "no-at.csv",
            "member_id,purpose,allowed\n1,ai_training,true\n",
        );
        assert_schema_error(&read(&path).unwrap_err(), &path, "at");

        let path = write_text(
            dir.path(),
            "twice.csv",
            "member_id,purpose,allowed,at,purpose\n",
        );
        assert_schema_error(&read(&path).unwrap_err(), &path, "purpose");
    }

    #[test]
    fn empty_file_and_header_only_give_zero_rows() {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in [
            ("empty.csv", ""),
            ("header.csv", "member_id,purpose,allowed,at\n"),
        ] {
            let path = write_text(dir.path(), name, contents);
            let outcome = read(&path).unwrap();
            assert_eq!(outcome.summary, ReadSummary::default(), "{name}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_invalid_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.csv");
        let mut bytes = b"member_id,purpose,allowed,at\n1,ai_tr".to_vec();
        bytes.extend_from_slice(&[0xE9, b'\n']);
        bytes.extend_from_slice(b"2,ai_training,true,2024-05-01T10:00:00Z\n");
        std::fs::write(&path, bytes).unwrap();
        let outcome = read(&path).unwrap();
        assert_eq!(outcome.invalid_cells(), [(1, Some("purpose"))]);
        assert_eq!(outcome.invalid[0].reason, "not valid UTF-8");
        assert_eq!(outcome.rows(), [2]);
    }
}

mod json_lines_files {
    use super::*;

    #[test]
    fn valid_rows_come_back_in_file_order_with_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_text(
            dir.path(),
            "choices.jsonl",
            concat!(
                r#"{"member_id": 4294967297, "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00.123456Z", "source": "web", "extra": [1, {"a": null}]}"#,
                "\r\n",
                "\n",
                r#"{"member_id": 18446744073709551615, "purpose": "ai_personalization", "allowed": false, "at": "2024-05-01T12:00:00.000001+02:00", "source": null}"#,
                "\n",
                r#"{"at": "2024-05-01T10:00:00Z", "allowed": false, "purpose": "ai_training", "member_id": "18446744073709551615"}"#,
            ),
        );
        let outcome = read_with(&path, Format::JsonLines, 2).unwrap();
        assert_eq!(
            outcome.choices,
            [
                choice(
                    ID_2_32_PLUS_1,
                    "ai_training",
                    true,
                    "2024-05-01T10:00:00.123456Z",
                    Source::Web,
                    1
                ),
                choice(
                    u64::MAX,
                    "ai_personalization",
                    false,
                    "2024-05-01T10:00:00.000001Z",
                    Source::Import,
                    3
                ),
                choice(
                    u64::MAX,
                    "ai_training",
                    false,
                    "2024-05-01T10:00:00Z",
                    Source::Import,
                    4
                ),
            ]
        );
        assert_eq!(outcome.batch_sizes, [2, 1]);
        assert_eq!(outcome.summary.rows_total, 3);
    }

    #[test]
    fn each_invalid_value_is_reported_with_its_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"member_id": 1, "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": 2, "purpose": "ai_training", "allowed": true, "at": "#,
            r#"[3, "ai_training", true, "2024-05-01T10:00:00Z"]"#,
            r#"{"purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": null, "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": -6, "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": "12a", "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": 8.5, "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": 9, "purpose": "ads", "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": 10, "purpose": 3, "allowed": true, "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": 11, "purpose": "ai_training", "allowed": "true", "at": "2024-05-01T10:00:00Z"}"#,
            r#"{"member_id": 12, "purpose": "ai_training", "allowed": true, "at": "yesterday"}"#,
            r#"{"member_id": 13, "purpose": "ai_training", "allowed": true, "at": 1714557600}"#,
            r#"{"member_id": 14, "purpose": "ai_training", "allowed": true, "at": "2024-05-01T10:00:00Z", "source": "fax"}"#,
            r#"{"member_id": 15, "purpose": "ai_training", "allowed": false, "at": "2024-05-01T10:00:00Z", "source": "admin"}"#,
        ];
        let path = write_text(dir.path(), "bad.ndjson", &lines.join("\n"));
        let outcome = read(&path).unwrap();
        assert_eq!(
            outcome.invalid_cells(),
            [
                (2, None),
                (3, None),
                (4, Some("member_id")),
                (5, Some("member_id")),
                (6, Some("member_id")),
                (7, Some("member_id")),
                (8, Some("member_id")),
                (9, Some("purpose")),
                (10, Some("purpose")),
                (11, Some("allowed")),
                (12, Some("at")),
                (13, Some("at")),
                (14, Some("source")),
            ]
        );
        assert!(
            outcome.invalid[0].reason.starts_with("malformed JSON"),
            "{:?}",
            outcome.invalid[0]
        );
        assert_eq!(
            outcome.invalid[0].to_string(),
            format!("{}: row 2: {}", path.display(), outcome.invalid[0].reason)
        );
        assert!(
            outcome.invalid[4].reason.contains("negative member id -6"),
            "{:?}",
            outcome.invalid[4]
        );
        assert_eq!(outcome.rows(), [1, 15]);
        assert_eq!(outcome.choices[1].source, Source::Admin);
    }

    #[test]
    fn empty_file_gives_zero_rows() {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\r\n")] {
            let path = write_text(dir.path(), name, contents);
            assert_eq!(
                read(&path).unwrap().summary,
                ReadSummary::default(),
                "{name}"
            );
        }
    }
}

mod reading {
    use super::*;

    fn small_csv(dir: &Path, rows: u64) -> PathBuf {
        let mut text = String::from("member_id,purpose,allowed,at\n");
        for id in 1..=rows {
            text.push_str(&format!("{id},ai_training,true,2024-05-01T10:00:00Z\n"));
        }
        write_text(dir, "many.csv", &text)
    }

    #[test]
    fn callback_error_stops_reading_and_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_csv(dir.path(), 10);
        let mut batches = 0;
        let result = read_choices(
            &path,
            Format::Csv,
            &known_purposes(),
            3,
            |_| {
                batches += 1;
                Err("ledger is full")
            },
            |_| {},
        );
        assert!(
            matches!(result, Err(ReadError::Callback("ledger is full"))),
            "{result:?}"
        );
        assert_eq!(batches, 1);
    }

    #[test]
    fn validate_reports_counts_and_invalid_rows_without_keeping_choices() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_csv(dir.path(), 5);
        let mut invalid = Vec::new();
        let summary = validate_choices(&path, Format::Csv, &BTreeSet::new(), |row| {
            invalid.push(row)
        })
        .unwrap();
        assert_eq!(summary.rows_total, 5);
        assert_eq!(summary.rows_invalid, 5);
        assert!(
            invalid[0].reason.contains("known purposes are none"),
            "{:?}",
            invalid[0]
        );
    }

    #[test]
    fn zero_batch_rows_still_makes_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_csv(dir.path(), 3);
        let outcome = read_with(&path, Format::Csv, 0).unwrap();
        assert_eq!(outcome.batch_sizes, [1, 1, 1]);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for format in Format::ALL {
            let path = dir.path().join(format!("absent.{format}"));
            let error = read_with(&path, format, 10).unwrap_err();
            assert!(matches!(error, ImportError::Io { .. }), "{error:?}");
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{error}"
            );
        }
    }
}
