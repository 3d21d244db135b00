//! Free text (`headline`, `experience`) read straight from the input's pages, row after
//! row, for the output columns the gate encodes itself
//! ([`crate::delta_length_string_writer`]).
//!
//! Through the Arrow reader, each string became a 16-byte view into its page and was
//! checked as UTF-8 on its own: 4.2% of the gate's time at 10M members, decompression
//! aside. Here a kept string goes from the decompressed page into the output page in one
//! copy, and the writer checks the kept strings as UTF-8 a mini-batch at a time, as one
//! run of bytes (about 3% less CPU work in all, see `bench/gate.md`, session 10).
//!
//! Strings of rows that are not kept are never checked, as they are never written.
//!
//! Only flat, optional or required `BYTE_ARRAY` columns whose chunks use `PLAIN` values or
//! a dictionary (`RLE_DICTIONARY`, `PLAIN_DICTIONARY`) with RLE levels are read here
//! ([`readable`]); any other layout goes through the Arrow reader as before. Pages come
//! from parquet's own page reader, which reads and decompresses them.

use std::fs::File;
use std::path::Path;

use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::ColumnDescriptor;

use crate::chunk_pages::{self, plain_span, read_length, Failure};
use crate::rle_hybrid;

/// Whether every chunk of the leaf column `leaf` in `row_groups` can be read here.
pub fn readable(
    descriptor: &ColumnDescriptor,
    row_groups: &[RowGroupMetaData],
    leaf: usize,
) -> bool {
    let flat_text = descriptor.physical_type() == PhysicalType::BYTE_ARRAY
        && descriptor.max_rep_level() == 0
        && descriptor.max_def_level() <= 1;
    flat_text
        && row_groups.iter().all(|group| {
            group.columns().get(leaf).is_some_and(|chunk| {
                chunk.encodings().all(|encoding| {
                    matches!(
                        encoding,
                        Encoding::PLAIN
                            | Encoding::RLE
                            | Encoding::RLE_DICTIONARY
                            | Encoding::PLAIN_DICTIONARY
                    )
                })
            })
        })
}

/// A dictionary page's strings: where each one is in the page.
struct Dictionary {
    page: Bytes,
    spans: Vec<(usize, usize)>,
}

/// How the values of the current data page are stored.
enum Values {
    /// Each string's length (u32 little endian), then its bytes; `position` is the next
    /// string's length.
    Plain { page: Bytes, position: usize },
    /// Indices into the chunk's dictionary.
    Dictionary(rle_hybrid::Decoder),
}

/// Why reading a segment stopped.
enum Stop {
    /// The pages are not as they should be.
    Pages(String),
    /// The caller's `visit` failed.
    Visit(ParquetError),
}

/// The data page being read.
struct DataPage {
    rows_left: usize,
    /// Definition levels, when the column is optional: 0 for a null, 1 for a string.
    definition: Option<rle_hybrid::Decoder>,
    values: Values,
}

/// The strings of one column chunk, row after row, from a given row on.
pub struct TextPages {
    pages: SerializedPageReader<File>,
    optional: bool,
    dictionary: Option<Dictionary>,
    page: Option<DataPage>,
    failure: Failure,
}

impl TextPages {
    /// The strings of leaf `leaf` of row group `row_group` of `path`, from row `skip` on.
    /// Whole pages before `skip` are passed over without being decompressed.
    pub fn open(
        path: &Path,
        row_group: &RowGroupMetaData,
        descriptor: &ColumnDescriptor,
        leaf: usize,
        skip: usize,
    ) -> Result<TextPages, String> {
        let column = descriptor.path().string();
        let pages = chunk_pages::open(path, row_group, leaf, &column)?;
        let mut text = TextPages {
            pages,
            optional: descriptor.max_def_level() == 1,
            dictionary: None,
            page: None,
            failure: Failure::new(column),
        };
        let left = text
            .skip_pages(skip)
            .map_err(|problem| text.fail(problem))?;
        if let Err(error) = text.skip(left) {
            return Err(text.failure.take_or(error.to_string()));
        }
        Ok(text)
    }

