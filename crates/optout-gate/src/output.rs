//! Output parts: each gate worker writes its own file (`part-NNNNN.parquet` or `.jsonl`)
//! under a temporary name (`.part-NNNNN.parquet.partial`), hashing the bytes as they go
//! out; the gate renames the parts only when every worker has finished cleanly.
//!
//! Parquet is written with ZSTD level 3, data pages v2 (v1 measured 2-3% more
//! instructions and larger files), and statistics only for the id column, where readers
//! use them to prune; without the Arrow schema embedded, so `Utf8View` columns read back
//! as plain strings in every engine. Dictionaries stay on (turning them all off is slower
//! and larger) except where they cannot pay: the id column, and the columns whose input
//! writer abandoned its own dictionary (mostly distinct values, such as free text). On the
//! benchmark's 1M gate, those columns without a dictionary and with their strings as
//! `DELTA_LENGTH_BYTE_ARRAY` take 3.2% fewer instructions and 3.8% fewer bytes.
//!
//! A [`ParquetPart`] drives the Arrow writer's column writers itself, row group by row
//! group, so that two kinds of column can be encoded here instead and spliced in between
//! (see their modules for why): lists of dictionary-encoded strings, by a
//! [`DictionaryListWriter`], and free text, by a [`DeltaLengthStringWriter`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_buffer::BooleanBuffer;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use serde_json::Value;

use crate::column_chunk::FieldPages;
use crate::column_chunk::{ColumnChunkEncoder, KeptRows};
use crate::delta_length_string_writer::DeltaLengthStringWriter;
use crate::dictionary_list_writer::DictionaryListWriter;
use crate::error::GateError;
use crate::input::{FileFormat, HashingWriter};
use crate::part_file::PartFile;

pub const ZSTD_LEVEL: i32 = 3;
/// Values bytes per page of the columns written without a dictionary: twice parquet-rs's
/// default. Its writer let these pages grow to about 2 MiB anyway (it checks the limit
/// after each batch of rows); cut at 1 MiB, the benchmark's free text took 1.1% more
/// bytes compressed.
const DISTINCT_PAGE_BYTES: usize = 2 << 20;
/// Rows per output row group; bounds what a writer buffers (compressed) in memory.
pub const OUTPUT_ROW_GROUP_ROWS: usize = 256 * 1024;

/// An output field whose values come straight from the input's pages.
pub(crate) struct PagedColumn {
    /// The field's index in the part's schema.
    pub field: usize,
    pub pages: FieldPages,
}

/// A finished output part.
#[derive(Clone, Debug)]
pub struct WrittenPart {
    pub name: String,
    pub temporary: PathBuf,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// How a top-level field's column chunks are encoded.
enum FieldEncoder {
    /// By the Arrow writer's column writers, one per leaf.
    Arrow { leaves: usize },
    /// By an encoder of this crate; the Arrow writer made for its one leaf goes unused.
    Own(Box<dyn ColumnChunkEncoder>),
}

/// A Parquet part: row groups of at most `row_group_rows_max` rows, each column chunk
/// encoded by the Arrow writer's column writers or one of this crate, and spliced
/// into the file in schema order when the row group is full. Only the row group being
/// built is held in memory (its pages, compressed).
struct ParquetPart {
    file: SerializedFileWriter<HashingWriter<PartFile>>,
    row_groups: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// One per field of `schema`.
    encoders: Vec<FieldEncoder>,
    /// The row group being built: one writer per leaf column.
    arrow_writers: Option<Vec<ArrowColumnWriter>>,
    row_group_rows: usize,
    row_group_rows_max: usize,
}

impl ParquetPart {
    fn new(
        sink: HashingWriter<PartFile>,
        schema: &SchemaRef,
        properties: &WriterProperties,
    ) -> Result<ParquetPart, ParquetError> {
        // Settings the Arrow writer honours and this one would not.
        if properties.content_defined_chunking().is_some()
            || properties.max_row_group_bytes().is_some()
        {
            return Err(ParquetError::General(
                "content-defined chunking and row group byte limits are not supported".into(),
            ));
        }
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(properties.coerce_types())
            .convert(schema)?;
        let encoders = field_encoders(schema, &parquet_schema, properties)?;
        let file = SerializedFileWriter::new(
            sink,
            parquet_schema.root_schema_ptr(),
            Arc::new(properties.clone()),
        )?;
        let row_groups = ArrowRowGroupWriterFactory::new(&file, Arc::clone(schema));
        Ok(ParquetPart {
            file,
            row_groups,
            schema: Arc::clone(schema),
            encoders,
            arrow_writers: None,
            row_group_rows: 0,
            row_group_rows_max: properties
                .max_row_group_row_count()
                .unwrap_or(usize::MAX)
                .max(1),
        })
    }

