//! Free-text columns (strings without a dictionary, `DELTA_LENGTH_BYTE_ARRAY`) through
//! [`PartWriter`], whose Parquet parts encode them without the Arrow writer: each part is
//! read back with parquet's own reader and compared with the rows written. Covers the
//! three Arrow string types, both nullabilities, empty and long strings, several pages
//! and row groups, pages too random to compress, and the columns around them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use optout_gate::output::{writer_properties, DistinctColumn, PartWriter};
use optout_gate::FileFormat;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Encoding, PageType};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnPath;
use proptest::prelude::*;

/// Column 1 of every part: the free text under test.
const TEXT: usize = 1;

fn schema(text_type: DataType, nullable: bool) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", text_type, nullable),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// The writer settings of the gate, with `text` among the mostly distinct columns.
fn properties() -> WriterProperties {
    let text = DistinctColumn {
        path: ColumnPath::from("text"),
        byte_array: true,
    };
    writer_properties("id", &[text]).unwrap()
}

fn strings(text_type: &DataType, values: &[Option<String>]) -> ArrayRef {
    match text_type {
        DataType::Utf8 => Arc::new(StringArray::from(values.to_vec())),
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(values.to_vec())),
        DataType::Utf8View => Arc::new(StringViewArray::from(values.to_vec())),
        other => panic!("not a string type: {other}"),
    }
}

fn batch(schema: &SchemaRef, first_id: i64, values: &[Option<String>]) -> RecordBatch {
    let rows = values.len() as i64;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(first_id..first_id + rows));
    let notes: ArrayRef = Arc::new(StringArray::from_iter(
        (first_id..first_id + rows).map(|id| (id % 3 != 0).then(|| format!("note {}", id % 7))),
    ));
    let text = strings(schema.field(TEXT).data_type(), values);
    RecordBatch::try_new(Arc::clone(schema), vec![ids, text, notes]).unwrap()
}

/// Writes `batches` to a part in `directory` and returns its path.
fn write_part(
    directory: &Path,
    schema: &SchemaRef,
    properties: &WriterProperties,
    batches: &[RecordBatch],
) -> PathBuf {
    let mut part =
        PartWriter::create(directory, 0, FileFormat::Parquet, schema, properties).unwrap();
    for batch in batches {
        part.write_batch(batch).unwrap();
    }
    let written = part.finish().unwrap();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(written.rows, rows as u64);
    written.temporary
}

/// The id, text and note of every row of the part, as parquet's Arrow reader gives them.
fn read_rows(path: &Path) -> Vec<(i64, Option<String>, Option<String>)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let text_of = |column: &ArrayRef, row: usize| {
        column.is_valid(row).then(|| match column.data_type() {
            DataType::Utf8View => column.as_string_view().value(row).to_string(),
            DataType::LargeUtf8 => column.as_string::<i64>().value(row).to_string(),
            _ => column.as_string::<i32>().value(row).to_string(),
        })
    };
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch.column(0).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            rows.push((
                ids.value(row),
                text_of(batch.column(TEXT), row),
                text_of(batch.column(2), row),
            ));
        }
    }
    rows
}

fn expected_rows(batches: &[RecordBatch]) -> Vec<(i64, Option<String>, Option<String>)> {
    let mut rows = Vec::new();
    for batch in batches {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let text = |column: &ArrayRef| {
                column.is_valid(row).then(|| match column.data_type() {
                    DataType::Utf8View => column.as_string_view().value(row).to_string(),
                    DataType::LargeUtf8 => column.as_string::<i64>().value(row).to_string(),
                    _ => column.as_string::<i32>().value(row).to_string(),
                })
            };
            rows.push((
                ids.value(row),
                text(batch.column(TEXT)),
                text(batch.column(2)),
            ));
        }
    }
    rows
}

