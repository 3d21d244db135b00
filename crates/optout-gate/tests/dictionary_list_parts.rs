//! Lists of dictionary-encoded strings (`List<Dictionary<Int32, Utf8>>`) through
//! [`PartWriter`], whose Parquet parts encode them without the Arrow writer: each part is
//! read back with parquet's own reader, as lists of strings, and compared with the rows
//! written. Covers every nullability, null and empty lists, null items, a new dictionary
//! per batch, several pages and row groups, the fallback from a full dictionary, and the
//! columns around them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use optout_gate::output::{writer_properties, PartWriter};
use optout_gate::FileFormat;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, PageType};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};
use proptest::prelude::*;

type Items = Vec<Option<String>>;
/// A row of a list column: `None` is a null list.
type Row = Option<Items>;

fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn list_field(name: &str, list_nullable: bool, item_nullable: bool) -> Field {
    let item = Field::new("item", dictionary_type(), item_nullable);
    Field::new(name, DataType::List(Arc::new(item)), list_nullable)
}

/// `rows` as a list of keys into `dictionary`. A null item is a null key (holding a key out
/// of range, which must not be read) or, alternately, a key to a null value when the
/// dictionary has one; a null list covers one item, which must not be written either.
fn dictionary_list(rows: &[Row], dictionary: &ArrayRef, item_nullable: bool) -> ArrayRef {
    let strings = dictionary.as_string::<i32>();
    let null_value = (0..strings.len()).find(|&index| strings.is_null(index));
    let key_of = |value: &str| {
        (0..strings.len())
            .find(|&index| strings.is_valid(index) && strings.value(index) == value)
            .unwrap_or_else(|| panic!("{value:?} is not in the dictionary")) as i32
    };
    let mut keys = Vec::new();
    let mut valid = Vec::new();
    let mut lengths = Vec::new();
    let mut null_items = 0;
    for row in rows {
        match row {
            None if strings.is_empty() => lengths.push(0),
            None => {
                keys.push(0);
                valid.push(strings.is_valid(0));
                lengths.push(1);
            }
            Some(items) => {
                for item in items {
                    match item {
                        Some(value) => {
                            keys.push(key_of(value));
                            valid.push(true);
                        }
                        None => {
                            null_items += 1;
                            match null_value.filter(|_| null_items % 2 == 0) {
                                Some(index) => {
                                    keys.push(index as i32);
                                    valid.push(true);
                                }
                                None => {
                                    keys.push(i32::MAX);
                                    valid.push(false);
                                }
                            }
                        }
                    }
                }
                lengths.push(items.len());
            }
        }
    }
    let keys = Int32Array::new(ScalarBuffer::from(keys), Some(NullBuffer::from(valid)));
    let items = DictionaryArray::<Int32Type>::try_new(keys, Arc::clone(dictionary)).unwrap();
    let item = Field::new("item", dictionary_type(), item_nullable);
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    Arc::new(
        ListArray::try_new(
            Arc::new(item),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(items),
            Some(nulls),
        )
        .unwrap(),
    )
}

fn dictionary(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn strings(values: &[&str]) -> Items {
    values.iter().map(|value| Some(value.to_string())).collect()
}

/// Writes `batches` to a part in `directory` and returns its path.
fn write_part(
    directory: &Path,
    schema: &SchemaRef,
    properties: &WriterProperties,
    batches: &[RecordBatch],
) -> std::path::PathBuf {
    let mut part =
        PartWriter::create(directory, 0, FileFormat::Parquet, schema, properties).unwrap();
    for batch in batches {
        part.write_batch(batch).unwrap();
    }
    let written = part.finish().unwrap();
    assert_eq!(
        written.rows,
        batches
            .iter()
            .map(|batch| batch.num_rows() as u64)
            .sum::<u64>()
    );
    assert_eq!(
        written.bytes,
        std::fs::metadata(&written.temporary).unwrap().len()
    );
    written.temporary
}

/// Every batch of the part, as parquet's Arrow reader gives them.
fn read_batches(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Column `index` of the part, read as lists of strings.
fn read_lists(path: &Path, index: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in read_batches(path) {
        let lists = batch.column(index).as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                rows.push(None);
                continue;
            }
            let items = lists.value(row);
            let items: Items = match items.data_type() {
                DataType::Utf8View => items
                    .as_string_view()
                    .iter()
                    .map(|item| item.map(str::to_string))
                    .collect(),
                _ => items
                    .as_string::<i32>()
                    .iter()
                    .map(|item| item.map(str::to_string))
                    .collect(),
            };
            rows.push(Some(items));
        }
    }
    rows
}