    /// The first error this reader returned, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.first()
    }

    /// Records `problem` (the first one only) as this column's, and returns it as an
    /// error message naming the column.
    pub fn fail(&mut self, problem: String) -> String {
        self.failure.fail(problem)
    }

    /// Passes over whole data pages within the first `rows` rows; the rows left to skip
    /// in the page after them.
    fn skip_pages(&mut self, mut rows: usize) -> Result<usize, String> {
        let error = |error: parquet::errors::ParquetError| error.to_string();
        while rows > 0 {
            let Some(next) = self.pages.peek_next_page().map_err(error)? else {
                break;
            };
            // A flat column has one level a row.
            let page_rows = next.num_rows.or(next.num_levels);
            match page_rows {
                // Left undecompressed where the page reader can give it back later: a
                // slice of a row group in its `PLAIN` pages never needs it.
                _ if next.is_dict && self.pages.supports_deferred_dictionary() => {
                    self.pages.skip_next_page().map_err(error)?;
                }
                _ if next.is_dict => {
                    let page = self.pages.get_next_page().map_err(error)?;
                    if let Some(page) = page {
                        self.take_page(page)?;
                    }
                }
                Some(page_rows) if page_rows <= rows => {
                    self.pages.skip_next_page().map_err(error)?;
                    rows -= page_rows;
                }
                _ => break,
            }
        }
        Ok(rows)
    }

    /// Passes over the next `rows` rows (their pages are decompressed all the same).
    pub fn skip(&mut self, rows: usize) -> parquet::errors::Result<()> {
        self.for_each_row(rows, |_| false, &mut |_| Ok(()))
    }

    /// Calls `visit` with the string (`None` for a null) of each of the next `rows` rows
    /// that `kept` (given the row's index among them) keeps, in order, and passes over
    /// the others. An error of `visit` is handed back as it is; one of the pages is also
    /// recorded ([`TextPages::failure`]).
    #[inline]
    pub fn for_each_row<F>(
        &mut self,
        rows: usize,
        kept: impl Fn(usize) -> bool,
        visit: &mut F,
    ) -> parquet::errors::Result<()>
    where
        F: FnMut(Option<&[u8]>) -> parquet::errors::Result<()>,
    {
        let mut done = 0;
        while done < rows {
            let in_page = match &self.page {
                Some(page) if page.rows_left > 0 => page.rows_left,
                _ => {
                    if let Err(problem) = self.next_data_page() {
                        return Err(ParquetError::General(self.fail(problem)));
                    }
                    continue;
                }
            };
            let segment = in_page.min(rows - done);
            let read = self.read_segment(segment, |row| kept(done + row), visit);
            match read {
                Ok(()) => done += segment,
                Err(Stop::Visit(error)) => return Err(error),
                Err(Stop::Pages(problem)) => return Err(ParquetError::General(self.fail(problem))),
            }
        }
        Ok(())
    }

    /// The next `rows` rows, all in the current data page. Rows whose definition levels
    /// form a repeated run (all present, or all null: nearly every row of a column
    /// without nulls) go in one loop, without a look at their levels each; the others a
    /// row at a time.
    #[inline]
    fn read_segment<F>(
        &mut self,
        rows: usize,
        kept: impl Fn(usize) -> bool,
        visit: &mut F,
    ) -> Result<(), Stop>
    where
        F: FnMut(Option<&[u8]>) -> parquet::errors::Result<()>,
    {
        let Some(page) = &mut self.page else {
            return Err(Stop::Pages("no data page".into()));
        };
        page.rows_left -= rows;
        let dictionary = self.dictionary.as_ref();
        let mut row = 0;
        while row < rows {
            let Some(levels) = page.definition.as_mut() else {
                return present_rows(&mut page.values, dictionary, row..rows, &kept, visit);
            };
            // A run of rows with one level, or else the next row's own level.
            let (level, run) = match levels.next_repeated(rows - row).map_err(Stop::Pages)? {
                Some(run) => run,
                None => (levels.next_value().map_err(Stop::Pages)?, 1),
            };
            if is_present(level)? {
                present_rows(&mut page.values, dictionary, row..row + run, &kept, visit)?;
            } else {
                for row in row..row + run {
                    if kept(row) {
                        visit(None).map_err(Stop::Visit)?;
                    }
                }
            }
            row += run;
        }
        Ok(())
    }

    fn next_data_page(&mut self) -> Result<(), String> {
        loop {
            let page = self
                .pages
                .get_next_page()
                .map_err(|error| error.to_string())?
                .ok_or("fewer rows than its row group")?;
            if self.take_page(page)? {
                return Ok(());
            }
        }
    }

    /// Takes in a page read; whether it is a data page.
    fn take_page(&mut self, page: Page) -> Result<bool, String> {
        match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                    return Err(format!("a dictionary page encoded {encoding}"));
                }
                let spans = chunk_pages::plain_spans(&buf, num_values as usize)?;
                self.dictionary = Some(Dictionary { page: buf, spans });
                Ok(false)
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                ..
            } => {
                let mut values_start = 0;
                let definition = if self.optional {
                    if def_level_encoding != Encoding::RLE {
                        return Err(format!("definition levels encoded {def_level_encoding}"));
                    }
                    let length = read_length(&buf, 0).ok_or("a data page cut short")?;
                    values_start = 4 + length;
                    let levels = buf
                        .get(4..values_start)
                        .ok_or("definition levels cut short")?;
                    Some(rle_hybrid::Decoder::new(buf.slice_ref(levels), 1)?)
                } else {
                    None
                };
                self.start_page(
                    &buf,
                    values_start,
                    num_values as usize,
                    definition,
                    encoding,
                )?;
                Ok(true)
            }
            Page::DataPageV2 {
                buf,
                num_rows,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                if rep_levels_byte_len != 0 {
                    return Err("repetition levels in a flat column".into());
                }
                let values_start = def_levels_byte_len as usize;
                let levels = buf
                    .get(..values_start)
                    .ok_or("definition levels cut short")?;
                let definition = match self.optional {
                    true => Some(rle_hybrid::Decoder::new(buf.slice_ref(levels), 1)?),
                    false => None,
                };
                self.start_page(&buf, values_start, num_rows as usize, definition, encoding)?;
                Ok(true)
            }
        }
    }

    fn start_page(
        &mut self,
        buf: &Bytes,
        values_start: usize,
        rows: usize,
        definition: Option<rle_hybrid::Decoder>,
        encoding: Encoding,
    ) -> Result<(), String> {
        let values = buf.get(values_start..).ok_or("a data page cut short")?;
        let values = match encoding {
            Encoding::PLAIN => Values::Plain {
                page: buf.slice_ref(values),
                position: 0,
            },
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let (&bit_width, indices) = values
                    .split_first()
                    .ok_or("a data page without its bit width")?;
                if self.dictionary.is_none() {
                    let deferred = self
                        .pages
                        .take_deferred_dictionary()
                        .map_err(|error| error.to_string())?;
                    if let Some(page) = deferred {
                        self.take_page(page)?;
                    }
                }
                if self.dictionary.is_none() {
                    return Err("dictionary indices before any dictionary page".into());
                }
                Values::Dictionary(rle_hybrid::Decoder::new(buf.slice_ref(indices), bit_width)?)
            }
            other => return Err(format!("values encoded {other}")),
        };
        self.page = Some(DataPage {
            rows_left: rows,
            definition,
            values,
        });
        Ok(())
    }
}

