//! Lists of dictionary-encoded strings (`skills`) read straight from the input's pages,
//! row after row, for the output columns the gate encodes itself
//! ([`crate::dictionary_list_writer`]).
//!
//! Through the Arrow reader, each page's levels became 16-bit arrays, then list offsets
//! and validity bitmaps, and its indices a dictionary array, which the writer walked row
//! by row to rebuild levels it already had: 7% of the gate's time at 10M members,
//! decompression aside. Here each page's levels and indices are unpacked once, in bulk
//! ([`crate::rle_hybrid::Decoder::read_into`]), and a kept row's levels are copied into
//! the output page as they are: the output column has the input's nesting and
//! nullability, so its levels are the same numbers.
//!
//! Only three-level lists of `BYTE_ARRAY` items (`max_rep_level` 1) whose chunks each
//! have a dictionary page and only dictionary-encoded data pages, by the footer's page
//! encoding statistics, with RLE levels, are read here ([`readable`]); any other layout
//! goes through the Arrow reader as before. Pages come from parquet's own page reader,
//! which reads and decompresses them. A row may span pages (some writers cut version 1
//! pages inside a row); its levels are then joined before it is handed on.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::RowGroupMetaData;
use parquet::schema::types::ColumnDescriptor;

use crate::chunk_pages::{self, Failure};
use crate::rle_hybrid;