fn read_metadata(path: &Path) -> Arc<ParquetMetaData> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(File::open(path).unwrap(), options)
            .unwrap();
    Arc::clone(builder.metadata())
}

/// Each page of column `column` in row group `row_group`: its type and values' encoding.
fn page_encodings(path: &Path, row_group: usize, column: usize) -> Vec<(PageType, Encoding)> {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let pages = reader
        .get_row_group(row_group)
        .unwrap()
        .get_column_page_reader(column)
        .unwrap();
    pages
        .map(|page| {
            let page = page.unwrap();
            (page.page_type(), page.encoding())
        })
        .collect()
}

fn properties() -> WriterProperties {
    writer_properties("id", &[]).unwrap()
}

/// Small pages and row groups, so that a few rows span several of each; the limits are
/// checked after every row (a write batch of one level).
fn small_properties(
    page_rows: usize,
    row_group_rows: usize,
    dictionary_bytes: usize,
) -> WriterProperties {
    properties()
        .into_builder()
        .set_data_page_row_count_limit(page_rows)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_dictionary_page_size_limit(dictionary_bytes)
        .set_write_batch_size(1)
        .build()
}

fn schema_with(lists: Field) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        lists,
        Field::new("note", DataType::Utf8, true),
    ]))
}

fn batch(schema: &SchemaRef, first_id: i64, lists: ArrayRef) -> RecordBatch {
    let rows = lists.len() as i64;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(first_id..first_id + rows));
    let notes: ArrayRef = Arc::new(StringArray::from_iter(
        (first_id..first_id + rows).map(|id| (id % 3 != 0).then(|| format!("note {id}"))),
    ));
    RecordBatch::try_new(Arc::clone(schema), vec![ids, lists, notes]).unwrap()
}

/// The id and note columns read back, to check the chunks around the lists.
fn read_ids_and_notes(path: &Path) -> Vec<(i64, Option<String>)> {
    let mut rows = Vec::new();
    for batch in read_batches(path) {
        let ids = batch
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>();
        let notes = batch.column(2);
        for row in 0..batch.num_rows() {
            let note = match notes.data_type() {
                DataType::Utf8View => notes
                    .as_string_view()
                    .is_valid(row)
                    .then(|| notes.as_string_view().value(row).to_string()),
                _ => notes
                    .as_string::<i32>()
                    .is_valid(row)
                    .then(|| notes.as_string::<i32>().value(row).to_string()),
            };
            rows.push((ids.value(row), note));
        }
    }
    rows
}

/// Rows with null lists, empty lists and null items, as far as the field allows them.
fn awkward_rows(list_nullable: bool, item_nullable: bool) -> Vec<Row> {
    let null_item = |value: &str| (!item_nullable).then(|| value.to_string());
    let mut rows = vec![
        Some(strings(&["rust", "sql"])),
        Some(vec![]),
        Some(vec![
            Some("go".to_string()),
            null_item("rust"),
            Some("go".into()),
        ]),
        Some(strings(&["", "é ü 漢字"])),
        Some(vec![null_item("sql")]),
        Some(strings(&["sql"; 12])),
    ];
    if list_nullable {
        rows.insert(1, None);
        rows.push(None);
    }
    rows
}

