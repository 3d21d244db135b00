//! A part given whole batches and a mask of the rows to keep (`PartWriter::write_kept`)
//! holds exactly what a part given the same batches filtered first holds, byte for byte:
//! the encoders of this crate skip the dropped rows as they go, the Arrow writer's columns
//! are filtered, and row groups are cut by rows kept. Covers free text (our
//! `DELTA_LENGTH_BYTE_ARRAY` encoder), lists of dictionary strings (our list encoder),
//! columns left to the Arrow writer, nulls, masks that keep nothing or everything, and row
//! groups that end inside a batch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, StringViewArray};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use optout_gate::output::{writer_properties, DistinctColumn, PartWriter};
use optout_gate::FileFormat;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use proptest::prelude::*;

/// One generated row: free text, a list of skills (`None`: a null list), a note.
type Row = (Option<String>, Option<Vec<Option<String>>>, Option<String>);

fn schema() -> SchemaRef {
    let item = Field::new(
        "item",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        true,
    );
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8View, true),
        Field::new("skills", DataType::List(Arc::new(item)), true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// The gate's settings with `text` among the distinct columns, and small row groups.
fn properties(row_group_rows: usize) -> WriterProperties {
    let text = DistinctColumn {
        path: ColumnPath::from("text"),
        byte_array: true,
    };
    writer_properties("id", &[text])
        .unwrap()
        .into_builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build()
}

fn batch(first_id: i64, rows: &[Row]) -> RecordBatch {
    let ids = Int64Array::from_iter_values((first_id..).take(rows.len()));
    let text = StringViewArray::from_iter(rows.iter().map(|row| row.0.clone()));
    let mut skills = ListBuilder::new(StringDictionaryBuilder::<Int32Type>::new());
    for (_, list, _) in rows {
        match list {
            Some(items) => {
                for item in items {
                    skills.values().append_option(item.as_deref());
                }
                skills.append(true);
            }
            None => skills.append(false),
        }
    }
    let notes = StringArray::from_iter(rows.iter().map(|row| row.2.clone()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(text),
        Arc::new(skills.finish()),
        Arc::new(notes),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// The bytes of a part written by `write` into `directory`.
fn part_bytes(
    directory: &Path,
    properties: &WriterProperties,
    format: FileFormat,
    write: impl Fn(&mut PartWriter),
) -> (u64, Vec<u8>) {
    let mut part = PartWriter::create(directory, 0, format, &schema(), properties).unwrap();
    write(&mut part);
    let written = part.finish().unwrap();
    (written.rows, std::fs::read(&written.temporary).unwrap())
}

/// Writes `batches` with their masks to one part and filtered to another, and returns
/// both parts' row counts and bytes.
fn masked_and_filtered(
    batches: &[(RecordBatch, BooleanBuffer)],
    row_group_rows: usize,
    format: FileFormat,
) -> ((u64, Vec<u8>), (u64, Vec<u8>)) {
    let properties = properties(row_group_rows);
    let (masked_directory, filtered_directory) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let masked = part_bytes(masked_directory.path(), &properties, format, |part| {
        for (batch, keep) in batches {
            part.write_kept(batch, Some(keep)).unwrap();
        }
    });
    let filtered = part_bytes(filtered_directory.path(), &properties, format, |part| {
        for (batch, keep) in batches {
            let mask = BooleanArray::new(keep.clone(), None);
            let filtered = arrow_select::filter::filter_record_batch(batch, &mask).unwrap();
            part.write_batch(&filtered).unwrap();
        }
    });
    (masked, filtered)
}

fn text() -> impl Strategy<Value = Option<String>> {
    // Both sides of the 12 bytes a view holds inline.
    prop::option::of(prop_oneof!["[a-z]{0,11}", "[a-z ]{12,40}", "[é€x]{1,8}"])
}

fn row() -> impl Strategy<Value = Row> {
    let item = prop::option::of(prop::sample::select(vec![
        "rust".to_string(),
        "sql".to_string(),
        "go".to_string(),
        "privacy".to_string(),
    ]));
    (
        text(),
        prop::option::of(prop::collection::vec(item, 0..4)),
        prop::option::of("[a-c]{1,3}"),
    )
}

fn batches() -> impl Strategy<Value = Vec<(Vec<Row>, Vec<bool>)>> {
    let batch = prop::collection::vec((row(), prop::bool::weighted(0.7)), 0..40)
        .prop_map(|rows| rows.into_iter().unzip());
    prop::collection::vec(batch, 1..5)
}

fn arrow_batches(generated: &[(Vec<Row>, Vec<bool>)]) -> Vec<(RecordBatch, BooleanBuffer)> {
    let mut first_id = 1i64 << 40;
    generated
        .iter()
        .map(|(rows, keep)| {
            let batch = batch(first_id, rows);
            first_id += rows.len() as i64;
            (batch, BooleanBuffer::from(keep.clone()))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_masked_part_is_the_filtered_part(generated in batches(), row_group_rows in 1usize..30) {
        let batches = arrow_batches(&generated);
        let kept: usize = batches.iter().map(|(_, keep)| keep.count_set_bits()).sum();
        let (masked, filtered) = masked_and_filtered(&batches, row_group_rows, FileFormat::Parquet);
        prop_assert_eq!(masked.0, kept as u64);
        prop_assert_eq!(filtered.0, kept as u64);
        prop_assert!(masked.1 == filtered.1, "the parts differ");
    }
}

#[test]
fn masks_that_keep_nothing_everything_and_cut_row_groups() {
    let rows: Vec<Row> = (0..50)
        .map(|index| {
            let skills = (index % 5 != 0).then(|| vec![Some(format!("skill {}", index % 3)), None]);
            (Some(format!("text {index}")), skills, None)
        })
        .collect();
    let nothing = vec![false; rows.len()];
    let everything = vec![true; rows.len()];
    let every_third: Vec<bool> = (0..rows.len()).map(|index| index % 3 == 0).collect();
    let generated = vec![
        (rows.clone(), nothing),
        (rows.clone(), everything),
        (rows.clone(), every_third),
        (Vec::new(), Vec::new()),
    ];
    let batches = arrow_batches(&generated);
    for format in [FileFormat::Parquet, FileFormat::JsonLines] {
        // Row groups of 7 rows end inside each batch, and after a dropped row.
        let (masked, filtered) = masked_and_filtered(&batches, 7, format);
        assert_eq!(masked.0, 50 + 17);
        assert_eq!(masked, filtered, "{format:?}");
    }
}

#[test]
fn a_mask_of_the_wrong_length_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let mut part = PartWriter::create(
        directory.path(),
        0,
        FileFormat::Parquet,
        &schema(),
        &properties(10),
    )
    .unwrap();
    let batch = batch(1, &[(None, None, None), (None, None, None)]);
    let error = part
        .write_kept(&batch, Some(&BooleanBuffer::from(vec![true; 3])))
        .unwrap_err();
    assert!(error.to_string().contains("a mask of 3 rows"), "{error}");
}
