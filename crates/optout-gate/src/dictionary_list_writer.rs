//! Column chunks for lists of dictionary-encoded strings (`List<Dictionary<Int32, Utf8>>`:
//! skills, tags), encoded here rather than by the Arrow writer, which interns every item
//! (hashes and compares its bytes) to build the chunk's dictionary although each item
//! already is a key into one. Here each value of a batch's dictionary is interned once,
//! when an item first points at it, into a table from input key to output index; the
//! table is kept while batches bring the same values buffers (the reader hands out one
//! values array per input dictionary page, and filters and slices keep its buffers), so
//! an item costs one lookup. On the benchmark: 45M items, 179 distinct strings.
//!
//! Rows can also come straight from the input's pages ([`crate::list_pages`]): their
//! levels are then copied as they are and their items remapped the same way, a run of
//! kept rows at a time, into the same pages as rows from Arrow arrays (a property test
//! compares the two byte for byte).
//!
//! The chunk is laid out as parquet-rs lays out the column under the same properties:
//! data pages v2 (levels RLE, uncompressed; values `RLE_DICTIONARY`, compressed) cut at
//! row boundaries by the page row and size limits, a `PLAIN` dictionary page first, and,
//! once the dictionary reaches its page size limit, the rest of the row group's items
//! written `PLAIN` (where parquet-rs would use `DELTA_BYTE_ARRAY`). The row group writer
//! splices the chunk into the file with its metadata and offset index; no statistics,
//! as for every column but the id.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, PrimitiveArray, StringArray};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use crate::column_chunk::{
    assemble_chunk, general, leaf_without_extras, ColumnChunkEncoder, DataPage, FieldPages,
    KeptRows, PageCompressor, PageShape,
};
use crate::list_pages::{PageDictionary, RowSpan};
use crate::rle_hybrid;

/// A remap entry: the input value is not interned yet.
const UNMAPPED: u32 = u32::MAX;
/// A remap entry: the input value is null, so are the items that point at it.
const NULL_VALUE: u32 = u32::MAX - 1;
/// Output dictionary indices stay below the markers.
const DICTIONARY_ENTRIES_MAX: usize = NULL_VALUE as usize;

/// Definition levels of a three-level Parquet list (`optional group (LIST)`, `repeated
/// group list`, `optional element`), from which nullability follows.
#[derive(Clone, Copy, Debug)]
struct Levels {
    list_nullable: bool,
    item_nullable: bool,
    /// A present item.
    item: u8,
    /// An empty list; a null list is 0.
    empty_list: u8,
}

impl Levels {
    fn null_item(self) -> u8 {
        self.item - 1
    }
}

/// The values of the page being built: dictionary indices until the row group's
/// dictionary is full, then the strings themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueEncoding {
    Dictionary,
    Plain,
}

/// Settings of the column, resolved once from the writer properties.
struct ChunkSettings {
    descriptor: ColumnDescPtr,
    levels: Levels,
    page_rows_max: usize,
    page_values_bytes_max: usize,
    dictionary_bytes_max: usize,
    /// Levels between two checks of the page and dictionary limits.
    mini_batch_levels: usize,
    offset_index: bool,
}

/// The row group's dictionary: distinct strings in first-seen order.
#[derive(Default)]
struct OutputDictionary {
    indices: HashMap<Box<str>, u32>,
    /// The dictionary page, `PLAIN`: each string's length (u32 little endian), its bytes.
    plain: Vec<u8>,
    /// Each entry's length in bytes.
    string_bytes: Vec<u32>,
}

impl OutputDictionary {
    fn intern(&mut self, value: &str) -> Result<u32> {
        if let Some(&index) = self.indices.get(value) {
            return Ok(index);
        }
        if self.string_bytes.len() >= DICTIONARY_ENTRIES_MAX {
            return Err(general("the dictionary has too many entries"));
        }
        let index = self.string_bytes.len() as u32;
        let length = put_plain(&mut self.plain, value)?;
        self.string_bytes.push(length);
        self.indices.insert(value.into(), index);
        Ok(index)
    }