/// Whether every chunk of the leaf column `leaf` in `row_groups` can be read here.
pub fn readable(
    descriptor: &ColumnDescriptor,
    row_groups: &[RowGroupMetaData],
    leaf: usize,
) -> bool {
    let list_of_strings = descriptor.physical_type() == PhysicalType::BYTE_ARRAY
        && descriptor.max_rep_level() == 1
        && (1..=3).contains(&descriptor.max_def_level());
    list_of_strings
        && row_groups.iter().all(|group| {
            group.columns().get(leaf).is_some_and(|chunk| {
                chunk.dictionary_page_offset().is_some()
                    && chunk.page_encoding_stats_mask().is_some_and(|mask| {
                        mask.encodings().all(|encoding| {
                            matches!(
                                encoding,
                                Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
                            )
                        })
                    })
                    && chunk.encodings().all(|encoding| {
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

/// The definition levels of a three-level list: what each one means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListLevels {
    /// The list itself may be null (definition level 0).
    pub list_nullable: bool,
    /// Items may be null (definition level `item - 1`).
    pub item_nullable: bool,
    /// A present item: the column's largest definition level.
    pub item: u8,
}

impl ListLevels {
    /// The levels of leaf `descriptor`, a list's item, when it is a three-level list.
    pub fn of(descriptor: &ColumnDescriptor, list_nullable: bool) -> Option<ListLevels> {
        let item_nullable = descriptor.self_type().is_optional();
        let item = u8::from(list_nullable) + 1 + u8::from(item_nullable);
        (descriptor.max_rep_level() == 1
            && i64::from(descriptor.max_def_level()) == i64::from(item))
        .then_some(ListLevels {
            list_nullable,
            item_nullable,
            item,
        })
    }

    /// The lowest definition level of an item (present or null) in a list that has some.
    fn item_min(self) -> u8 {
        self.item - u8::from(self.item_nullable)
    }
}

/// A chunk's dictionary page: where each string is in the page. Every string was
/// checked as UTF-8 when the page was read.
pub struct PageDictionary {
    /// Tells dictionaries apart, so a writer can keep what it derived from one.
    id: u64,
    page: Bytes,
    spans: Vec<(usize, usize)>,
}

/// Numbers for [`PageDictionary::id`].
static DICTIONARY_IDS: AtomicU64 = AtomicU64::new(0);

/// The dictionary of a chunk read so far without one (no row had an item yet).
static NO_DICTIONARY: PageDictionary = PageDictionary {
    id: u64::MAX,
    page: Bytes::new(),
    spans: Vec::new(),
};

impl PageDictionary {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The string at `index`, when there is one.
    pub fn value(&self, index: u32) -> Option<&str> {
        let &(start, end) = self.spans.get(index as usize)?;
        std::str::from_utf8(self.page.get(start..end)?).ok()
    }
}

/// Whole rows of a list column, handed out together: their levels, the dictionary
/// indices of their present items, and where each row starts in both.
pub struct ListRows<'a> {
    /// The levels and indices held, of these rows and maybe others.
    repetition: &'a [u8],
    definition: &'a [u8],
    indices: &'a [u32],
    /// Where each of these rows starts among the levels and the indices.
    level_starts: &'a [usize],
    index_starts: &'a [usize],
    /// Where the last of them ends.
    level_end: usize,
    index_end: usize,
    dictionary: &'a PageDictionary,
}

/// The levels of some consecutive rows of [`ListRows`], and the indices of their present
/// items.
pub struct RowSpan<'a> {
    pub repetition: &'a [u8],
    pub definition: &'a [u8],
    pub indices: &'a [u32],
}

impl<'a> ListRows<'a> {
    #[cfg(test)]
    pub fn rows(&self) -> usize {
        self.level_starts.len()
    }

    pub fn dictionary(&self) -> &'a PageDictionary {
        self.dictionary
    }

    /// Where row `row` starts among the levels (for `rows()`, where the last one ends).
    fn level_at(&self, row: usize) -> usize {
        self.level_starts
            .get(row)
            .copied()
            .unwrap_or(self.level_end)
    }

    fn index_at(&self, row: usize) -> usize {
        self.index_starts
            .get(row)
            .copied()
            .unwrap_or(self.index_end)
    }

    /// The first row end after `from`, at most `to`, by which rows `from..` hold at least
    /// `levels` levels (`to` when they never do).
    pub fn end_reaching(&self, from: usize, to: usize, levels: usize) -> usize {
        let base = self.level_at(from);
        (from + 1..to)
            .find(|&end| self.level_at(end) - base >= levels)
            .unwrap_or(to)
    }

    /// Rows `from..to`.
    pub fn span(&self, from: usize, to: usize) -> RowSpan<'a> {
        let levels = self.level_at(from)..self.level_at(to);
        let items = self.index_at(from)..self.index_at(to);
        RowSpan {
            repetition: self.repetition.get(levels.clone()).unwrap_or_default(),
            definition: self.definition.get(levels).unwrap_or_default(),
            indices: self.indices.get(items).unwrap_or_default(),
        }
    }
}

/// The list rows of one column chunk, from a given row on, a run of whole rows at a time.
pub struct ListPages {
    pages: Box<dyn PageReader>,
    levels: ListLevels,
    dictionary: Option<PageDictionary>,
    /// The levels and indices of the pages read whose rows are not all handed out yet.
    repetition: Vec<u8>,
    definition: Vec<u8>,
    indices: Vec<u32>,
    /// Where each row held starts among the levels and the indices; the last may go on
    /// into pages not read yet.
    level_starts: Vec<usize>,
    index_starts: Vec<usize>,
    /// The first row (of those held) not handed out yet.
    next_row: usize,
    /// Every data page of the chunk has been read.
    chunk_read: bool,
    /// The last level read was a null or empty list: the next must start a row.
    list_without_items: bool,
    /// Whole pages were passed over: levels before the first row start of the next page
    /// read end a row passed over.
    passed_pages: bool,
    failure: Failure,
}

impl ListPages {
    /// The lists of leaf `leaf` of row group `row_group` of `path`, from row `skip` on.
    /// `list_nullable` says whether the list column itself is optional.
    pub fn open(
        path: &Path,
        row_group: &RowGroupMetaData,
        descriptor: &ColumnDescriptor,
        leaf: usize,
        list_nullable: bool,
        skip: usize,
    ) -> Result<ListPages, String> {
        let column = descriptor.path().string();
        let levels = ListLevels::of(descriptor, list_nullable)
            .ok_or_else(|| format!("column {column}: not a three-level list"))?;
        let pages = chunk_pages::open(path, row_group, leaf, &column)?;
        ListPages::from_reader(Box::new(pages), column, levels, skip)
    }

    /// The lists of the column chunk `pages` gives, from row `skip` on.
    fn from_reader(
        pages: Box<dyn PageReader>,
        column: String,
        levels: ListLevels,
        skip: usize,
    ) -> Result<ListPages, String> {
        let mut lists = ListPages {
            pages,
            levels,
            dictionary: None,
            repetition: Vec::new(),
            definition: Vec::new(),
            indices: Vec::new(),
            level_starts: Vec::new(),
            index_starts: Vec::new(),
            next_row: 0,
            chunk_read: false,
            list_without_items: false,
            passed_pages: false,
            failure: Failure::new(column),
        };
        let left = lists
            .skip_pages(skip)
            .map_err(|problem| lists.fail(problem))?;
        if let Err(error) = lists.skip(left) {
            return Err(lists.failure.take_or(error.to_string()));
        }
        Ok(lists)
    }

    /// The first error this reader returned, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.first()
    }

    /// What the definition levels of this column mean.
    pub fn levels(&self) -> ListLevels {
        self.levels
    }

    fn fail(&mut self, problem: String) -> String {
        self.failure.fail(problem)
    }

    /// Passes over whole data pages within the first `rows` rows, counting a version 1
    /// page's rows from its repetition levels alone; the rows left to skip after them.
    fn skip_pages(&mut self, mut rows: usize) -> Result<usize, String> {
        let error = |error: ParquetError| error.to_string();
        while rows > 0 {
            let Some(next) = self.pages.peek_next_page().map_err(error)? else {
                break;
            };
            if next.is_dict {
                if self.pages.supports_deferred_dictionary() {
                    self.pages.skip_next_page().map_err(error)?;
                } else if let Some(page) = self.pages.get_next_page().map_err(error)? {
                    self.take_dictionary(page)?;
                }
                continue;
            }
            // Version 2 pages (and pages an offset index describes) start at rows and
            // say how many they hold: passed over without being decompressed.
            if let Some(page_rows) = next.num_rows {
                if page_rows > rows {
                    break;
                }
                self.pages.skip_next_page().map_err(error)?;
                self.passed_pages = true;
                rows -= page_rows;
                continue;
            }
            let Some(page) = self.pages.get_next_page().map_err(error)? else {
                break;
            };
            let (repetition, _, _, levels) = page_levels(&page)?;
            // A row starts at each level 0; levels before the first end a row of an
            // earlier page.
            let starts = rle_hybrid::Decoder::new(repetition, 1)?.count_zeros(levels)?;
            if starts > rows {
                // The page holds the first row wanted: read it whole.
                self.take_data_page(page)?;
                break;
            }
            self.passed_pages = true;
            rows -= starts;
        }
        Ok(rows)
    }

    /// Passes over the next `rows` rows.
    pub fn skip(&mut self, rows: usize) -> parquet::errors::Result<()> {
        self.next_rows(rows).map(|_| ())
    }

    /// The next `rows` rows, whole, reading pages as needed. An error is also recorded
    /// ([`ListPages::failure`]).
    pub fn next_rows(&mut self, rows: usize) -> parquet::errors::Result<ListRows<'_>> {
        if let Err(problem) = self.hold_rows(rows) {
            return Err(ParquetError::General(self.fail(problem)));
        }
        let first = self.next_row;
        self.next_row += rows;
        // The last row ends where the next starts, or with the chunk.
        let level_end = self.level_starts.get(self.next_row).copied();
        let index_end = self.index_starts.get(self.next_row).copied();
        Ok(ListRows {
            repetition: &self.repetition,
            definition: &self.definition,
            indices: &self.indices,
            level_starts: self
                .level_starts
                .get(first..self.next_row)
                .unwrap_or_default(),
            index_starts: self
                .index_starts
                .get(first..self.next_row)
                .unwrap_or_default(),
            level_end: level_end.unwrap_or(self.repetition.len()),
            index_end: index_end.unwrap_or(self.indices.len()),
            // Without a dictionary page so far, no row had an item (see `take_data_page`).
            dictionary: self.dictionary.as_ref().unwrap_or(&NO_DICTIONARY),
        })
    }

    /// Reads pages until the next `rows` rows are whole in memory.
    fn hold_rows(&mut self, rows: usize) -> Result<(), String> {
        if rows == 0 {
            return Ok(());
        }
        self.forget_handed_out();
        // A row is whole once the next one has started, or the chunk has ended.
        loop {
            let held = self.level_starts.len() - self.next_row;
            if held > rows || (self.chunk_read && held >= rows) {
                return Ok(());
            }
            if self.chunk_read {
                return Err("fewer rows than its row group".into());
            }
            match self.next_data_page_raw()? {
                Some(page) => self.take_data_page(page)?,
                None => self.chunk_read = true,
            }
        }
    }

    /// Drops the levels, indices and starts of the rows handed out.
    fn forget_handed_out(&mut self) {
        if self.next_row == 0 {
            return;
        }
        let levels = self
            .level_starts
            .get(self.next_row)
            .copied()
            .unwrap_or(self.repetition.len());
        let indices = self
            .index_starts
            .get(self.next_row)
            .copied()
            .unwrap_or(self.indices.len());
        self.level_starts.drain(..self.next_row);
        self.index_starts.drain(..self.next_row);
        self.drop_front(levels, indices);
        self.next_row = 0;
    }

    /// Drops the first `levels` levels and `indices` indices held, which no row held
    /// starts in, and moves the row starts to match.
    fn drop_front(&mut self, levels: usize, indices: usize) {
        self.repetition.drain(..levels);
        self.definition.drain(..levels);
        self.indices.drain(..indices);
        for start in &mut self.level_starts {
            *start -= levels;
        }
        for start in &mut self.index_starts {
            *start -= indices;
        }
    }

    /// The next data page, reading a dictionary page met on the way; `None` at the end
    /// of the chunk.
    fn next_data_page_raw(&mut self) -> Result<Option<Page>, String> {
        loop {
            let page = self
                .pages
                .get_next_page()
                .map_err(|error| error.to_string())?;
            match page {
                None => return Ok(None),
                Some(page @ Page::DictionaryPage { .. }) => self.take_dictionary(page)?,
                Some(page) => return Ok(Some(page)),
            }
        }
    }

    fn take_dictionary(&mut self, page: Page) -> Result<(), String> {
        let Page::DictionaryPage {
            buf,
            num_values,
            encoding,
            ..
        } = page
        else {
            return Err("a data page where the dictionary page should be".into());
        };
        if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
            return Err(format!("a dictionary page encoded {encoding}"));
        }
        let spans = chunk_pages::plain_spans(&buf, num_values as usize)?;
        for (index, &(start, end)) in spans.iter().enumerate() {
            if let Err(error) = std::str::from_utf8(buf.get(start..end).unwrap_or_default()) {
                return Err(format!(
                    "dictionary string {index} is not valid UTF-8 ({error})"
                ));
            }
        }
        self.dictionary = Some(PageDictionary {
            id: DICTIONARY_IDS.fetch_add(1, Ordering::Relaxed),
            page: buf,
            spans,
        });
        Ok(())
    }

    /// Unpacks a data page's levels and indices after those held, finds its row starts
    /// and checks its levels.
    fn take_data_page(&mut self, page: Page) -> Result<(), String> {
        let (repetition, definition, values, levels) = page_levels(&page)?;
        let encoding = match &page {
            Page::DataPage { encoding, .. } | Page::DataPageV2 { encoding, .. } => *encoding,
            Page::DictionaryPage { .. } => return Err("a dictionary page among data pages".into()),
        };
        if !matches!(
            encoding,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
        ) {
            return Err(format!("list items encoded {encoding}"));
        }
        if self.dictionary.is_none() {
            let deferred = self
                .pages
                .take_deferred_dictionary()
                .map_err(|error| error.to_string())?;
            if let Some(page) = deferred {
                self.take_dictionary(page)?;
            }
        }
        let no_row_held = self.level_starts.is_empty();
        let from = self.repetition.len();
        let first_item = self.indices.len();
        rle_hybrid::Decoder::new(repetition, 1)?.read_into(levels, &mut self.repetition)?;
        let width = rle_hybrid::bit_width(u32::from(self.levels.item));
        rle_hybrid::Decoder::new(definition, width)?.read_into(levels, &mut self.definition)?;
        let (item, item_min) = (self.levels.item, self.levels.item_min());
        let new_levels = self.repetition.get(from..).unwrap_or_default();
        let new_definitions = self.definition.get(from..).unwrap_or_default();
        // Checks first, each a loop without early exit, which the compiler vectorizes.
        let highest = new_definitions.iter().copied().max().unwrap_or(0);
        if highest > item {
            return Err(format!("a definition level of {highest}, above {item}"));
        }
        // A null or empty list (a level under `item_min`) is a row of one level: it and
        // the level after it start rows.
        let mut previous_without_items = self.list_without_items;
        let mut misplaced = false;
        for (&repetition, &definition) in new_levels.iter().zip(new_definitions) {
            let without_items = definition < item_min;
            misplaced |= (without_items | previous_without_items) & (repetition != 0);
            previous_without_items = without_items;
        }
        if misplaced {
            return Err("a null or empty list inside a list of several items".into());
        }
        self.list_without_items = previous_without_items;
        if self.level_starts.is_empty()
            && new_levels.first().is_some_and(|&level| level != 0)
            && !(no_row_held && self.passed_pages)
        {
            return Err("a list row that does not start at repetition level 0".into());
        }
        // Row starts, and the items before each: every level is written at the next free
        // slot, which moves on only at a level 0, so the loop does not branch.
        let held = self.level_starts.len();
        // One slot more than the rows that start here: levels after the last start write
        // into it.
        let slots = new_levels.iter().filter(|&&level| level == 0).count() + 1;
        self.level_starts.resize(held + slots, 0);
        self.index_starts.resize(held + slots, 0);
        let level_slots = self.level_starts.get_mut(held..).unwrap_or_default();
        let index_slots = self.index_starts.get_mut(held..).unwrap_or_default();
        let mut starts = 0;
        let mut items = first_item;
        for (offset, (&repetition, &definition)) in
            new_levels.iter().zip(new_definitions).enumerate()
        {
            if let (Some(level_slot), Some(index_slot)) =
                (level_slots.get_mut(starts), index_slots.get_mut(starts))
            {
                *level_slot = from + offset;
                *index_slot = items;
            }
            starts += usize::from(repetition == 0);
            items += usize::from(definition == item);
        }
        self.level_starts.truncate(held + starts);
        self.index_starts.truncate(held + starts);
        let present = items - first_item;
        if present > 0 {
            if self.dictionary.is_none() {
                return Err("dictionary indices before any dictionary page".into());
            }
            let (&bit_width, indices) = values
                .split_first()
                .ok_or("a data page without its bit width")?;
            rle_hybrid::Decoder::new(values.slice_ref(indices), bit_width)?
                .read_into(present, &mut self.indices)?;
            let entries = self.dictionary.as_ref().map_or(0, PageDictionary::len);
            let largest = self
                .indices
                .get(first_item..)
                .unwrap_or_default()
                .iter()
                .max();
            if let Some(&index) = largest.filter(|&&index| index as usize >= entries) {
                return Err(format!(
                    "dictionary index {index}, past its {entries} strings"
                ));
            }
        }
        if no_row_held && self.passed_pages {
            // Levels before the first row start end a row passed over with its page.
            let levels = self
                .level_starts
                .first()
                .copied()
                .unwrap_or(self.repetition.len());
            let items = self
                .index_starts
                .first()
                .copied()
                .unwrap_or(self.indices.len());
            self.drop_front(levels, items);
            // A page all of whose levels go on a row passed over leaves it to the next.
            self.passed_pages = self.level_starts.is_empty();
        }
        Ok(())
    }
}