// Proves every combination of list and item nullability round-trips with null lists,
// empty lists and null items (where allowed), over two batches whose dictionaries list
// the strings in different orders, with a null value and an unused value among them.
#[test]
fn lists_round_trip_for_every_nullability() {
    for list_nullable in [false, true] {
        for item_nullable in [false, true] {
            let directory = tempfile::tempdir().unwrap();
            let schema = schema_with(list_field("skills", list_nullable, item_nullable));
            let rows = awkward_rows(list_nullable, item_nullable);
            let first: &[Option<&str>] = if item_nullable {
                &[
                    Some("sql"),
                    None,
                    Some("unused"),
                    Some("go"),
                    Some("rust"),
                    Some(""),
                    Some("é ü 漢字"),
                ]
            } else {
                &[
                    Some("sql"),
                    Some("unused"),
                    Some("go"),
                    Some("rust"),
                    Some(""),
                    Some("é ü 漢字"),
                ]
            };
            let second: &[Option<&str>] = &[
                Some("é ü 漢字"),
                Some("rust"),
                Some(""),
                Some("go"),
                Some("sql"),
            ];
            let batches = [
                batch(
                    &schema,
                    0,
                    dictionary_list(&rows, &dictionary(first), item_nullable),
                ),
                batch(
                    &schema,
                    rows.len() as i64,
                    dictionary_list(&rows, &dictionary(second), item_nullable),
                ),
            ];
            let path = write_part(directory.path(), &schema, &properties(), &batches);
            let expected: Vec<Row> = rows.iter().chain(&rows).cloned().collect();
            assert_eq!(
                read_lists(&path, 1),
                expected,
                "list nullable {list_nullable}, item nullable {item_nullable}"
            );
            let ids: Vec<i64> = read_ids_and_notes(&path).iter().map(|row| row.0).collect();
            assert_eq!(ids, (0..expected.len() as i64).collect::<Vec<_>>());
        }
    }
}

// Proves the chunk's metadata: one ZSTD chunk per row group with its dictionary page
// first, data pages v2 cut at the page row limit, an offset index whose pages start at the
// rows they say, and row groups at the row group limit.
#[test]
fn pages_and_row_groups_follow_the_limits() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema_with(list_field("skills", true, true));
    let rows: Vec<Row> = (0..23)
        .map(|row| match row % 5 {
            0 => None,
            1 => Some(vec![]),
            _ => Some(strings(&["a", "b", "c"][..row % 3 + 1])),
        })
        .collect();
    let values = dictionary(&[Some("c"), Some("b"), Some("a")]);
    let batches = [
        batch(&schema, 0, dictionary_list(&rows[..9], &values, true)),
        batch(&schema, 9, dictionary_list(&rows[9..], &values, true)),
    ];
    let properties = small_properties(3, 10, 1 << 20);
    let path = write_part(directory.path(), &schema, &properties, &batches);
    assert_eq!(read_lists(&path, 1), rows);

    let metadata = read_metadata(&path);
    let row_group_rows: Vec<i64> = metadata
        .row_groups()
        .iter()
        .map(|group| group.num_rows())
        .collect();
    assert_eq!(row_group_rows, [10, 10, 3]);
    for (index, group) in metadata.row_groups().iter().enumerate() {
        let column = group.column(1);
        // The file records the codec, not its level.
        assert!(matches!(column.compression(), Compression::ZSTD(_)));
        let dictionary_page = column.dictionary_page_offset().expect("a dictionary page");
        assert!(column.data_page_offset() > dictionary_page);
        assert!(column.statistics().is_none());
        let encodings: Vec<Encoding> = column.encodings().collect();
        assert_eq!(encodings.len(), 3, "{encodings:?}");
        for encoding in [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY] {
            assert!(encodings.contains(&encoding), "{encodings:?}");
        }

        let offsets = metadata
            .page_index_for_row_group(index)
            .offset_index(1)
            .cloned()
            .expect("an offset index");
        let first_rows: Vec<i64> = offsets
            .page_locations()
            .iter()
            .map(|page| page.first_row_index)
            .collect();
        let expected: Vec<i64> = (0..group.num_rows()).step_by(3).collect();
        assert_eq!(first_rows, expected, "row group {index}");
        let pages = page_encodings(&path, index, 1);
        assert_eq!(pages.len(), 1 + first_rows.len());
        assert_eq!(pages[0], (PageType::DICTIONARY_PAGE, Encoding::PLAIN));
        assert!(pages[1..]
            .iter()
            .all(|page| *page == (PageType::DATA_PAGE_V2, Encoding::RLE_DICTIONARY)));
        let first_page = offsets.page_locations()[0].offset;
        assert_eq!(first_page, column.data_page_offset());
        let num_values: i64 = column.num_values();
        assert!(num_values >= group.num_rows());
    }
}