    fn len(&self) -> usize {
        self.string_bytes.len()
    }
}

/// Input key to output dictionary index, for one input dictionary: the values array of
/// a batch, or a dictionary page read straight from the input ([`crate::list_pages`]).
#[derive(Default)]
struct Remap {
    source: Option<RemapSource>,
    output_indices: Vec<u32>,
}

/// The input dictionary a [`Remap`] is for.
enum RemapSource {
    /// Kept alive, so that equal buffer addresses can only mean the same, unchanged,
    /// strings.
    Values(StringArray),
    /// A [`PageDictionary::id`].
    Page(u64),
}

impl Remap {
    fn use_values(&mut self, values: &StringArray) {
        if let Some(RemapSource::Values(known)) = &self.source {
            if same_strings(known, values) {
                return;
            }
        }
        self.start(RemapSource::Values(values.clone()), values.len());
    }

    fn use_dictionary(&mut self, dictionary: &PageDictionary) {
        if !matches!(self.source, Some(RemapSource::Page(id)) if id == dictionary.id()) {
            self.start(RemapSource::Page(dictionary.id()), dictionary.len());
        }
    }

    /// Maps nothing yet, for an input dictionary of `entries` values.
    fn start(&mut self, source: RemapSource, entries: usize) {
        self.source = Some(source);
        self.output_indices.clear();
        self.output_indices.resize(entries, UNMAPPED);
    }

    /// Forgets every mapping: the output dictionary they point into is gone.
    fn forget(&mut self) {
        self.source = None;
        self.output_indices.clear();
    }

    /// Appends the output indices of `keys` to `indices` when every key points at a value
    /// interned already, which is the common case; otherwise appends nothing.
    #[inline]
    fn push_interned(&self, keys: &[i32], indices: &mut Vec<u32>) -> bool {
        let before = indices.len();
        let mut all_interned = true;
        indices.extend(keys.iter().map(|&key| {
            let index = usize::try_from(key)
                .ok()
                .and_then(|key| self.output_indices.get(key))
                .copied()
                .unwrap_or(UNMAPPED);
            all_interned &= index < NULL_VALUE;
            index
        }));
        if !all_interned {
            indices.truncate(before);
        }
        all_interned
    }

    /// The output index of the value `key` points at, or [`NULL_VALUE`].
    #[inline]
    fn output_index(
        &mut self,
        key: i32,
        values: &StringArray,
        dictionary: &mut OutputDictionary,
    ) -> Result<u32> {
        let slot = usize::try_from(key)
            .ok()
            .and_then(|key| self.output_indices.get_mut(key))
            .ok_or_else(|| general(format!("dictionary key {key} is out of range")))?;
        if *slot != UNMAPPED {
            return Ok(*slot);
        }
        // In range of `output_indices`, which has the length of `values`.
        let key = key as usize;
        *slot = if values.is_null(key) {
            NULL_VALUE
        } else {
            dictionary.intern(values.value(key))?
        };
        Ok(*slot)
    }
}

/// Whether two string arrays are views of the same buffers (offsets, bytes, validity).
fn same_strings(a: &StringArray, b: &StringArray) -> bool {
    let same_nulls = match (a.nulls(), b.nulls()) {
        (None, None) => true,
        (Some(a), Some(b)) => a.inner().ptr_eq(b.inner()),
        _ => false,
    };
    same_nulls && a.offsets().ptr_eq(b.offsets()) && a.values().ptr_eq(b.values())
}

/// Appends `value` to `out` as a `PLAIN` string (its length, u32 little endian, then its
/// bytes), the layout of dictionary pages and `PLAIN` values alike; returns the length.
fn put_plain(out: &mut Vec<u8>, value: &str) -> Result<u32> {
    let length =
        u32::try_from(value.len()).map_err(|_| general("a string is longer than 4 GiB"))?;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(value.as_bytes());
    Ok(length)
}