/// Each data page of the text column, per row group: its values' encoding and rows.
fn text_pages(path: &Path) -> Vec<Vec<(Encoding, usize)>> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    (0..reader.num_row_groups())
        .map(|row_group| {
            let pages = reader
                .get_row_group(row_group)
                .unwrap()
                .get_column_page_reader(TEXT)
                .unwrap();
            pages
                .map(|page| {
                    let page = page.unwrap();
                    assert_eq!(page.page_type(), PageType::DATA_PAGE_V2);
                    (page.encoding(), page.num_values() as usize)
                })
                .collect()
        })
        .collect()
}

/// Rows per page of the text column, per row group, from the offset index.
fn offset_index_rows(path: &Path, rows: usize) -> Vec<Vec<usize>> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(File::open(path).unwrap(), options)
            .unwrap();
    let metadata = builder.metadata();
    (0..metadata.num_row_groups())
        .map(|row_group| {
            let offsets = metadata
                .page_index_for_row_group(row_group)
                .offset_index(TEXT)
                .cloned()
                .expect("an offset index");
            let group_rows = metadata.row_group(row_group).num_rows() as usize;
            assert!(group_rows <= rows);
            let firsts: Vec<usize> = offsets
                .page_locations()
                .iter()
                .map(|page| page.first_row_index as usize)
                .collect();
            let mut per_page: Vec<usize> =
                firsts.windows(2).map(|pair| pair[1] - pair[0]).collect();
            per_page.push(group_rows - firsts.last().copied().unwrap_or(0));
            per_page
        })
        .collect()
}

fn awkward_values(nullable: bool) -> Vec<Option<String>> {
    let null = |value: &str| (!nullable).then(|| value.to_string());
    vec![
        Some("Engineer".into()),
        Some(String::new()),
        null("was null"),
        Some("exactly twelve".chars().take(12).collect()),
        Some("thirteen byte".into()),
        Some("é ü 漢字 and a longer tail that does not fit in a view".into()),
        null("second null"),
        Some("x".repeat(70_000)),
        Some("Engineer".into()),
    ]
}

// Proves each Arrow string type round-trips, nullable or not, with empty strings, strings
// on both sides of the 12-byte inline view limit, multi-byte characters and a string
// longer than 64 KiB, and that the column is written as DELTA_LENGTH_BYTE_ARRAY pages.
#[test]
fn strings_round_trip_for_every_type_and_nullability() {
    for text_type in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
        for nullable in [false, true] {
            let directory = tempfile::tempdir().unwrap();
            let schema = schema(text_type.clone(), nullable);
            let values = awkward_values(nullable);
            let batches = [
                batch(&schema, 0, &values),
                batch(&schema, 100, &values[2..]),
            ];
            let path = write_part(directory.path(), &schema, &properties(), &batches);
            assert_eq!(
                read_rows(&path),
                expected_rows(&batches),
                "{text_type} nullable={nullable}"
            );
            let pages = text_pages(&path);
            assert_eq!(pages.len(), 1);
            assert!(pages[0]
                .iter()
                .all(|(encoding, _)| *encoding == Encoding::DELTA_LENGTH_BYTE_ARRAY));
        }
    }
}

// Proves pages end at the row and size limits and row groups at theirs, with the offset
// index counting each page's rows, and that rows read back in order across them all.
#[test]
fn pages_and_row_groups_split_at_their_limits() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema(DataType::Utf8View, true);
    let properties = properties()
        .into_builder()
        .set_column_data_page_size_limit(ColumnPath::from("text"), 600)
        .set_data_page_row_count_limit(40)
        .set_max_row_group_row_count(Some(250))
        .set_write_batch_size(8)
        .build();
    let values: Vec<Option<String>> = (0..1000)
        .map(|row| (row % 11 != 5).then(|| format!("row {row} {}", "words ".repeat(row % 9))))
        .collect();
    let batches: Vec<RecordBatch> = values
        .chunks(170)
        .enumerate()
        .map(|(index, chunk)| batch(&schema, index as i64 * 170, chunk))
        .collect();
    let path = write_part(directory.path(), &schema, &properties, &batches);
    assert_eq!(read_rows(&path), expected_rows(&batches));

    let pages = text_pages(&path);
    assert_eq!(pages.len(), 4, "four row groups of 250 rows");
    let index_rows = offset_index_rows(&path, values.len());
    for (group, group_pages) in pages.iter().enumerate() {
        assert!(group_pages.len() > 1, "row group {group} has several pages");
        let rows: Vec<usize> = group_pages.iter().map(|(_, rows)| *rows).collect();
        assert_eq!(rows, index_rows[group]);
        assert_eq!(rows.iter().sum::<usize>(), 250);
        // A page ends at the first mini-batch (8 rows) that reaches a limit.
        assert!(rows.iter().all(|&page_rows| page_rows <= 40));
    }
}