// Proves the fallback: once the dictionary reaches its page size limit, the row group's
// later pages hold the strings PLAIN, the pages before keep their indices, and the next
// row group starts a new dictionary.
#[test]
fn a_full_dictionary_falls_back_to_plain_values() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema_with(list_field("skills", true, true));
    let pool: Vec<String> = (0..60)
        .map(|index| format!("skill number {index}"))
        .collect();
    let rows: Vec<Row> = (0..60)
        .map(|row| match row % 7 {
            3 => None,
            5 => Some(vec![Some(pool[row].clone()), None]),
            _ => Some(vec![Some(pool[row].clone()), Some(pool[row / 2].clone())]),
        })
        .collect();
    let values: Vec<Option<&str>> = pool
        .iter()
        .rev()
        .map(|value| Some(value.as_str()))
        .collect();
    let batches = [
        batch(
            &schema,
            0,
            dictionary_list(&rows[..25], &dictionary(&values), true),
        ),
        batch(
            &schema,
            25,
            dictionary_list(&rows[25..], &dictionary(&values), true),
        ),
    ];
    // About 16 strings fit in 300 bytes: row group 0 (rows 0..40) falls back mid-batch,
    // and again in row group 1 (rows 40..60) after a fresh start.
    let properties = small_properties(4, 40, 300);
    let path = write_part(directory.path(), &schema, &properties, &batches);
    assert_eq!(read_lists(&path, 1), rows);
    for row_group in 0..2 {
        let pages = page_encodings(&path, row_group, 1);
        assert_eq!(pages[0], (PageType::DICTIONARY_PAGE, Encoding::PLAIN));
        let data: Vec<Encoding> = pages[1..].iter().map(|page| page.1).collect();
        let dictionary_pages = data
            .iter()
            .take_while(|encoding| **encoding == Encoding::RLE_DICTIONARY)
            .count();
        assert!(dictionary_pages > 0, "row group {row_group}: {data:?}");
        assert!(
            dictionary_pages < data.len(),
            "row group {row_group}: {data:?}"
        );
        assert!(data[dictionary_pages..]
            .iter()
            .all(|encoding| *encoding == Encoding::PLAIN));
    }
}

// Proves a row group whose lists are all null or empty (an empty dictionary) is written
// and read back.
#[test]
fn a_row_group_without_items_round_trips() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema_with(list_field("skills", true, false));
    let rows: Vec<Row> = vec![None, Some(vec![]), None];
    let batches = [batch(
        &schema,
        0,
        dictionary_list(&rows, &dictionary(&[Some("unused")]), false),
    )];
    let path = write_part(directory.path(), &schema, &properties(), &batches);
    assert_eq!(read_lists(&path, 1), rows);
}

