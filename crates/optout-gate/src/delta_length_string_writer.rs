//! Column chunks for top-level string columns written without a dictionary as
//! `DELTA_LENGTH_BYTE_ARRAY` (free text: headlines, experience), encoded here rather than
//! by the Arrow writer. That writer gathers every string into its encoder, then copies the
//! encoded page again into a buffer allocated for that page, before compression; here the
//! strings are copied once, into a page buffer kept from page to page, and compressed
//! from there with a ZSTD context kept for the part (see [`crate::column_chunk`]).
//!
//! The chunk is laid out as parquet-rs lays it out under the same properties: data pages
//! v2, cut at row boundaries by the page row and size limits (checked after each
//! mini-batch of `write_batch_size` rows), definition levels RLE when the column is
//! nullable, values `DELTA_LENGTH_BYTE_ARRAY`: the lengths `DELTA_BINARY_PACKED`, then
//! the strings' bytes. No statistics, as for every column but the id.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayAccessor};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use crate::column_chunk::{
    assemble_chunk, general, leaf_without_extras, ColumnChunkEncoder, DataPage, FieldPages,
    KeptRows, PageCompressor, PageShape,
};
use crate::text_pages::TextPages;
use crate::{delta_binary_packed, rle_hybrid};

/// Settings of the column, resolved once from the writer properties.
struct ChunkSettings {
    descriptor: ColumnDescPtr,
    nullable: bool,
    page_rows_max: usize,
    page_values_bytes_max: usize,
    /// Rows between two checks of the page limits.
    mini_batch_rows: usize,
    offset_index: bool,
}

/// The rows of the page being built.
struct PageBuffer {
    /// One per row when the column is nullable: 1 for a string, 0 for a null.
    definition_levels: Vec<u8>,
    lengths: Vec<i32>,
    /// Room for the encoded lengths, then the strings, one after the other: the lengths
    /// go in front of the strings when the page ends, so that the values are compressed
    /// where they are rather than copied after the lengths (1% of the benchmark's gate).
    values: Vec<u8>,
    /// Bytes before the strings in `values`.
    lengths_room: usize,
    rows: usize,
    nulls: usize,
    /// The strings (bytes, and how many) before these were checked as UTF-8: those that
    /// come in as bytes read straight from the input's pages are checked together, a
    /// mini-batch at a time, instead of one by one.
    checked_bytes: usize,
    checked_strings: usize,
}

impl PageBuffer {
    fn new(lengths_room: usize) -> PageBuffer {
        PageBuffer {
            definition_levels: Vec::new(),
            lengths: Vec::new(),
            values: vec![0; lengths_room],
            lengths_room,
            rows: 0,
            nulls: 0,
            checked_bytes: 0,
            checked_strings: 0,
        }
    }

    fn strings(&self) -> &[u8] {
        self.values.get(self.lengths_room..).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.definition_levels.clear();
        self.lengths.clear();
        self.values.truncate(self.lengths_room);
        self.rows = 0;
        self.nulls = 0;
        self.checked_bytes = 0;
        self.checked_strings = 0;
    }

    /// An error unless the strings added since the last check are each valid UTF-8:
    /// their bytes together are, and none starts in the middle of a character (the first
    /// byte of a non-empty string is not a continuation byte), so each one holds whole
    /// characters only.
    fn check_new_strings(&mut self) -> std::result::Result<(), String> {
        let strings = self.strings();
        let new = strings.get(self.checked_bytes..).unwrap_or_default();
        if simdutf8::basic::from_utf8(new).is_err() {
            return Err("a string is not valid UTF-8".into());
        }
        let mut start = self.checked_bytes;
        for &length in self.lengths.get(self.checked_strings..).unwrap_or_default() {
            if length > 0 && strings.get(start).is_some_and(|&byte| byte & 0xC0 == 0x80) {
                return Err("a string is not valid UTF-8 (it starts inside a character)".into());
            }
            start += length as usize;
        }
        self.checked_bytes = strings.len();
        self.checked_strings = self.lengths.len();
        Ok(())
    }
}

/// Bytes kept in front of a page's strings for their encoded lengths: enough for any
/// page the row limit allows, up to a bound; a page whose lengths do not fit is copied.
fn lengths_room(page_rows_max: usize, mini_batch_rows: usize) -> usize {
    const ROOM_MAX: usize = 256 << 10;
    let lengths_max = page_rows_max.saturating_add(mini_batch_rows);
    delta_binary_packed::max_encoded_len(lengths_max.min(ROOM_MAX)).min(ROOM_MAX)
}