/// The levels and values of the page being built.
#[derive(Default)]
struct PageBuffer {
    repetition_levels: Vec<u8>,
    definition_levels: Vec<u8>,
    dictionary_indices: Vec<u32>,
    plain_values: Vec<u8>,
    /// Bytes of the `PLAIN` values' strings, without their lengths.
    plain_string_bytes: i64,
    rows: usize,
    nulls: usize,
}

impl PageBuffer {
    fn push_empty(&mut self, definition_level: u8) {
        self.repetition_levels.push(0);
        self.definition_levels.push(definition_level);
        self.nulls += 1;
    }

    /// A present item's string, once the dictionary is full (its definition level
    /// aside).
    fn push_plain_value(&mut self, value: &str) -> Result<()> {
        let length = put_plain(&mut self.plain_values, value)?;
        self.plain_string_bytes += i64::from(length);
        Ok(())
    }

    fn push_repetition_levels(&mut self, items: usize) {
        self.repetition_levels.push(0);
        self.repetition_levels
            .extend(std::iter::repeat_n(1, items.saturating_sub(1)));
    }

    fn clear(&mut self) {
        self.repetition_levels.clear();
        self.definition_levels.clear();
        self.dictionary_indices.clear();
        self.plain_values.clear();
        self.plain_string_bytes = 0;
        self.rows = 0;
        self.nulls = 0;
    }
}

/// Writes one column of type `List<Dictionary<Int32, Utf8>>`, a row group's chunk at a
/// time.
pub struct DictionaryListWriter {
    settings: ChunkSettings,
    compressor: PageCompressor,
    value_encoding: ValueEncoding,
    dictionary: OutputDictionary,
    remap: Remap,
    page: PageBuffer,
    pages: Vec<DataPage>,
    rows: u64,
    /// The page's values before compression, kept for its capacity.
    values_scratch: Vec<u8>,
}

/// The one type this module writes.
fn is_dictionary_string_list(data_type: &DataType) -> bool {
    match data_type {
        DataType::List(item) => matches!(
            item.data_type(),
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Utf8
        ),
        _ => false,
    }
}

impl DictionaryListWriter {
    /// A writer for the top-level `field`, whose only leaf is `leaf` of `schema`, when its
    /// type, its Parquet layout and `properties` are ones this module honours in full
    /// (otherwise, `None`: the Arrow writer keeps the column).
    pub fn for_field(
        field: &Field,
        schema: &SchemaDescriptor,
        leaf: usize,
        properties: &WriterProperties,
    ) -> Result<Option<DictionaryListWriter>> {
        let Some(descriptor) =
            leaf_without_extras(field, is_dictionary_string_list, schema, leaf, properties)
        else {
            return Ok(None);
        };
        let path = descriptor.path();
        let list_nullable = schema.get_column_root(leaf).is_optional();
        let item_nullable = descriptor.self_type().is_optional();
        let item = u8::from(list_nullable) + 1 + u8::from(item_nullable);
        let three_level_list = descriptor.physical_type() == PhysicalType::BYTE_ARRAY
            && descriptor.max_rep_level() == 1
            && i64::from(descriptor.max_def_level()) == i64::from(item);
        let Some(compressor) = PageCompressor::for_column(properties, path)? else {
            return Ok(None);
        };
        let honoured = three_level_list
            && properties.dictionary_enabled(path)
            && matches!(properties.encoding(path), None | Some(Encoding::PLAIN));
        if !honoured {
            return Ok(None);
        }
        let settings = ChunkSettings {
            levels: Levels {
                list_nullable,
                item_nullable,
                item,
                empty_list: u8::from(list_nullable),
            },
            page_rows_max: properties.column_data_page_row_count_limit(path).max(1),
            page_values_bytes_max: properties.column_data_page_size_limit(path).max(1),
            dictionary_bytes_max: properties.column_dictionary_page_size_limit(path),
            mini_batch_levels: properties.write_batch_size().max(1),
            offset_index: !properties.offset_index_disabled(),
            descriptor,
        };
        Ok(Some(DictionaryListWriter {
            settings,
            compressor,
            value_encoding: ValueEncoding::Dictionary,
            dictionary: OutputDictionary::default(),
            remap: Remap::default(),
            page: PageBuffer::default(),
            pages: Vec::new(),
            rows: 0,
            values_scratch: Vec::new(),
        }))
    }

