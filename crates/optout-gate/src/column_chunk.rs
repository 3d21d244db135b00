//! What the column encoders of this crate (those that write a column chunk without the
//! Arrow writer) share: compressing a page's values with a context kept for the whole
//! part, and laying out a row group's chunk from its pages, with the metadata and offset
//! index the row group writer splices in beside the Arrow writer's chunks.
//!
//! The Arrow writer's byte array path copies every value twice before compression (into
//! its encoder, then into the page), into buffers allocated afresh for each page; on the
//! benchmark's gate that was 4.7% of the samples in `memmove` plus 3% in the kernel
//! zeroing the new pages. The encoders here keep their buffers from page to page.

use std::io::Cursor;

use arrow_array::Array;
use arrow_buffer::BooleanBuffer;
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use crate::list_pages::ListPages;
use crate::text_pages::TextPages;

/// A column read straight from the input's pages, by the kind of its values.
pub(crate) enum FieldPages {
    /// Free text ([`crate::text_pages`]).
    Text(Box<TextPages>),
    /// Lists of dictionary-encoded strings ([`crate::list_pages`]).
    Lists(Box<ListPages>),
}

impl FieldPages {
    /// Passes over the next `rows` rows.
    pub(crate) fn skip(&mut self, rows: usize) -> Result<()> {
        match self {
            FieldPages::Text(text) => text.skip(rows),
            FieldPages::Lists(lists) => lists.skip(rows),
        }
    }

    /// The first error met in the pages, if any.
    pub(crate) fn failure(&self) -> Option<&str> {
        match self {
            FieldPages::Text(text) => text.failure(),
            FieldPages::Lists(lists) => lists.failure(),
        }
    }
}

/// The rows of a batch that go into the output: all of them, or those set in a mask as
/// long as the batch. The encoders of this crate skip the others as they go, where the
/// Arrow writer needs the batch filtered first (which copies every kept value once more:
/// 1.2% of the gate's time at 10M members, most of it in building filtered lists).
#[derive(Clone, Copy, Debug)]
pub(crate) enum KeptRows<'a> {
    All,
    Masked(&'a BooleanBuffer),
}

impl KeptRows<'_> {
    /// Calls `visit` with the index of each kept row of a batch of `rows` rows, in order,
    /// until it fails.
    pub(crate) fn try_for_each(
        self,
        rows: usize,
        mut visit: impl FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        match self {
            KeptRows::All => (0..rows).try_for_each(visit),
            KeptRows::Masked(mask) => mask.set_indices().try_for_each(&mut visit),
        }
    }
}

/// A column's chunks, encoded without the Arrow writer: the rows of each batch in turn,
/// then a row group's chunk at a time.
pub(crate) trait ColumnChunkEncoder: Send {
    /// Appends the kept rows of `column` to the row group's chunk.
    fn write(&mut self, column: &dyn Array, kept: KeptRows<'_>) -> Result<()>;

    /// Whether [`ColumnChunkEncoder::write_pages`] takes values read from the input's
    /// pages ([`FieldPages`]) for this column.
    fn takes_pages(&self) -> bool {
        false
    }

    /// Appends the kept rows of the next `rows` rows of `pages`, passing over the others.
    fn write_pages(
        &mut self,
        _pages: &mut FieldPages,
        _rows: usize,
        _kept: KeptRows<'_>,
    ) -> Result<()> {
        Err(general("this column takes no values read from pages"))
    }

    /// Ends the row group's chunk: its encoded pages, with offsets from 0, and the
    /// metadata for the row group writer; the encoder is then ready for the next row
    /// group.
    fn close_chunk(&mut self) -> Result<(Bytes, ColumnCloseResult)>;
}

/// The descriptor of `leaf` of `schema`, the only leaf of `field`, when an encoder of this
/// crate `takes` the field's type and `properties` ask nothing of its chunks that these
/// encoders leave out: they write data pages v2, without statistics or bloom filters.
pub(crate) fn leaf_without_extras(
    field: &Field,
    takes: fn(&DataType) -> bool,
    schema: &SchemaDescriptor,
    leaf: usize,
    properties: &WriterProperties,
) -> Option<ColumnDescPtr> {
    if !takes(field.data_type())
        || properties.writer_version() != WriterVersion::PARQUET_2_0
        || leaf >= schema.num_columns()
    {
        return None;
    }
    let descriptor = schema.column(leaf);
    let path = descriptor.path();
    let extras = properties.statistics_enabled(path) != EnabledStatistics::None
        || properties.bloom_filter_properties(path).is_some();
    (!extras).then_some(descriptor)
}

/// The largest ZSTD block: one byte under zstd's own 128 KiB. Since zstd 1.5.7, a full
/// 128 KiB block is first scanned for a place to cut it in two (the "pre-splitter": 1.2%
/// of the gate's time at 10M members, for an output 0.0004% smaller); blocks below
/// 128 KiB are never split, so this keeps the blocks of zstd 1.5.6 and earlier.
/// The compression level's parameters (window, tables, search) are untouched, and the
/// frames are plain ZSTD frames any decoder reads.
const ZSTD_BLOCK_BYTES_MAX: u32 = (128 << 10) - 1;

/// The compression of a column's pages.
pub(crate) struct PageCompressor {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    compression: Compression,
    /// Values whose compressed size reaches this fraction of the page stay uncompressed.
    ratio_threshold: f64,
    /// The last page's values compressed, kept for its capacity.
    scratch: Vec<u8>,
}

impl PageCompressor {
    /// The compressor `properties` ask for at `path`, when it is one written here (ZSTD or
    /// none).
    pub(crate) fn for_column(
        properties: &WriterProperties,
        path: &parquet::schema::types::ColumnPath,
    ) -> Result<Option<PageCompressor>> {
        let compression = properties.compression(path);
        let zstd = match compression {
            Compression::ZSTD(level) => {
                let zstd_error = |error: std::io::Error| general(format!("zstd: {error}"));
                let mut compressor =
                    zstd::bulk::Compressor::new(level.compression_level()).map_err(zstd_error)?;
                compressor
                    .set_parameter(zstd::zstd_safe::CParameter::MaxBlockSize(
                        ZSTD_BLOCK_BYTES_MAX,
                    ))
                    .map_err(zstd_error)?;
                Some(compressor)
            }
            Compression::UNCOMPRESSED => None,
            _ => return Ok(None),
        };
        Ok(Some(PageCompressor {
            zstd,
            compression,
            ratio_threshold: properties.column_data_page_v2_compression_ratio_threshold(path),
            scratch: Vec::new(),
        }))
    }