/// Writes one top-level string column, a row group's chunk at a time.
pub struct DeltaLengthStringWriter {
    settings: ChunkSettings,
    compressor: PageCompressor,
    page: PageBuffer,
    pages: Vec<DataPage>,
    rows: u64,
    /// The page's encoded lengths, kept for its capacity.
    lengths_scratch: Vec<u8>,
    /// The page's values, when its lengths did not fit in front of its strings.
    values_scratch: Vec<u8>,
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

impl DeltaLengthStringWriter {
    /// A writer for the top-level `field`, whose only leaf is `leaf` of `schema`, when its
    /// type, its Parquet layout and `properties` are ones this module honours in full
    /// (otherwise, `None`: the Arrow writer keeps the column).
    pub fn for_field(
        field: &Field,
        schema: &SchemaDescriptor,
        leaf: usize,
        properties: &WriterProperties,
    ) -> Result<Option<DeltaLengthStringWriter>> {
        let Some(descriptor) = leaf_without_extras(field, is_string, schema, leaf, properties)
        else {
            return Ok(None);
        };
        let path = descriptor.path();
        let top_level = descriptor.physical_type() == PhysicalType::BYTE_ARRAY
            && descriptor.max_rep_level() == 0
            && descriptor.max_def_level() == i16::from(field.is_nullable());
        let honoured = top_level
            && !properties.dictionary_enabled(path)
            && properties.encoding(path) == Some(Encoding::DELTA_LENGTH_BYTE_ARRAY);
        if !honoured {
            return Ok(None);
        }
        let Some(compressor) = PageCompressor::for_column(properties, path)? else {
            return Ok(None);
        };
        let page_rows_max = properties.column_data_page_row_count_limit(path).max(1);
        let mini_batch_rows = properties.write_batch_size().max(1);
        let settings = ChunkSettings {
            nullable: field.is_nullable(),
            page_rows_max,
            page_values_bytes_max: properties.column_data_page_size_limit(path).max(1),
            mini_batch_rows,
            offset_index: !properties.offset_index_disabled(),
            descriptor,
        };
        Ok(Some(DeltaLengthStringWriter {
            settings,
            compressor,
            page: PageBuffer::new(lengths_room(page_rows_max, mini_batch_rows)),
            pages: Vec::new(),
            rows: 0,
            lengths_scratch: Vec::new(),
            values_scratch: Vec::new(),
        }))
    }

    fn write_strings<'a, A>(&mut self, strings: A, kept: KeptRows<'_>) -> Result<()>
    where
        A: ArrayAccessor<Item = &'a str>,
    {
        let has_nulls = strings.null_count() > 0;
        // The limits are checked after each mini-batch of kept rows.
        let mini_batch_rows = self.settings.mini_batch_rows;
        let mut mini_batch = 0;
        kept.try_for_each(strings.len(), |row| {
            self.push_row(&strings, has_nulls, row)?;
            mini_batch += 1;
            if mini_batch == mini_batch_rows {
                mini_batch = 0;
                self.end_mini_batch()?;
            }
            Ok(())
        })?;
        if mini_batch > 0 {
            self.end_mini_batch()?;
        }
        Ok(())
    }

    fn end_mini_batch(&mut self) -> Result<()> {
        if self.page.rows >= self.settings.page_rows_max
            || self.page_values_bytes() >= self.settings.page_values_bytes_max
        {
            self.finish_page()?;
        }
        Ok(())
    }

    #[inline]
    fn push_row<'a, A>(&mut self, strings: &A, has_nulls: bool, row: usize) -> Result<()>
    where
        A: ArrayAccessor<Item = &'a str>,
    {
        let value = match has_nulls && strings.is_null(row) {
            true => None,
            false => Some(strings.value(row).as_bytes()),
        };
        self.push_value(value)
    }

    /// Appends a row: its string's bytes, or `None` for a null.
    #[inline(always)]
    fn push_value(&mut self, value: Option<&[u8]>) -> Result<()> {
        let page = &mut self.page;
        page.rows += 1;
        let Some(value) = value else {
            if !self.settings.nullable {
                return Err(general(format!(
                    "column {}: a null, but the schema says it cannot be null",
                    self.settings.descriptor.path()
                )));
            }
            page.definition_levels.push(0);
            page.nulls += 1;
            return Ok(());
        };
        let length = i32::try_from(value.len()).map_err(|_| {
            general(format!(
                "column {}: a string is longer than 2 GiB",
                self.settings.descriptor.path()
            ))
        })?;
        page.lengths.push(length);
        page.values.extend_from_slice(value);
        if self.settings.nullable {
            page.definition_levels.push(1);
        }
        Ok(())
    }