    /// Items `first..` of a row, as indices into the row group's dictionary.
    fn push_dictionary_items(
        &mut self,
        row_keys: &[i32],
        first: usize,
        keys: &PrimitiveArray<Int32Type>,
        values: &StringArray,
    ) -> Result<()> {
        let levels = self.settings.levels;
        self.page.push_repetition_levels(row_keys.len());
        let keys_have_nulls = keys.null_count() > 0;
        if !keys_have_nulls
            && self
                .remap
                .push_interned(row_keys, &mut self.page.dictionary_indices)
        {
            self.page
                .definition_levels
                .extend(std::iter::repeat_n(levels.item, row_keys.len()));
            return Ok(());
        }
        for (position, &key) in row_keys.iter().enumerate() {
            let index = if keys_have_nulls && keys.is_null(first + position) {
                NULL_VALUE
            } else {
                self.remap.output_index(key, values, &mut self.dictionary)?
            };
            if index == NULL_VALUE {
                self.push_null_item()?;
            } else {
                self.page.definition_levels.push(levels.item);
                self.page.dictionary_indices.push(index);
            }
        }
        Ok(())
    }

    /// Items `first..` of a row, as `PLAIN` strings, once the dictionary is full.
    fn push_plain_items(
        &mut self,
        row_keys: &[i32],
        first: usize,
        keys: &PrimitiveArray<Int32Type>,
        values: &StringArray,
    ) -> Result<()> {
        let levels = self.settings.levels;
        self.page.push_repetition_levels(row_keys.len());
        for (position, &key) in row_keys.iter().enumerate() {
            let value = if keys.is_null(first + position) {
                None
            } else {
                let key = usize::try_from(key)
                    .ok()
                    .filter(|&key| key < values.len())
                    .ok_or_else(|| general(format!("dictionary key {key} is out of range")))?;
                values.is_valid(key).then(|| values.value(key))
            };
            match value {
                Some(value) => {
                    self.page.definition_levels.push(levels.item);
                    self.page.push_plain_value(value)?;
                }
                None => self.push_null_item()?,
            }
        }
        Ok(())
    }

    /// Consecutive rows read straight from the input's pages: their levels as they are
    /// (the input column nests as this one does), their present items remapped into the
    /// row group's dictionary, or written `PLAIN` once the dictionary is full.
    fn push_rows(
        &mut self,
        rows: usize,
        span: RowSpan<'_>,
        dictionary: &PageDictionary,
    ) -> Result<()> {
        let page = &mut self.page;
        page.repetition_levels.extend_from_slice(span.repetition);
        page.definition_levels.extend_from_slice(span.definition);
        page.nulls += span.definition.len().saturating_sub(span.indices.len());
        page.rows += rows;
        let past_end = |index: u32| {
            general(format!(
                "dictionary index {index}, past its {} strings",
                dictionary.len()
            ))
        };
        match self.value_encoding {
            ValueEncoding::Dictionary => {
                self.remap.use_dictionary(dictionary);
                let remap = &mut self.remap.output_indices;
                page.dictionary_indices.reserve(span.indices.len());
                for &index in span.indices {
                    let slot = remap
                        .get_mut(index as usize)
                        .ok_or_else(|| past_end(index))?;
                    if *slot == UNMAPPED {
                        let value = dictionary.value(index).ok_or_else(|| past_end(index))?;
                        *slot = self.dictionary.intern(value)?;
                    }
                    page.dictionary_indices.push(*slot);
                }
            }
            ValueEncoding::Plain => {
                for &index in span.indices {
                    let value = dictionary.value(index).ok_or_else(|| past_end(index))?;
                    page.push_plain_value(value)?;
                }
            }
        }
        Ok(())
    }