// Proves sliced batches (offsets into shared keys and values, as a filter or a row group
// split leaves them) and batches sharing one values array write the right rows.
#[test]
fn sliced_batches_and_shared_dictionaries_round_trip() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema_with(list_field("skills", true, true));
    let rows: Vec<Row> = (0..40)
        .map(|row| {
            (row % 6 != 0).then(|| {
                (0..row % 4)
                    .map(|item| (item != 2).then(|| format!("s{}", (row + item) % 5)))
                    .collect()
            })
        })
        .collect();
    let values = dictionary(&[
        Some("s4"),
        Some("s2"),
        None,
        Some("s0"),
        Some("s1"),
        Some("s3"),
    ]);
    let whole = batch(&schema, 0, dictionary_list(&rows, &values, true));
    let batches = [
        whole.slice(0, 7),
        whole.slice(7, 1),
        whole.slice(8, 20),
        whole.slice(28, 12),
    ];
    let path = write_part(
        directory.path(),
        &schema,
        &small_properties(5, 16, 1 << 20),
        &batches,
    );
    assert_eq!(read_lists(&path, 1), rows);
}

// Proves two list columns of different nullability and a nested column the Arrow writer
// keeps are spliced in schema order.
#[test]
fn list_columns_are_spliced_among_the_others_in_schema_order() {
    let directory = tempfile::tempdir().unwrap();
    let plain_lists = Field::new(
        "plain",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        true,
    );
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        list_field("tags", false, false),
        Field::new("id", DataType::Int64, false),
        plain_lists,
        list_field("skills", true, true),
    ]));
    let tags: Vec<Row> = (0..30)
        .map(|row| Some(strings(&["x", "y", "z"][..row % 4 % 3])))
        .collect();
    let skills = awkward_rows(true, true);
    let skills: Vec<Row> = skills.iter().cycle().take(30).cloned().collect();
    let plain: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
        (0..30).map(|row| (row % 4 != 1).then(|| (0..row % 3).map(Some).collect::<Vec<_>>())),
    ));
    let lists = |tags_dictionary: &[Option<&str>], skills_dictionary: &[Option<&str>]| {
        (
            dictionary_list(&tags, &dictionary(tags_dictionary), false),
            dictionary_list(&skills, &dictionary(skills_dictionary), true),
        )
    };
    let (tag_lists, skill_lists) = lists(
        &[Some("z"), Some("y"), Some("x")],
        &[
            Some("rust"),
            Some("go"),
            Some(""),
            Some("sql"),
            Some("é ü 漢字"),
            None,
        ],
    );
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..30));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![tag_lists, ids, Arc::clone(&plain), skill_lists],
    )
    .unwrap();
    let path = write_part(
        directory.path(),
        &schema,
        &small_properties(4, 12, 1 << 20),
        &[batch],
    );
    assert_eq!(read_lists(&path, 0), tags);
    assert_eq!(read_lists(&path, 3), skills);
    let batches = read_batches(&path);
    let read_plain = arrow_select::concat::concat(
        &batches
            .iter()
            .map(|batch| batch.column(2).as_ref())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let numbers = |lists: &ArrayRef| -> Vec<Option<Vec<Option<i32>>>> {
        lists
            .as_list::<i32>()
            .iter()
            .map(|items| items.map(|items| items.as_primitive::<Int32Type>().iter().collect()))
            .collect()
    };
    assert_eq!(numbers(&read_plain), numbers(&plain));
    let read_ids = arrow_select::concat::concat(
        &batches
            .iter()
            .map(|batch| batch.column(1).as_ref())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(
        read_ids
            .as_primitive::<arrow_array::types::Int64Type>()
            .values()
            .to_vec(),
        (0..30).collect::<Vec<i64>>()
    );
}

// Proves a null list in a column the part's schema declares non-nullable is refused, as
// the Arrow writer refuses it, rather than written as an empty list.
#[test]
fn a_null_list_in_a_required_column_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let required = schema_with(list_field("skills", false, true));
    let nullable = schema_with(list_field("skills", true, true));
    let rows: Vec<Row> = vec![Some(strings(&["a"])), None];
    let batch = batch(
        &nullable,
        0,
        dictionary_list(&rows, &dictionary(&[Some("a")]), true),
    );
    let mut part = PartWriter::create(
        directory.path(),
        0,
        FileFormat::Parquet,
        &required,
        &properties(),
    )
    .unwrap();
    let error = part.write_batch(&batch).unwrap_err().to_string();
    assert!(error.contains("null list"), "{error}");
}