    /// Appends the `kept` rows of the `rows` rows of `columns` and `paged` that `keep`
    /// keeps (all when `None`; as long as the rows, which [`PartWriter::write_kept_with_pages`]
    /// checks, as it counts `kept`). `paged` fills the fields it names, in schema order;
    /// `columns` the others. Row groups are cut by rows kept; no chunk is ever empty.
    fn write(
        &mut self,
        columns: &[ArrayRef],
        rows: usize,
        paged: &mut [PagedColumn],
        keep: Option<&BooleanBuffer>,
        kept: usize,
    ) -> Result<(), ParquetError> {
        let fields = self.schema.fields();
        if columns.len() + paged.len() != fields.len() {
            return Err(ParquetError::General(format!(
                "a batch has {} columns, the part {}",
                columns.len() + paged.len(),
                fields.len()
            )));
        }
        let mut arrays = columns.iter();
        for (index, field) in fields.iter().enumerate() {
            if paged.iter().any(|paged| paged.field == index) {
                let takes = matches!(self.encoders.get(index), Some(FieldEncoder::Own(encoder)) if encoder.takes_pages());
                if !takes {
                    return Err(ParquetError::General(format!(
                        "column {}: takes no values read from pages",
                        field.name()
                    )));
                }
                continue;
            }
            let column = arrays.next().ok_or_else(missing_writer)?;
            if field.data_type() != column.data_type() {
                return Err(ParquetError::General(format!(
                    "column {}: a batch has type {}, the part {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )));
            }
        }
        let mut kept_left = kept;
        let mut offset = 0;
        while kept_left > 0 {
            // At least one row: the row group is flushed when it is full.
            let room = self.row_group_rows_max - self.row_group_rows;
            let rows_left = rows - offset;
            let (length, kept_here) = if kept_left <= room {
                (rows_left, kept_left)
            } else {
                // Up to and with the row that fills the row group.
                let length = match keep {
                    None => room,
                    Some(keep) => keep
                        .slice(offset, rows_left)
                        .set_indices()
                        .nth(room - 1)
                        .map_or(rows_left, |last| last + 1),
                };
                (length, room)
            };
            let mask = keep
                .map(|keep| keep.slice(offset, length))
                .filter(|_| kept_here < length);
            let sliced: Vec<ArrayRef> = columns
                .iter()
                .map(|column| column.slice(offset, length))
                .collect();
            self.write_to_row_group(&sliced, length, paged, mask.as_ref(), kept_here)?;
            if self.row_group_rows >= self.row_group_rows_max {
                self.flush_row_group()?;
            }
            offset += length;
            kept_left -= kept_here;
        }
        if offset < rows {
            // No row kept after `offset`: the pages' rows are passed over all the same.
            for paged in paged.iter_mut() {
                paged.pages.skip(rows - offset)?;
            }
        }
        Ok(())
    }

    /// Appends the `kept` rows of the `rows` rows of `columns` and `paged` that `mask`
    /// keeps (all when `None`) to the row group being built.
    fn write_to_row_group(
        &mut self,
        columns: &[ArrayRef],
        rows: usize,
        paged: &mut [PagedColumn],
        mask: Option<&BooleanBuffer>,
        kept: usize,
    ) -> Result<(), ParquetError> {
        let writers = match &mut self.arrow_writers {
            Some(writers) => writers,
            None => self.arrow_writers.insert(
                self.row_groups
                    .create_column_writers(self.file.flushed_row_groups().len())?,
            ),
        };
        let mut writers = writers.iter_mut();
        let mut arrays = columns.iter();
        let kept_rows = mask.map_or(KeptRows::All, KeptRows::Masked);
        for (index, (field, encoder)) in self
            .schema
            .fields()
            .iter()
            .zip(self.encoders.iter_mut())
            .enumerate()
        {
            if let Some(paged) = paged.iter_mut().find(|paged| paged.field == index) {
                writers.next().ok_or_else(missing_writer)?;
                match encoder {
                    FieldEncoder::Own(encoder) => {
                        encoder.write_pages(&mut paged.pages, rows, kept_rows)?
                    }
                    FieldEncoder::Arrow { .. } => return Err(missing_writer()),
                }
                continue;
            }
            let column = arrays.next().ok_or_else(missing_writer)?;
            match encoder {
                FieldEncoder::Arrow { .. } => {
                    let column = match mask {
                        Some(mask) => arrow_select::filter::filter(
                            column.as_ref(),
                            &BooleanArray::new(mask.clone(), None),
                        )
                        .map_err(|error| ParquetError::General(error.to_string()))?,
                        None => Arc::clone(column),
                    };
                    for leaf in compute_leaves(field, &column)? {
                        writers.next().ok_or_else(missing_writer)?.write(&leaf)?;
                    }
                }
                FieldEncoder::Own(encoder) => {
                    writers.next().ok_or_else(missing_writer)?;
                    encoder.write(column.as_ref(), kept_rows)?;
                }
            }
        }
        self.row_group_rows += kept;
        Ok(())
    }

    /// Writes the row group being built, its column chunks in schema order.
    fn flush_row_group(&mut self) -> Result<(), ParquetError> {
        let Some(writers) = self.arrow_writers.take() else {
            return Ok(());
        };
        let mut writers = writers.into_iter();
        let mut row_group = self.file.next_row_group()?;
        for encoder in &mut self.encoders {
            match encoder {
                FieldEncoder::Arrow { leaves } => {
                    for _ in 0..*leaves {
                        let writer = writers.next().ok_or_else(missing_writer)?;
                        writer.close()?.append_to_row_group(&mut row_group)?;
                    }
                }
                FieldEncoder::Own(encoder) => {
                    writers.next().ok_or_else(missing_writer)?;
                    let (chunk, close) = encoder.close_chunk()?;
                    row_group.append_column(&chunk, close)?;
                }
            }
        }
        row_group.close()?;
        self.row_group_rows = 0;
        Ok(())
    }

    /// Writes the last row group and the footer.
    fn finish(mut self) -> Result<HashingWriter<PartFile>, ParquetError> {
        self.flush_row_group()?;
        self.file.into_inner()
    }
}

/// One encoder per field of `schema`: one of this crate where one takes the field, the
/// Arrow writer's for its leaves otherwise.
fn field_encoders(
    schema: &SchemaRef,
    parquet_schema: &SchemaDescriptor,
    properties: &WriterProperties,
) -> Result<Vec<FieldEncoder>, ParquetError> {
    let mut leaves_per_field = vec![0usize; schema.fields().len()];
    for leaf in 0..parquet_schema.num_columns() {
        if let Some(leaves) = leaves_per_field.get_mut(parquet_schema.get_column_root_idx(leaf)) {
            *leaves += 1;
        }
    }
    let mut encoders = Vec::with_capacity(leaves_per_field.len());
    let mut first_leaf = 0;
    for (field, leaves) in schema.fields().iter().zip(leaves_per_field) {
        let own = match leaves {
            1 => own_encoder(field, parquet_schema, first_leaf, properties)?,
            _ => None,
        };
        encoders.push(match own {
            Some(encoder) => FieldEncoder::Own(encoder),
            None => FieldEncoder::Arrow { leaves },
        });
        first_leaf += leaves;
    }
    Ok(encoders)
}

/// An encoder of this crate for the field whose one leaf is `leaf`, if one takes it.
fn own_encoder(
    field: &arrow_schema::Field,
    parquet_schema: &SchemaDescriptor,
    leaf: usize,
    properties: &WriterProperties,
) -> Result<Option<Box<dyn ColumnChunkEncoder>>, ParquetError> {
    if let Some(writer) = DictionaryListWriter::for_field(field, parquet_schema, leaf, properties)?
    {
        return Ok(Some(Box::new(writer)));
    }
    let writer = DeltaLengthStringWriter::for_field(field, parquet_schema, leaf, properties)?;
    Ok(writer.map(|writer| Box::new(writer) as Box<dyn ColumnChunkEncoder>))
}

fn missing_writer() -> ParquetError {
    ParquetError::General("fewer column writers than leaf columns".into())
}

enum Sink {
    Parquet(Box<ParquetPart>),
    JsonLines {
        out: Box<BufWriter<HashingWriter<PartFile>>>,
        /// Each column's name as a JSON key followed by `:`, encoded once.
        keys: Vec<Vec<u8>>,
    },
}

pub struct PartWriter {
    sink: Sink,
    name: String,
    temporary: PathBuf,
    path: PathBuf,
    rows: u64,
}

/// The rows `keep` keeps of a batch of `rows` (all when `None`); an error when the mask is
/// not as long as the batch.
fn kept_count(rows: usize, keep: Option<&BooleanBuffer>) -> Result<usize, GateError> {
    match keep {
        Some(keep) if keep.len() != rows => Err(GateError::Internal(format!(
            "a mask of {} rows for a batch of {rows}",
            keep.len()
        ))),
        Some(keep) => Ok(keep.count_set_bits()),
        None => Ok(rows),
    }
}

pub fn part_name(index: usize, format: FileFormat) -> String {
    format!("part-{index:05}.{}", format.extension())
}

pub fn temporary_path(directory: &Path, name: &str) -> PathBuf {
    directory.join(format!(".{name}.partial"))
}

/// A leaf column whose values are mostly distinct (free text, unique ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinctColumn {
    pub path: ColumnPath,
    /// Strings or binary (`BYTE_ARRAY`).
    pub byte_array: bool,
}

/// The output's writer settings. `distinct`: columns written without a dictionary, which
/// would only cost time (interning every value) until the writer gave it up; strings
/// among them as `DELTA_LENGTH_BYTE_ARRAY` (lengths apart from the bytes), which beats the
/// v2 fallback `DELTA_BYTE_ARRAY` (shared prefixes, rare in free text) in time and size.
/// The id column never has a dictionary.
pub fn writer_properties(
    id_column: &str,
    distinct: &[DistinctColumn],
) -> Result<WriterProperties, GateError> {
    let level =
        ZstdLevel::try_new(ZSTD_LEVEL).map_err(|error| GateError::Internal(error.to_string()))?;
    let id = ColumnPath::from(id_column.to_string());
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_max_row_group_row_count(Some(OUTPUT_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(id.clone(), EnabledStatistics::Chunk)
        .set_column_dictionary_enabled(id, false);
    for column in distinct {
        builder = builder.set_column_dictionary_enabled(column.path.clone(), false);
        if column.byte_array {
            builder = builder
                .set_column_encoding(column.path.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY)
                .set_column_data_page_size_limit(column.path.clone(), DISTINCT_PAGE_BYTES);
        }
    }
    Ok(builder.build())
}

impl PartWriter {
    pub fn create(
        directory: &Path,
        index: usize,
        format: FileFormat,
        schema: &SchemaRef,
        properties: &WriterProperties,
    ) -> Result<PartWriter, GateError> {
        let name = part_name(index, format);
        let temporary = temporary_path(directory, &name);
        let file = File::create(&temporary).map_err(|error| GateError::Write {
            path: temporary.clone(),
            error,
        })?;
        let file = PartFile::new(file).map_err(|error| GateError::Write {
            path: temporary.clone(),
            error,
        })?;
        let hashing = HashingWriter::new(file);
        let sink = match format {
            FileFormat::Parquet => {
                let part = ParquetPart::new(hashing, schema, properties).map_err(|error| {
                    GateError::WriteParquet {
                        path: temporary.clone(),
                        reason: error.to_string(),
                    }
                })?;
                Sink::Parquet(Box::new(part))
            }
            FileFormat::JsonLines => Sink::JsonLines {
                out: Box::new(BufWriter::with_capacity(1 << 20, hashing)),
                keys: schema
                    .fields()
                    .iter()
                    .map(|field| {
                        let mut key = serde_json::to_vec(field.name()).unwrap_or_default();
                        key.push(b':');
                        key
                    })
                    .collect(),
            },
        };
        Ok(PartWriter {
            sink,
            path: directory.join(&name),
            name,
            temporary,
            rows: 0,
        })
    }

    fn write_error(&self, error: impl std::fmt::Display) -> GateError {
        GateError::WriteParquet {
            path: self.temporary.clone(),
            reason: error.to_string(),
        }
    }

    /// Appends a batch (Parquet parts) or its rows as JSON objects (JSON Lines parts).
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), GateError> {
        self.write_kept(batch, None)
    }

    /// Appends the rows of `batch` set in `keep` (as long as the batch; all rows when
    /// `None`). Parquet parts skip the other rows as they encode; JSON Lines parts write
    /// the batch filtered.
    pub fn write_kept(
        &mut self,
        batch: &RecordBatch,
        keep: Option<&BooleanBuffer>,
    ) -> Result<(), GateError> {
        if let Sink::Parquet(_) = &self.sink {
            return self.write_kept_with_pages(batch.columns(), batch.num_rows(), &mut [], keep);
        }
        let kept = kept_count(batch.num_rows(), keep)?;
        if kept == 0 {
            return Ok(());
        }
        let filtered;
        let batch = match keep.filter(|_| kept < batch.num_rows()) {
            Some(keep) => {
                filtered = arrow_select::filter::filter_record_batch(
                    batch,
                    &BooleanArray::new(keep.clone(), None),
                )
                .map_err(|error| GateError::Internal(error.to_string()))?;
                &filtered
            }
            None => batch,
        };
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| crate::json_lines::json_value(column.as_ref(), row));
            self.write_row(values)?;
        }
        Ok(())
    }

    /// Whether output field `field` can be filled from values read straight from the
    /// input's pages ([`PartWriter::write_kept_with_pages`]).
    pub(crate) fn takes_pages(&self, field: usize) -> bool {
        match &self.sink {
            Sink::Parquet(part) => {
                matches!(part.encoders.get(field), Some(FieldEncoder::Own(encoder)) if encoder.takes_pages())
            }
            Sink::JsonLines { .. } => false,
        }
    }

    /// As [`PartWriter::write_kept`], for `rows` rows whose fields named in `paged` come
    /// straight from the input's pages (see [`PartWriter::takes_pages`]) and the others,
    /// in schema order, from `columns`. Every row of `paged` is read, kept or not.
    pub(crate) fn write_kept_with_pages(
        &mut self,
        columns: &[ArrayRef],
        rows: usize,
        paged: &mut [PagedColumn],
        keep: Option<&BooleanBuffer>,
    ) -> Result<(), GateError> {
        let kept = kept_count(rows, keep)?;
        let Sink::Parquet(writer) = &mut self.sink else {
            return Err(GateError::Internal(
                "values from pages for a JSON Lines part".into(),
            ));
        };
        // With no row kept, this passes over the rows of `paged` and writes nothing.
        let written = writer.write(columns, rows, paged, keep, kept);
        written.map_err(|error| self.write_error(error))?;
        self.rows += kept as u64;
        Ok(())
    }

    /// Appends one row as a JSON object, its values in the order of the part's columns
    /// (JSON Lines parts only).
    pub fn write_row(&mut self, values: impl IntoIterator<Item = Value>) -> Result<(), GateError> {
        let Sink::JsonLines { out, keys } = &mut self.sink else {
            return Err(GateError::Internal(
                "a JSON row was given to a Parquet part".into(),
            ));
        };
        let write = || -> std::io::Result<()> {
            out.write_all(b"{")?;
            for (index, (key, value)) in keys.iter().zip(values).enumerate() {
                if index > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(key)?;
                serde_json::to_writer(&mut *out, &value)?;
            }
            out.write_all(b"}\n")
        };
        write().map_err(|error| GateError::Write {
            path: self.temporary.clone(),
            error,
        })?;
        self.rows += 1;
        Ok(())
    }

    /// Closes the part (footer written, synced to disk) and returns what it holds.
    pub fn finish(self) -> Result<WrittenPart, GateError> {
        let io = |error| GateError::Write {
            path: self.temporary.clone(),
            error,
        };
        let hashing = match self.sink {
            Sink::Parquet(part) => part.finish().map_err(|error| GateError::WriteParquet {
                path: self.temporary.clone(),
                reason: error.to_string(),
            })?,
            Sink::JsonLines { out, .. } => {
                out.into_inner().map_err(|error| io(error.into_error()))?
            }
        };
        let (file, bytes, sha256) = hashing.finish();
        file.finish().map_err(io)?;
        Ok(WrittenPart {
            name: self.name,
            temporary: self.temporary,
            path: self.path,
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}