    /// A null item, where the schema lets items be null.
    fn push_null_item(&mut self) -> Result<()> {
        let levels = self.settings.levels;
        if !levels.item_nullable {
            return Err(self.null_in_required("item"));
        }
        self.page.definition_levels.push(levels.null_item());
        self.page.nulls += 1;
        Ok(())
    }

    fn null_in_required(&self, what: &str) -> ParquetError {
        general(format!(
            "column {}: a null {what}, but the schema says it cannot be null",
            self.settings.descriptor.path()
        ))
    }

    /// Ends the page once a limit is reached, and leaves the dictionary once it is full.
    fn end_mini_batch(&mut self) -> Result<()> {
        if self.page.rows >= self.settings.page_rows_max
            || self.page_values_bytes() >= self.settings.page_values_bytes_max
        {
            self.finish_page()?;
        }
        if self.value_encoding == ValueEncoding::Dictionary
            && self.dictionary.plain.len() >= self.settings.dictionary_bytes_max
        {
            // The page's indices point into the dictionary as it is now: it ends here,
            // and the dictionary with it.
            if self.page.rows > 0 {
                self.finish_page()?;
            }
            self.value_encoding = ValueEncoding::Plain;
            self.remap.forget();
        }
        Ok(())
    }

    /// The page's values once encoded (before compression), about as parquet-rs
    /// estimates them.
    fn page_values_bytes(&self) -> usize {
        match self.value_encoding {
            ValueEncoding::Dictionary => {
                let bits = self.page.dictionary_indices.len() * usize::from(self.index_bit_width());
                1 + bits.div_ceil(8)
            }
            ValueEncoding::Plain => self.page.plain_values.len(),
        }
    }

    /// Bits per dictionary index; at least 1, as parquet-cpp writes a one-entry
    /// dictionary's (0 is valid, but few writers produce it).
    fn index_bit_width(&self) -> u8 {
        let largest = self.dictionary.len().saturating_sub(1);
        rle_hybrid::bit_width(u32::try_from(largest).unwrap_or(u32::MAX)).max(1)
    }

    fn finish_page(&mut self) -> Result<()> {
        let levels = self.settings.levels;
        let page = &self.page;
        let mut level_bytes = Vec::with_capacity(
            (page.repetition_levels.len() + page.definition_levels.len()) / 4 + 64,
        );
        rle_hybrid::encode(&page.repetition_levels, 1, &mut level_bytes);
        let repetition_bytes = level_bytes.len();
        rle_hybrid::encode(
            &page.definition_levels,
            rle_hybrid::bit_width(u32::from(levels.item)),
            &mut level_bytes,
        );
        let definition_bytes = level_bytes.len() - repetition_bytes;

        let mut values = std::mem::take(&mut self.values_scratch);
        values.clear();
        let string_bytes = match self.value_encoding {
            ValueEncoding::Dictionary => {
                let bit_width = self.index_bit_width();
                values.push(bit_width);
                rle_hybrid::encode(&page.dictionary_indices, bit_width, &mut values);
                page.dictionary_indices
                    .iter()
                    .map(|&index| {
                        let length = self.dictionary.string_bytes.get(index as usize);
                        i64::from(length.copied().unwrap_or(0))
                    })
                    .sum()
            }
            ValueEncoding::Plain => {
                values.extend_from_slice(&page.plain_values);
                page.plain_string_bytes
            }
        };
        let encoding = match self.value_encoding {
            ValueEncoding::Dictionary => Encoding::RLE_DICTIONARY,
            ValueEncoding::Plain => Encoding::PLAIN,
        };

        let uncompressed_size = level_bytes.len() + values.len();
        let (buffer, compressed) = self.compressor.page_bytes(&level_bytes, &values)?;
        self.values_scratch = values;

        let data_page = PageShape {
            levels: page.definition_levels.len(),
            nulls: page.nulls,
            rows: page.rows,
            encoding,
            repetition_bytes,
            definition_bytes,
        }
        .into_page(buffer, uncompressed_size, compressed)?;
        self.rows += page.rows as u64;
        self.pages.push(DataPage {
            page: data_page,
            rows: page.rows,
            string_bytes,
        });
        self.page.clear();
        Ok(())
    }
}