// Proves a writer version 1 setting keeps the Arrow writer for the lists (this module
// writes data pages v2 only), and the lists still round-trip.
#[test]
fn data_pages_v1_keep_the_arrow_writer() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema_with(list_field("skills", true, true));
    let rows = awkward_rows(true, true);
    let values = dictionary(&[
        Some("sql"),
        Some("go"),
        Some("rust"),
        Some(""),
        Some("é ü 漢字"),
    ]);
    let batches = [batch(&schema, 0, dictionary_list(&rows, &values, true))];
    let properties = properties()
        .into_builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .build();
    let path = write_part(directory.path(), &schema, &properties, &batches);
    assert_eq!(read_lists(&path, 1), rows);
    assert!(page_encodings(&path, 0, 1)
        .iter()
        .any(|page| page.0 == PageType::DATA_PAGE));
}

/// The strings a generated row may hold.
const POOL: [&str; 12] = [
    "rust",
    "sql",
    "go",
    "",
    "é ü 漢字",
    "python",
    "a",
    "b",
    "kubernetes",
    "x y",
    "zz",
    "q",
];

fn rows_strategy(list_nullable: bool, item_nullable: bool) -> impl Strategy<Value = Vec<Row>> {
    let item = (any::<bool>(), 0..POOL.len())
        .prop_map(move |(null, index)| (!(null && item_nullable)).then(|| POOL[index].to_string()));
    let row = (any::<bool>(), proptest::collection::vec(item, 0..7))
        .prop_map(move |(null, items)| (!(null && list_nullable)).then_some(items));
    proptest::collection::vec(row, 0..120)
}

/// A dictionary for `rows`: the strings they use and some they do not, in an order
/// given by `seed`, with a null value when `with_null`.
fn dictionary_for(rows: &[Row], seed: u64, with_null: bool) -> ArrayRef {
    let mut values: Vec<Option<&str>> = POOL
        .iter()
        .enumerate()
        .filter(|(index, value)| {
            seed >> (index % 64) & 1 == 1
                || rows
                    .iter()
                    .flatten()
                    .flatten()
                    .flatten()
                    .any(|item| item.as_str() == **value)
        })
        .map(|(_, value)| Some(*value))
        .collect();
    if with_null {
        values.push(None);
    }
    // A Fisher-Yates shuffle driven by a splitmix64 stream from `seed`.
    let mut state = seed;
    for index in (1..values.len()).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        values.swap(index, (mixed % (index as u64 + 1)) as usize);
    }
    dictionary(&values)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Proves, against the model "each row's list of strings", that any rows, cut into
    // batches each with its own dictionary (or the previous batch's values array again),
    // with any page, row group and dictionary limits checked after any number of levels,
    // read back exactly as written.
    #[test]
    fn any_lists_read_back_as_written(
        (list_nullable, item_nullable, rows) in (any::<bool>(), any::<bool>())
            .prop_flat_map(|(list_nullable, item_nullable)| {
                (Just(list_nullable), Just(item_nullable), rows_strategy(list_nullable, item_nullable))
            }),
        cuts in proptest::collection::vec((1usize..50, any::<u64>(), any::<bool>(), any::<bool>()), 1..8),
        page_rows in 1usize..40,
        mini_batch_levels in 1usize..30,
        row_group_rows in 1usize..100,
        dictionary_bytes in 1usize..200,
    ) {
        let directory = tempfile::tempdir().unwrap();
        let schema = schema_with(list_field("skills", list_nullable, item_nullable));
        let properties = small_properties(page_rows, row_group_rows, dictionary_bytes)
            .into_builder()
            .set_write_batch_size(mini_batch_levels)
            .build();
        let mut batches = Vec::new();
        let mut start = 0;
        let mut previous: Option<ArrayRef> = None;
        for (length, seed, reuse, with_null) in cuts.iter().cycle() {
            if start >= rows.len() {
                break;
            }
            let end = (start + length).min(rows.len());
            let these = &rows[start..end];
            let covers = |values: &ArrayRef| {
                let values = values.as_string::<i32>();
                these.iter().flatten().flatten().flatten().all(|item| {
                    values.iter().flatten().any(|value| value == item.as_str())
                })
            };
            let values = match &previous {
                Some(values) if *reuse && covers(values) => Arc::clone(values),
                _ => dictionary_for(these, *seed, *with_null && item_nullable),
            };
            batches.push(batch(&schema, start as i64, dictionary_list(these, &values, item_nullable)));
            previous = Some(values);
            start = end;
        }
        let path = write_part(directory.path(), &schema, &properties, &batches);
        prop_assert_eq!(read_lists(&path, 1), rows.clone());
        let expected_ids: Vec<i64> = (0..rows.len() as i64).collect();
        let ids: Vec<i64> = read_ids_and_notes(&path).iter().map(|row| row.0).collect();
        prop_assert_eq!(ids, expected_ids);
    }
}