/// Rows `rows` of a segment, each holding a string: those `kept` keeps go to `visit`.
#[inline(always)]
fn present_rows<F>(
    values: &mut Values,
    dictionary: Option<&Dictionary>,
    rows: std::ops::Range<usize>,
    kept: &impl Fn(usize) -> bool,
    visit: &mut F,
) -> Result<(), Stop>
where
    F: FnMut(Option<&[u8]>) -> parquet::errors::Result<()>,
{
    match values {
        Values::Plain { page, position } => {
            for row in rows {
                let value = plain_value(page, position)?;
                if kept(row) {
                    visit(Some(value)).map_err(Stop::Visit)?;
                }
            }
        }
        Values::Dictionary(indices) => {
            for row in rows {
                let value = dictionary_value(dictionary, indices)?;
                if kept(row) {
                    visit(Some(value)).map_err(Stop::Visit)?;
                }
            }
        }
    }
    Ok(())
}

/// Whether a row with definition level `level` holds a string.
#[inline(always)]
fn is_present(level: u32) -> Result<bool, Stop> {
    match level {
        0 => Ok(false),
        1 => Ok(true),
        level => Err(Stop::Pages(format!(
            "a definition level of {level}, above 1"
        ))),
    }
}

/// The `PLAIN` string at `position` of `page`; `position` moves past it.
#[inline(always)]
fn plain_value<'a>(page: &'a [u8], position: &mut usize) -> Result<&'a [u8], Stop> {
    let (start, end) = plain_span(page, *position)
        .ok_or_else(|| Stop::Pages("a PLAIN page cut short, or a string past its end".into()))?;
    *position = end;
    Ok(page.get(start..end).unwrap_or_default())
}