    pub(crate) fn compression(&self) -> Compression {
        self.compression
    }

    /// A page's bytes: its `levels`, then its `values`, compressed when that pays as
    /// parquet-rs judges it (below the threshold's fraction of the whole page), and
    /// whether they were. The page is allocated at its final size: pages wait in memory
    /// until their row group is written, and a buffer sized for the worst case (the
    /// values uncompressed) would hold five times what they need.
    pub(crate) fn page_bytes(&mut self, levels: &[u8], values: &[u8]) -> Result<(Vec<u8>, bool)> {
        let uncompressed_size = levels.len() + values.len();
        let mut stored = values;
        let mut compressed = false;
        if let Some(compressor) = &mut self.zstd {
            self.scratch.clear();
            compress_into(compressor, values, &mut self.scratch)?;
            if (self.scratch.len() as f64) < uncompressed_size as f64 * self.ratio_threshold {
                stored = &self.scratch;
                compressed = true;
            }
        }
        let mut page = Vec::with_capacity(levels.len() + stored.len());
        page.extend_from_slice(levels);
        page.extend_from_slice(stored);
        Ok((page, compressed))
    }

    /// `data` compressed, as a dictionary page's is (always, when there is a codec).
    pub(crate) fn compress_all(&mut self, data: Vec<u8>) -> Result<Vec<u8>> {
        match &mut self.zstd {
            Some(compressor) => {
                let mut compressed = Vec::new();
                compress_into(compressor, &data, &mut compressed)?;
                Ok(compressed)
            }
            None => Ok(data),
        }
    }
}

/// Appends `input` compressed to `output`, reusing the compressor's context.
fn compress_into(
    compressor: &mut zstd::bulk::Compressor<'static>,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<()> {
    let start = output.len();
    output.reserve(zstd::zstd_safe::compress_bound(input.len()));
    let mut cursor = Cursor::new(output);
    cursor.set_position(start as u64);
    compressor
        .compress_to_buffer(input, &mut cursor)
        .map_err(|error| general(format!("zstd: {error}")))?;
    Ok(())
}

/// Room for a page header: a few small integers in Thrift's compact encoding.
const PAGE_HEADER_BYTES_MAX: usize = 64;

/// A finished data page of the row group being built.
pub(crate) struct DataPage {
    pub(crate) page: CompressedPage,
    pub(crate) rows: usize,
    /// Bytes of the strings in the page, as the offset index records them.
    pub(crate) string_bytes: i64,
}

/// Sizes of a chunk's pages, headers included.
#[derive(Default)]
struct ChunkTotals {
    compressed_bytes: i64,
    uncompressed_bytes: i64,
}

impl ChunkTotals {
    fn add(&mut self, compressed_bytes: usize, uncompressed_bytes: usize) {
        self.compressed_bytes += compressed_bytes as i64;
        self.uncompressed_bytes += uncompressed_bytes as i64;
    }
}

/// A row group's column chunk: its encoded bytes (the dictionary page if any, then the
/// data pages), with offsets from 0, and the metadata for the row group writer. Levels
/// are RLE, as in every data page v2.
pub(crate) fn assemble_chunk(
    descriptor: &ColumnDescPtr,
    compression: Compression,
    offset_index: bool,
    dictionary_page: Option<CompressedPage>,
    pages: Vec<DataPage>,
    rows: u64,
) -> Result<(Bytes, ColumnCloseResult)> {
    if pages.is_empty() {
        return Err(general("a column chunk without rows"));
    }
    // Sized for the pages and their headers, so that the chunk is not copied as it grows.
    let data_bytes: usize = dictionary_page
        .iter()
        .chain(pages.iter().map(|page| &page.page))
        .map(|page| page.data().len() + PAGE_HEADER_BYTES_MAX)
        .sum();
    let mut sink = TrackedWrite::new(Vec::with_capacity(data_bytes));
    let mut page_writer = SerializedPageWriter::new(&mut sink);
    let mut totals = ChunkTotals::default();
    let mut encoding_stats: Vec<PageEncodingStats> = Vec::new();
    let mut encodings = Vec::new();
    let mut dictionary_page_offset = None;
    if let Some(page) = dictionary_page {
        let encoding = page.encoding();
        let written = page_writer.write_page(page)?;
        dictionary_page_offset = Some(written.offset as i64);
        totals.add(written.compressed_size, written.uncompressed_size);
        encoding_stats.push(PageEncodingStats {
            page_type: PageType::DICTIONARY_PAGE,
            encoding,
            count: 1,
        });
        encodings.push(encoding);
    }
    encodings.push(Encoding::RLE);

    let mut offset_index = offset_index.then(OffsetIndexBuilder::new);
    let mut data_page_offset = None;
    let mut num_values: i64 = 0;
    for DataPage {
        page,
        rows,
        string_bytes,
    } in pages
    {
        let encoding = page.encoding();
        match encoding_stats.last_mut() {
            Some(last) if last.page_type == page.page_type() && last.encoding == encoding => {
                last.count += 1
            }
            _ => encoding_stats.push(PageEncodingStats {
                page_type: page.page_type(),
                encoding,
                count: 1,
            }),
        }
        if !encodings.contains(&encoding) {
            encodings.push(encoding);
        }
        let written = page_writer.write_page(page)?;
        data_page_offset.get_or_insert(written.offset as i64);
        num_values += i64::from(written.num_values);
        totals.add(written.compressed_size, written.uncompressed_size);
        if let Some(index) = offset_index.as_mut() {
            let page_size = i32::try_from(written.compressed_size)
                .map_err(|_| general("a page larger than 2 GiB"))?;
            index.append_offset_and_size(written.offset as i64, page_size);
            index.append_row_count(rows as i64);
            index.append_unencoded_byte_array_data_bytes(Some(string_bytes));
        }
    }
    page_writer.close()?;
    let chunk = sink.into_inner()?;

    let metadata = ColumnChunkMetaData::builder(descriptor.clone())
        .set_compression(compression)
        .set_encodings(encodings)
        .set_page_encoding_stats(encoding_stats)
        .set_total_compressed_size(totals.compressed_bytes)
        .set_total_uncompressed_size(totals.uncompressed_bytes)
        .set_num_values(num_values)
        .set_dictionary_page_offset(dictionary_page_offset)
        .set_data_page_offset(data_page_offset.or(dictionary_page_offset).unwrap_or(0))
        .build()?;
    let close = ColumnCloseResult {
        bytes_written: chunk.len() as u64,
        rows_written: rows,
        metadata,
        bloom_filter: None,
        column_index: None,
        offset_index: offset_index.map(OffsetIndexBuilder::build),
    };
    Ok((Bytes::from(chunk), close))
}

/// A page's level or value count, as the page header holds it.
fn page_count(count: usize) -> Result<u32> {
    u32::try_from(count).map_err(|_| general("a page has more than 4G levels"))
}

/// What a data page v2's header says besides its sizes.
pub(crate) struct PageShape {
    /// Levels, or values when the column has no levels.
    pub(crate) levels: usize,
    pub(crate) nulls: usize,
    pub(crate) rows: usize,
    pub(crate) encoding: Encoding,
    pub(crate) repetition_bytes: usize,
    pub(crate) definition_bytes: usize,
}

impl PageShape {
    /// The page: `buffer` holds its levels, then its values (compressed or not).
    pub(crate) fn into_page(
        self,
        buffer: Vec<u8>,
        uncompressed_size: usize,
        compressed: bool,
    ) -> Result<CompressedPage> {
        let page = Page::DataPageV2 {
            buf: Bytes::from(buffer),
            num_values: page_count(self.levels)?,
            encoding: self.encoding,
            num_nulls: page_count(self.nulls)?,
            num_rows: page_count(self.rows)?,
            def_levels_byte_len: page_count(self.definition_bytes)?,
            rep_levels_byte_len: page_count(self.repetition_bytes)?,
            is_compressed: compressed,
            statistics: None,
        };
        Ok(CompressedPage::new(page, uncompressed_size))
    }
}

pub(crate) fn general(message: impl Into<String>) -> ParquetError {
    ParquetError::General(message.into())
}