// Proves the pages start at the rows where parquet-rs starts them under the same
// properties (limits checked after each mini-batch of levels, not after each row): the
// same file written by parquet's Arrow writer has the same offset index row starts.
#[test]
fn pages_start_where_the_arrow_writer_starts_them() {
    let directory = tempfile::tempdir().unwrap();
    let schema = schema_with(list_field("skills", true, true));
    let rows: Vec<Row> = (0..70_000usize)
        .map(|row| match row % 97 {
            0 => None,
            1 => Some(vec![]),
            _ => Some(
                (0..row % 9)
                    .map(|item| (item != 4).then(|| format!("skill {}", (row * 7 + item) % 150)))
                    .collect(),
            ),
        })
        .collect();
    let pool: Vec<String> = (0..150).map(|index| format!("skill {index}")).collect();
    let values: Vec<Option<&str>> = pool.iter().map(|value| Some(value.as_str())).collect();
    let values = dictionary(&values);
    let batches: Vec<RecordBatch> = rows
        .chunks(8192)
        .enumerate()
        .map(|(index, chunk)| {
            batch(
                &schema,
                index as i64 * 8192,
                dictionary_list(chunk, &values, true),
            )
        })
        .collect();
    let ours = write_part(directory.path(), &schema, &properties(), &batches);
    let theirs = directory.path().join("arrow-writer.parquet");
    let options = parquet::arrow::arrow_writer::ArrowWriterOptions::new()
        .with_properties(properties())
        .with_skip_arrow_metadata(true);
    let mut writer = parquet::arrow::ArrowWriter::try_new_with_options(
        File::create(&theirs).unwrap(),
        Arc::clone(&schema),
        options,
    )
    .unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    assert_eq!(read_lists(&ours, 1), rows);
    let page_starts = |path: &Path| -> Vec<Vec<i64>> {
        let metadata = read_metadata(path);
        (0..metadata.num_row_groups())
            .map(|group| {
                let index = metadata.page_index_for_row_group(group);
                let offsets = index.offset_index(1).unwrap();
                offsets
                    .page_locations()
                    .iter()
                    .map(|page| page.first_row_index)
                    .collect()
            })
            .collect()
    };
    let starts = page_starts(&ours);
    assert!(starts[0].len() > 2, "{starts:?}");
    assert_eq!(starts, page_starts(&theirs));
}