// Proves a page whose values do not compress (random bytes, written as they are) reads
// back like the others.
#[test]
fn incompressible_pages_round_trip() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema(DataType::Utf8, false);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random_char = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        char::from_u32(0x4e00 + (state % 0x5000) as u32).unwrap()
    };
    let values: Vec<Option<String>> = (0..300)
        .map(|_| Some((0..40).map(|_| random_char()).collect()))
        .collect();
    let batches = [batch(&schema, 0, &values)];
    let path = write_part(directory.path(), &schema, &properties(), &batches);
    assert_eq!(read_rows(&path), expected_rows(&batches));
}

// Proves a page with more lengths than the room kept for them in front of its strings
// (256 KiB at most; here no row limit, and 262,144 rows of lengths up to 300 in the
// first row group) is written all the same.
#[test]
fn pages_whose_lengths_outgrow_their_room_round_trip() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema(DataType::Utf8View, false);
    let properties = properties()
        .into_builder()
        .set_data_page_row_count_limit(usize::MAX)
        .set_column_data_page_size_limit(ColumnPath::from("text"), usize::MAX)
        .set_write_batch_size(300_000)
        .build();
    let digits = "0123456789".repeat(30);
    let values: Vec<Option<String>> = (0..300_000usize)
        .map(|row| Some(digits[..(row * 7919) % 300].to_string()))
        .collect();
    let batches = [batch(&schema, 0, &values)];
    let path = write_part(directory.path(), &schema, &properties, &batches);
    assert_eq!(read_rows(&path), expected_rows(&batches));
    // One page per row group (of 2^18 rows): its lengths take about 320 KiB.
    assert_eq!(
        text_pages(&path),
        [
            vec![(Encoding::DELTA_LENGTH_BYTE_ARRAY, 262_144)],
            vec![(Encoding::DELTA_LENGTH_BYTE_ARRAY, 300_000 - 262_144)]
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Proves any sequence of strings and nulls, cut into any batches, under any page,
    // mini-batch and row group limits, reads back as written.
    #[test]
    fn any_strings_round_trip(
        values in prop::collection::vec(
            prop::option::weighted(0.85, "[a-z é漢]{0,40}|[0-9]{100,300}"),
            1..400,
        ),
        batch_rows in 1usize..120,
        page_bytes in 1usize..3000,
        page_rows in 1usize..200,
        write_batch in 1usize..50,
        row_group_rows in 1usize..500,
        view in any::<bool>(),
    ) {
        let directory = tempfile::tempdir().unwrap();
        let text_type = if view { DataType::Utf8View } else { DataType::Utf8 };
        let schema = schema(text_type, true);
        let properties = properties()
            .into_builder()
            .set_column_data_page_size_limit(ColumnPath::from("text"), page_bytes)
            .set_data_page_row_count_limit(page_rows)
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_write_batch_size(write_batch)
            .build();
        let batches: Vec<RecordBatch> = values
            .chunks(batch_rows)
            .enumerate()
            .map(|(index, chunk)| batch(&schema, (index * batch_rows) as i64, chunk))
            .collect();
        let path = write_part(directory.path(), &schema, &properties, &batches);
        prop_assert_eq!(read_rows(&path), expected_rows(&batches));
    }
}