impl ColumnChunkEncoder for DictionaryListWriter {
    fn takes_pages(&self) -> bool {
        true
    }

    fn write_pages(
        &mut self,
        pages: &mut FieldPages,
        rows: usize,
        kept: KeptRows<'_>,
    ) -> Result<()> {
        let path = self.settings.descriptor.path();
        let FieldPages::Lists(lists) = pages else {
            return Err(general(format!(
                "column {path}: strings read for a column of lists"
            )));
        };
        let (input, own) = (lists.levels(), self.settings.levels);
        if (input.list_nullable, input.item_nullable, input.item)
            != (own.list_nullable, own.item_nullable, own.item)
        {
            return Err(general(format!(
                "column {path}: the input's lists nest otherwise than the output's"
            )));
        }
        let held = lists.next_rows(rows)?;
        let dictionary = held.dictionary();
        // Limits checked after each mini-batch, as in `write`, so both give the same pages;
        // between two checks, the kept rows in a run go in together.
        let mut mini_batch_levels = 0;
        let mini_batch_levels_max = self.settings.mini_batch_levels;
        let mut push_run = |from: usize, to: usize| -> Result<()> {
            let mut from = from;
            while from < to {
                let end = held.end_reaching(from, to, mini_batch_levels_max - mini_batch_levels);
                let span = held.span(from, end);
                mini_batch_levels += span.repetition.len();
                self.push_rows(end - from, span, dictionary)?;
                if mini_batch_levels >= mini_batch_levels_max {
                    self.end_mini_batch()?;
                    mini_batch_levels = 0;
                }
                from = end;
            }
            Ok(())
        };
        match kept {
            KeptRows::All => push_run(0, rows)?,
            KeptRows::Masked(mask) => {
                for (from, to) in mask.set_slices() {
                    push_run(from, to)?;
                }
            }
        }
        if mini_batch_levels > 0 {
            self.end_mini_batch()?;
        }
        Ok(())
    }