/// The dictionary string the next index points at.
#[inline(always)]
fn dictionary_value<'a>(
    dictionary: Option<&'a Dictionary>,
    indices: &mut rle_hybrid::Decoder,
) -> Result<&'a [u8], Stop> {
    let dictionary = dictionary
        .ok_or_else(|| Stop::Pages("a dictionary index without a dictionary page".into()))?;
    let index = indices.next_value().map_err(Stop::Pages)? as usize;
    dictionary
        .spans
        .get(index)
        .and_then(|&(start, end)| dictionary.page.get(start..end))
        .ok_or_else(|| {
            Stop::Pages(format!(
                "dictionary index {index}, past its {} strings",
                dictionary.spans.len()
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// How a test file is written.
    #[derive(Clone, Debug)]
    struct Layout {
        nullable: bool,
        version: WriterVersion,
        dictionary: bool,
        dictionary_page_bytes: usize,
        page_rows: usize,
        row_group_rows: usize,
    }

    fn write(path: &Path, values: &[Option<String>], layout: &Layout) {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "text",
            DataType::Utf8,
            layout.nullable,
        )]));
        let properties = WriterProperties::builder()
            .set_writer_version(layout.version)
            .set_compression(Compression::ZSTD(Default::default()))
            .set_dictionary_enabled(layout.dictionary)
            // Without it, version 2 falls back to `DELTA_BYTE_ARRAY`, read elsewhere.
            .set_encoding(Encoding::PLAIN)
            .set_dictionary_page_size_limit(layout.dictionary_page_bytes)
            .set_data_page_row_count_limit(layout.page_rows)
            .set_write_batch_size(layout.page_rows)
            .set_max_row_group_row_count(Some(layout.row_group_rows))
            .build();
        let file = File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
        let column: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        writer
            .write(&RecordBatch::try_new(schema, vec![column]).unwrap())
            .unwrap();
        writer.close().unwrap();
    }

    /// Each row group's strings from row `skip` on, read by [`TextPages`]; after them,
    /// the reader must have nothing left.
    fn read_pages(path: &Path, skip: usize) -> Vec<Vec<Option<String>>> {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let metadata = reader.metadata();
        let descriptor = metadata.file_metadata().schema_descr().column(0);
        assert!(readable(&descriptor, metadata.row_groups(), 0));
        metadata
            .row_groups()
            .iter()
            .map(|group| {
                let rows = group.num_rows() as usize;
                let skip = skip.min(rows);
                let mut text = TextPages::open(path, group, &descriptor, 0, skip).unwrap();
                // Every third row kept, then the others, from a second reader.
                let mut strings = vec![None; rows - skip];
                let mut kept = Vec::new();
                let third = |row: usize| row.is_multiple_of(3);
                text.for_each_row(rows - skip, third, &mut |value| {
                    kept.push(value.map(|bytes| String::from_utf8(bytes.to_vec()).unwrap()));
                    Ok(())
                })
                .unwrap();
                for (row, value) in (0..rows - skip).filter(|row| third(*row)).zip(kept) {
                    strings[row] = value;
                }
                assert!(text.skip(1).is_err(), "a row past the row group");
                assert!(text.failure().unwrap().contains("fewer rows"));
                let mut text = TextPages::open(path, group, &descriptor, 0, skip).unwrap();
                let mut others = Vec::new();
                text.for_each_row(rows - skip, |row| !third(row), &mut |value| {
                    others.push(value.map(|bytes| String::from_utf8(bytes.to_vec()).unwrap()));
                    Ok(())
                })
                .unwrap();
                for (row, value) in (0..rows - skip).filter(|row| !third(*row)).zip(others) {
                    strings[row] = value;
                }
                strings
            })
            .collect()
    }

    /// The same, read by parquet's Arrow reader.
    fn read_arrow(path: &Path, skip: usize) -> Vec<Vec<Option<String>>> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let groups = builder.metadata().num_row_groups();
        (0..groups)
            .map(|group| {
                let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                    .unwrap()
                    .with_row_groups(vec![group])
                    .build()
                    .unwrap();
                let mut strings = Vec::new();
                for batch in reader {
                    let batch = batch.unwrap();
                    let column = batch.column(0).as_string::<i32>();
                    strings.extend(column.iter().map(|value| value.map(str::to_string)));
                }
                strings.split_off(skip.min(strings.len()))
            })
            .collect()
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(String::new())),
            // Few distinct values (dictionary pages) and many (the dictionary abandoned).
            4 => (0u32..6).prop_map(|index| Some(format!("common {index} é"))),
            4 => "[a-zé€😀 ]{0,40}".prop_map(Some),
        ]
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(64usize), Just(1 << 20)],
            1usize..40,
            1usize..200,
        )
            .prop_map(
                |(nullable, v2, dictionary, dictionary_page_bytes, page_rows, row_group_rows)| {
                    Layout {
                        nullable,
                        version: match v2 {
                            true => WriterVersion::PARQUET_2_0,
                            false => WriterVersion::PARQUET_1_0,
                        },
                        dictionary,
                        dictionary_page_bytes,
                        page_rows,
                        row_group_rows,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        // Proves the pages give every row group's strings, from any row on, as parquet's
        // own reader reads them: both page versions, PLAIN and dictionary values (also a
        // dictionary abandoned part way), optional and required columns, many pages.
        #[test]
        fn pages_read_as_the_arrow_reader_reads(
            values in proptest::collection::vec(text(), 1..300),
            layout in layout(),
            skip in 0usize..60,
        ) {
            let values: Vec<Option<String>> = match layout.nullable {
                true => values,
                false => values.into_iter().map(|value| Some(value.unwrap_or_default())).collect(),
            };
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("text.parquet");
            write(&path, &values, &layout);
            prop_assert_eq!(read_pages(&path, skip), read_arrow(&path, skip));
        }
    }

    // Proves layouts read elsewhere are refused up front: a list, and strings encoded
    // `DELTA_LENGTH_BYTE_ARRAY`.
    #[test]
    fn other_layouts_are_not_readable() {
        let directory = tempfile::tempdir().unwrap();
        let write_column = |name: &str, column: ArrayRef, properties| {
            let path = directory.path().join(name);
            let field = Field::new(name, column.data_type().clone(), true);
            let schema = Arc::new(Schema::new(vec![field]));
            let file = File::create(&path).unwrap();
            let mut writer = ArrowWriter::try_new(file, schema.clone(), properties).unwrap();
            writer
                .write(&RecordBatch::try_new(schema, vec![column]).unwrap())
                .unwrap();
            writer.close().unwrap();
            let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let metadata = reader.metadata();
            let descriptor = metadata.file_metadata().schema_descr().column(0);
            readable(&descriptor, metadata.row_groups(), 0)
        };
        let delta = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_LENGTH_BYTE_ARRAY)
            .build();
        let strings: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("b")]));
        assert!(!write_column("delta", strings, Some(delta)));

        let mut tags =
            arrow_array::builder::ListBuilder::new(arrow_array::builder::StringBuilder::new());
        tags.values().append_value("a");
        tags.append(true);
        assert!(!write_column("tags", Arc::new(tags.finish()), None));
    }
}