/// A data page's repetition levels, definition levels and values, as byte ranges of its
/// buffer, and its number of levels.
fn page_levels(page: &Page) -> Result<(Bytes, Bytes, Bytes, usize), String> {
    match page {
        Page::DataPage {
            buf,
            num_values,
            rep_level_encoding,
            def_level_encoding,
            ..
        } => {
            if *rep_level_encoding != Encoding::RLE || *def_level_encoding != Encoding::RLE {
                return Err(format!(
                    "levels encoded {rep_level_encoding} and {def_level_encoding}"
                ));
            }
            // Version 1: each kind of level is prefixed with its length in bytes.
            let (repetition, rest) = prefixed(buf, 0)?;
            let (definition, values) = prefixed(buf, rest)?;
            let values = buf.get(values..).ok_or("a data page cut short")?;
            Ok((
                buf.slice_ref(repetition),
                buf.slice_ref(definition),
                buf.slice_ref(values),
                *num_values as usize,
            ))
        }
        Page::DataPageV2 {
            buf,
            num_values,
            rep_levels_byte_len,
            def_levels_byte_len,
            ..
        } => {
            let repetition_end = *rep_levels_byte_len as usize;
            let definition_end = repetition_end
                .checked_add(*def_levels_byte_len as usize)
                .ok_or("levels longer than the page")?;
            let repetition = buf.get(..repetition_end).ok_or("levels cut short")?;
            let definition = buf
                .get(repetition_end..definition_end)
                .ok_or("levels cut short")?;
            let values = buf.get(definition_end..).ok_or("a data page cut short")?;
            Ok((
                buf.slice_ref(repetition),
                buf.slice_ref(definition),
                buf.slice_ref(values),
                *num_values as usize,
            ))
        }
        Page::DictionaryPage { .. } => Err("a dictionary page among data pages".into()),
    }
}