    fn write(&mut self, column: &dyn Array, kept: KeptRows<'_>) -> Result<()> {
        let wrong_type = || {
            general(format!(
                "column {}: expected List<Dictionary<Int32, Utf8>>, got {}",
                self.settings.descriptor.path(),
                column.data_type()
            ))
        };
        let list = column.as_list_opt::<i32>().ok_or_else(wrong_type)?;
        let items = list
            .values()
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(wrong_type)?;
        let values = items
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(wrong_type)?;
        let keys = items.keys();
        // One remap serves the whole batch: if the dictionary fills up during it, the rest
        // of the batch is written PLAIN, which needs none.
        if self.value_encoding == ValueEncoding::Dictionary {
            self.remap.use_values(values);
        }
        let levels = self.settings.levels;
        // As in parquet-rs, the limits are checked after each mini-batch: the rows that
        // reach `mini_batch_levels` levels from the batch's start or the last check. The
        // pages then hold the rows parquet-rs would give them. Cutting at exactly 20,000
        // rows (the default limit) left the benchmark's skills pages just under 128 KiB
        // of values, where zstd level 3 switches to its parameters for small inputs:
        // 7% more bytes for the same values.
        let mut mini_batch_levels = 0;
        let offsets = list.value_offsets();
        kept.try_for_each(list.len(), |row| {
            let (Some(&start), Some(&end)) = (offsets.get(row), offsets.get(row + 1)) else {
                return Err(general("a list row beyond its offsets"));
            };
            if list.is_null(row) {
                if !levels.list_nullable {
                    return Err(self.null_in_required("list"));
                }
                self.page.push_empty(0);
                mini_batch_levels += 1;
            } else if start == end {
                self.page.push_empty(levels.empty_list);
                mini_batch_levels += 1;
            } else {
                let (start, end) = (start as usize, end as usize);
                let row_keys = keys
                    .values()
                    .get(start..end)
                    .ok_or_else(|| general("list offsets beyond the items"))?;
                match self.value_encoding {
                    ValueEncoding::Dictionary => {
                        self.push_dictionary_items(row_keys, start, keys, values)?
                    }
                    ValueEncoding::Plain => self.push_plain_items(row_keys, start, keys, values)?,
                }
                mini_batch_levels += row_keys.len();
            }
            self.page.rows += 1;
            if mini_batch_levels >= self.settings.mini_batch_levels {
                self.end_mini_batch()?;
                mini_batch_levels = 0;
            }
            Ok(())
        })?;
        if mini_batch_levels > 0 {
            self.end_mini_batch()?;
        }
        Ok(())
    }