    /// Appends the kept rows of the next `rows` rows of `text`, passing over the others.
    /// Their strings are checked as UTF-8 a mini-batch at a time, before the page they
    /// are in can end; a string that is not is the input's fault, recorded in `text`.
    fn write_text_rows(
        &mut self,
        text: &mut TextPages,
        rows: usize,
        kept: KeptRows<'_>,
    ) -> Result<()> {
        let mini_batch_rows = self.settings.mini_batch_rows;
        let mut mini_batch = 0;
        let mut not_utf8 = None;
        let mut visit = |value: Option<&[u8]>| -> Result<()> {
            self.push_value(value)?;
            mini_batch += 1;
            if mini_batch == mini_batch_rows {
                mini_batch = 0;
                if let Err(problem) = self.page.check_new_strings() {
                    return Err(general(not_utf8.insert(problem).clone()));
                }
                self.end_mini_batch()?;
            }
            Ok(())
        };
        let read = match kept {
            KeptRows::All => text.for_each_row(rows, |_| true, &mut visit),
            KeptRows::Masked(mask) => text.for_each_row(rows, |row| mask.value(row), &mut visit),
        };
        if let Some(problem) = not_utf8 {
            return Err(general(text.fail(problem)));
        }
        read?;
        if mini_batch > 0 {
            if let Err(problem) = self.page.check_new_strings() {
                return Err(general(text.fail(problem)));
            }
            self.end_mini_batch()?;
        }
        Ok(())
    }

    /// The page's values once encoded (before compression), about as parquet-rs estimates
    /// them: the strings, and a byte per length.
    fn page_values_bytes(&self) -> usize {
        self.page.strings().len() + self.page.lengths.len()
    }

    fn finish_page(&mut self) -> Result<()> {
        let page = &mut self.page;
        let (rows, nulls) = (page.rows, page.nulls);
        let string_bytes = page.strings().len() as i64;
        let mut levels = Vec::with_capacity(page.definition_levels.len() / 8 + 64);
        if self.settings.nullable {
            rle_hybrid::encode(&page.definition_levels, 1, &mut levels);
        }

        let encoded_lengths = &mut self.lengths_scratch;
        encoded_lengths.clear();
        delta_binary_packed::encode(&page.lengths, encoded_lengths);
        let in_place = page
            .lengths_room
            .checked_sub(encoded_lengths.len())
            .and_then(|start| page.values.get_mut(start..));
        let values: &[u8] = match in_place {
            Some(values) => {
                if let Some(room) = values.get_mut(..encoded_lengths.len()) {
                    room.copy_from_slice(encoded_lengths);
                }
                values
            }
            None => {
                self.values_scratch.clear();
                self.values_scratch.extend_from_slice(encoded_lengths);
                self.values_scratch.extend_from_slice(page.strings());
                &self.values_scratch
            }
        };

        let uncompressed_size = levels.len() + values.len();
        let (buffer, compressed) = self.compressor.page_bytes(&levels, values)?;
        let data_page = PageShape {
            levels: rows,
            nulls,
            rows,
            encoding: Encoding::DELTA_LENGTH_BYTE_ARRAY,
            repetition_bytes: 0,
            definition_bytes: levels.len(),
        }
        .into_page(buffer, uncompressed_size, compressed)?;
        self.rows += rows as u64;
        self.pages.push(DataPage {
            page: data_page,
            rows,
            string_bytes,
        });
        self.page.clear();
        Ok(())
    }
}

impl ColumnChunkEncoder for DeltaLengthStringWriter {
    fn takes_pages(&self) -> bool {
        true
    }

    fn write_pages(
        &mut self,
        pages: &mut FieldPages,
        rows: usize,
        kept: KeptRows<'_>,
    ) -> Result<()> {
        match pages {
            FieldPages::Text(text) => self.write_text_rows(text, rows, kept),
            FieldPages::Lists(_) => Err(general(format!(
                "column {}: lists read for a column of strings",
                self.settings.descriptor.path()
            ))),
        }
    }

    fn write(&mut self, column: &dyn Array, kept: KeptRows<'_>) -> Result<()> {
        match column.data_type() {
            DataType::Utf8View => self.write_strings(column.as_string_view(), kept),
            DataType::Utf8 => self.write_strings(column.as_string::<i32>(), kept),
            DataType::LargeUtf8 => self.write_strings(column.as_string::<i64>(), kept),
            other => Err(general(format!(
                "column {}: expected strings, got {other}",
                self.settings.descriptor.path()
            ))),
        }
    }

    /// Ends the row group's chunk: its encoded pages, with offsets from 0, and the
    /// metadata for the row group writer.
    fn close_chunk(&mut self) -> Result<(Bytes, ColumnCloseResult)> {
        if self.page.rows > 0 {
            self.finish_page()?;
        }
        let pages = std::mem::take(&mut self.pages);
        let rows = std::mem::take(&mut self.rows);
        assemble_chunk(
            &self.settings.descriptor,
            self.compressor.compression(),
            self.settings.offset_index,
            None,
            pages,
            rows,
        )
    }
}