/// The bytes after the length (u32 little endian) at `position` of `buf` (a version 1
/// page's levels), and where they end.
fn prefixed(buf: &[u8], position: usize) -> Result<(&[u8], usize), String> {
    let (start, end) = chunk_pages::plain_span(buf, position)
        .ok_or("a data page cut short, or levels past its end")?;
    Ok((buf.get(start..end).unwrap_or_default(), end))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, ArrayRef, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use proptest::prelude::*;
    use std::fs::File;
    use std::sync::Arc;

    /// A row: `None` is a null list.
    pub(crate) type Row = Option<Vec<Option<String>>>;

    /// Rows of null and empty lists and lists of up to `items_max - 1` items, some null,
    /// the others among `distinct` strings `s0`, `s1`, ...
    pub(crate) fn list_row(distinct: u32, items_max: usize) -> impl Strategy<Value = Row> {
        let item = prop_oneof![
            1 => Just(None),
            6 => (0..distinct).prop_map(|index| Some(format!("s{index}"))),
        ];
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(Vec::new())),
            8 => proptest::collection::vec(item, 1..items_max).prop_map(Some),
        ]
    }

    /// How a test file is written.
    #[derive(Clone, Debug)]
    struct Layout {
        list_nullable: bool,
        item_nullable: bool,
        version: WriterVersion,
        page_rows: usize,
        row_group_rows: usize,
    }

    fn write(path: &Path, rows: &[Row], layout: &Layout) {
        let properties = WriterProperties::builder()
            .set_writer_version(layout.version)
            .set_compression(Compression::ZSTD(Default::default()))
            .set_dictionary_enabled(true)
            .set_data_page_row_count_limit(layout.page_rows)
            .set_write_batch_size(layout.page_rows)
            .set_max_row_group_row_count(Some(layout.row_group_rows))
            .build();
        write_lists(
            path,
            rows,
            (layout.list_nullable, layout.item_nullable),
            properties,
        );
    }

    /// A file of one list column `tags` of `rows`, written by the Arrow writer with
    /// `properties`; `nullability` is the list's, then the items'.
    pub(crate) fn write_lists(
        path: &Path,
        rows: &[Row],
        nullability: (bool, bool),
        properties: WriterProperties,
    ) {
        let (list_nullable, item_nullable) = nullability;
        let item = Field::new("element", DataType::Utf8, item_nullable);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "tags",
            DataType::List(Arc::new(item.clone())),
            list_nullable,
        )]));
        let mut builder = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(item));
        for row in rows {
            match row {
                None => builder.append(false),
                Some(items) => {
                    for item in items {
                        builder.values().append_option(item.as_deref());
                    }
                    builder.append(true);
                }
            }
        }
        let column: ArrayRef = Arc::new(builder.finish());
        let file = File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
        writer
            .write(&RecordBatch::try_new(schema, vec![column]).unwrap())
            .unwrap();
        writer.close().unwrap();
    }

    /// A row read by [`ListPages`], from its levels and indices.
    fn row_of(list: &RowSpan<'_>, dictionary: &PageDictionary, levels: ListLevels) -> Row {
        if list.definition.len() == 1 && list.definition[0] < levels.item_min() {
            return match levels.list_nullable && list.definition[0] == 0 {
                true => None,
                false => Some(Vec::new()),
            };
        }
        assert_eq!(list.repetition[0], 0);
        assert!(list.repetition[1..].iter().all(|&level| level == 1));
        let mut indices = list.indices.iter();
        let row = list
            .definition
            .iter()
            .map(|&level| {
                (level == levels.item).then(|| {
                    dictionary
                        .value(*indices.next().unwrap())
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        assert!(indices.next().is_none());
        Some(row)
    }

    /// Each row group's rows from row `skip` on, read by [`ListPages`]: every third row
    /// by one reader, the others by a second, which reads them in steps of `step` rows;
    /// after them, nothing must be left.
    fn read_pages(path: &Path, skip: usize, step: usize, list_nullable: bool) -> Vec<Vec<Row>> {
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
                let mut read = vec![None; rows - skip];
                for third in [true, false] {
                    let mut lists =
                        ListPages::open(path, group, &descriptor, 0, list_nullable, skip).unwrap();
                    let levels = lists.levels();
                    let wanted = |row: usize| row.is_multiple_of(3) == third;
                    let step = if third { rows } else { step };
                    let mut first = 0;
                    while first < rows - skip {
                        let count = step.min(rows - skip - first);
                        let held = lists.next_rows(count).unwrap();
                        assert_eq!(held.rows(), count);
                        for row in 0..count {
                            if wanted(first + row) {
                                let span = held.span(row, row + 1);
                                read[first + row] = row_of(&span, held.dictionary(), levels);
                            }
                        }
                        first += count;
                    }
                    assert!(lists.skip(1).is_err(), "a row past the row group");
                    assert!(lists.failure().unwrap().contains("fewer rows"));
                }
                read
            })
            .collect()
    }

    /// The same, read by parquet's Arrow reader.
    fn read_arrow(path: &Path, skip: usize) -> Vec<Vec<Row>> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let groups = builder.metadata().num_row_groups();
        (0..groups)
            .map(|group| {
                let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                    .unwrap()
                    .with_row_groups(vec![group])
                    .build()
                    .unwrap();
                let mut rows = Vec::new();
                for batch in reader {
                    let batch = batch.unwrap();
                    let lists = batch.column(0).as_list::<i32>();
                    for row in 0..lists.len() {
                        rows.push(lists.is_valid(row).then(|| {
                            let items = lists.value(row);
                            let items = items.as_string::<i32>();
                            items.iter().map(|item| item.map(str::to_string)).collect()
                        }));
                    }
                }
                rows.split_off(skip.min(rows.len()))
            })
            .collect()
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            1usize..40,
            1usize..200,
        )
            .prop_map(
                |(list_nullable, item_nullable, v2, page_rows, row_group_rows)| Layout {
                    list_nullable,
                    item_nullable,
                    version: match v2 {
                        true => WriterVersion::PARQUET_2_0,
                        false => WriterVersion::PARQUET_1_0,
                    },
                    page_rows,
                    row_group_rows,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        // Proves the pages give every row group's lists, from any row on, as parquet's
        // own reader reads them: both page versions, null and empty lists, null items,
        // every nullability, many pages, slices that start inside a page.
        #[test]
        fn pages_read_as_the_arrow_reader_reads(
            rows in proptest::collection::vec(list_row(12, 9), 1..300),
            layout in layout(),
            skip in 0usize..80,
            step in 1usize..50,
        ) {
            let rows: Vec<Row> = rows
                .into_iter()
                .map(|row| match row {
                    None if !layout.list_nullable => Some(Vec::new()),
                    Some(items) if !layout.item_nullable => {
                        Some(items.into_iter().map(|item| item.or(Some("x".into()))).collect())
                    }
                    row => row,
                })
                .collect();
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("tags.parquet");
            write(&path, &rows, &layout);
            prop_assert_eq!(
                read_pages(&path, skip, step, layout.list_nullable),
                read_arrow(&path, skip)
            );
        }
    }

    /// Pages held in memory, handed out as parquet's page reader hands them out, but
    /// without the row counts a reader learns from an offset index.
    struct MemoryPages(std::collections::VecDeque<Page>);

    impl Iterator for MemoryPages {
        type Item = parquet::errors::Result<Page>;

        fn next(&mut self) -> Option<Self::Item> {
            self.0.pop_front().map(Ok)
        }
    }

    impl PageReader for MemoryPages {
        fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
            Ok(self.0.pop_front())
        }

        fn peek_next_page(
            &mut self,
        ) -> parquet::errors::Result<Option<parquet::column::page::PageMetadata>> {
            Ok(self
                .0
                .front()
                .map(|page| parquet::column::page::PageMetadata {
                    num_rows: None,
                    num_levels: Some(page.num_values() as usize),
                    is_dict: page.is_dictionary_page(),
                }))
        }

        fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
            self.0.pop_front();
            Ok(())
        }
    }

    /// Version 1 pages of `rows` (a nullable list of nullable items, dictionary `s0`..`s9`)
    /// cut at the level positions `cuts`, wherever they fall: rows span pages.
    fn pages_cut_anywhere(rows: &[Row], cuts: &[usize]) -> std::collections::VecDeque<Page> {
        let (mut repetition, mut definition, mut indices) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            match row {
                None => {
                    repetition.push(0u8);
                    definition.push(0u8);
                }
                Some(items) if items.is_empty() => {
                    repetition.push(0);
                    definition.push(1);
                }
                Some(items) => {
                    for (position, item) in items.iter().enumerate() {
                        repetition.push(u8::from(position > 0));
                        match item {
                            Some(value) => {
                                definition.push(3);
                                indices.push(value.trim_start_matches('s').parse::<u32>().unwrap());
                            }
                            None => definition.push(2),
                        }
                    }
                }
            }
        }
        let mut dictionary = Vec::new();
        for index in 0..10 {
            let value = format!("s{index}");
            dictionary.extend_from_slice(&(value.len() as u32).to_le_bytes());
            dictionary.extend_from_slice(value.as_bytes());
        }
        let mut pages = std::collections::VecDeque::from([Page::DictionaryPage {
            buf: Bytes::from(dictionary),
            num_values: 10,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        }]);
        let mut bounds: Vec<usize> = cuts.iter().map(|&cut| cut % repetition.len()).collect();
        bounds.extend([0, repetition.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut items_before = 0;
        for window in bounds.windows(2) {
            let (start, end) = (window[0], window[1]);
            let items = definition[start..end]
                .iter()
                .filter(|&&level| level == 3)
                .count();
            let mut buf = Vec::new();
            for (levels, width) in [(&repetition[start..end], 1), (&definition[start..end], 2)] {
                let mut encoded = Vec::new();
                rle_hybrid::encode(levels, width, &mut encoded);
                buf.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
                buf.extend_from_slice(&encoded);
            }
            buf.push(4);
            rle_hybrid::encode(&indices[items_before..items_before + items], 4, &mut buf);
            items_before += items;
            pages.push_back(Page::DataPage {
                buf: Bytes::from(buf),
                num_values: (end - start) as u32,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            });
        }
        pages
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        // Proves rows cut across pages anywhere (as some version 1 writers cut them) are
        // joined whole, from any row on, in steps of any size; and that the reader runs
        // out exactly at the last row.
        #[test]
        fn rows_spanning_pages_are_read_whole(
            rows in proptest::collection::vec(list_row(10, 12), 1..60),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
            skip in 0usize..70,
            step in 1usize..20,
        ) {
            let skip = skip.min(rows.len());
            let levels = ListLevels { list_nullable: true, item_nullable: true, item: 3 };
            let pages = MemoryPages(pages_cut_anywhere(&rows, &cuts));
            let mut lists = ListPages::from_reader(Box::new(pages), "tags".into(), levels, skip).unwrap();
            let mut read = Vec::new();
            while read.len() < rows.len() - skip {
                let count = step.min(rows.len() - skip - read.len());
                let held = lists.next_rows(count).unwrap();
                for row in 0..count {
                    read.push(row_of(&held.span(row, row + 1), held.dictionary(), levels));
                }
            }
            prop_assert_eq!(&read[..], &rows[skip..]);
            prop_assert!(lists.skip(1).is_err());
        }
    }
}