    /// Ends the row group's chunk: its encoded bytes (dictionary page, then data pages),
    /// with offsets from 0, and the metadata for the row group writer. The writer is then
    /// ready for the next row group, with a new dictionary.
    fn close_chunk(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        if self.page.rows > 0 {
            self.finish_page()?;
        }
        if self.pages.is_empty() {
            return Err(general("a column chunk without rows"));
        }
        let dictionary = std::mem::take(&mut self.dictionary);
        let pages = std::mem::take(&mut self.pages);
        let rows = std::mem::take(&mut self.rows);
        self.value_encoding = ValueEncoding::Dictionary;
        self.remap.forget();

        let dictionary_size = dictionary.plain.len();
        let entries = u32::try_from(dictionary.string_bytes.len())
            .map_err(|_| general("the dictionary has too many entries"))?;
        let dictionary_page = Page::DictionaryPage {
            buf: Bytes::from(self.compressor.compress_all(dictionary.plain)?),
            num_values: entries,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        assemble_chunk(
            &self.settings.descriptor,
            self.compressor.compression(),
            self.settings.offset_index,
            Some(CompressedPage::new(dictionary_page, dictionary_size)),
            pages,
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::list_pages::tests::{list_row, write_lists, Row};
    use crate::list_pages::ListPages;
    use arrow_buffer::BooleanBuffer;
    use arrow_schema::Schema;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::ArrowSchemaConverter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterVersion;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use proptest::prelude::*;
    use std::fs::File;
    use std::sync::Arc;

    fn list_type(item: DataType, item_nullable: bool) -> DataType {
        DataType::List(Arc::new(Field::new("element", item, item_nullable)))
    }

    fn dictionary_type() -> DataType {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    }

    /// An input file of one list column, written by the Arrow writer with a dictionary.
    fn write_input(
        path: &std::path::Path,
        rows: &[Row],
        nullability: (bool, bool),
        page_rows: usize,
    ) {
        let properties = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_data_page_row_count_limit(page_rows)
            .set_write_batch_size(page_rows)
            .build();
        write_lists(path, rows, nullability, properties);
    }

    /// A writer of the output column, with `dictionary_bytes` as its dictionary's limit.
    fn output_writer(nullability: (bool, bool), dictionary_bytes: usize) -> DictionaryListWriter {
        let (list_nullable, item_nullable) = nullability;
        let field = Field::new(
            "tags",
            list_type(dictionary_type(), item_nullable),
            list_nullable,
        );
        let schema = Schema::new(vec![field.clone()]);
        let parquet_schema = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let properties = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
            .set_dictionary_page_size_limit(dictionary_bytes)
            .set_data_page_row_count_limit(7)
            .set_write_batch_size(5)
            .build();
        DictionaryListWriter::for_field(&field, &parquet_schema, 0, &properties)
            .unwrap()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        // Proves the chunks written from rows read straight from the pages are the bytes
        // written from the same rows read by the Arrow reader, in batches of any size
        // with any rows kept: levels copied, items remapped, pages cut at the same rows,
        // the dictionary left for PLAIN at the same item, null and empty lists, null items.
        #[test]
        fn rows_from_pages_write_the_chunks_arrays_write(
            rows in proptest::collection::vec(list_row(30, 7), 1..200),
            nullability in (any::<bool>(), any::<bool>()),
            page_rows in 1usize..30,
            batch_rows in 1usize..40,
            skip in 0usize..20,
            kept in proptest::collection::vec(any::<bool>(), 1..64),
            dictionary_bytes in prop_oneof![Just(40usize), Just(1 << 20)],
        ) {
            let (list_nullable, item_nullable) = nullability;
            let rows: Vec<Row> = rows
                .into_iter()
                .map(|row| match row {
                    None if !list_nullable => Some(Vec::new()),
                    Some(items) if !item_nullable => {
                        Some(items.into_iter().map(|item| item.or(Some("x".into()))).collect())
                    }
                    row => row,
                })
                .collect();
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("tags.parquet");
            write_input(&path, &rows, nullability, page_rows);
            let skip = skip.min(rows.len() - 1);
            // Masks cut out of a longer one, as the part writer cuts them at row groups.
            let mask_of = |first: usize, count: usize| {
                let offset = first % 5;
                BooleanBuffer::collect_bool(offset + count, |bit| {
                    bit >= offset && kept[(first + bit - offset) % kept.len()]
                })
                .slice(offset, count)
            };

            // Through the Arrow reader, as lists of dictionary keys.
            let field = Field::new("tags", list_type(dictionary_type(), item_nullable), list_nullable);
            let hinted = Arc::new(Schema::new(vec![field]));
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
                File::open(&path).unwrap(),
                ArrowReaderOptions::new().with_schema(hinted),
            )
            .unwrap()
            .with_batch_size(batch_rows)
            .with_offset(skip)
            .build()
            .unwrap();
            let mut from_arrays = output_writer(nullability, dictionary_bytes);
            let mut first = skip;
            for batch in reader {
                let batch = batch.unwrap();
                let mask = mask_of(first, batch.num_rows());
                from_arrays.write(batch.column(0).as_ref(), KeptRows::Masked(&mask)).unwrap();
                first += batch.num_rows();
            }

            // Straight from the pages, in the same batches.
            let file = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let metadata = file.metadata();
            let descriptor = metadata.file_metadata().schema_descr().column(0);
            let group = metadata.row_group(0);
            let mut lists =
                ListPages::open(&path, group, &descriptor, 0, list_nullable, skip).unwrap();
            let mut from_pages = output_writer(nullability, dictionary_bytes);
            let mut first = skip;
            while first < rows.len() {
                let count = batch_rows.min(rows.len() - first);
                let mask = mask_of(first, count);
                let mut pages = FieldPages::Lists(Box::new(lists));
                from_pages.write_pages(&mut pages, count, KeptRows::Masked(&mask)).unwrap();
                let FieldPages::Lists(back) = pages else { unreachable!() };
                lists = *back;
                first += count;
            }
            let kept_any = (skip..rows.len()).any(|row| kept[row % kept.len()]);
            prop_assume!(kept_any);
            let (arrays_bytes, _) = from_arrays.close_chunk().unwrap();
            let (pages_bytes, _) = from_pages.close_chunk().unwrap();
            prop_assert_eq!(arrays_bytes, pages_bytes);
        }
    }
}
