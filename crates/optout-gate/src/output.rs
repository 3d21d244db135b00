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

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{ArrowWriter, ArrowWriterOptions};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde_json::Value;

use crate::error::GateError;
use crate::input::{FileFormat, HashingWriter};

pub const ZSTD_LEVEL: i32 = 3;
/// Rows per output row group; bounds what a writer buffers (compressed) in memory.
pub const OUTPUT_ROW_GROUP_ROWS: usize = 256 * 1024;

/// Bytes written to a part between two requests to the background writeback thread.
const WRITEBACK_BYTES: u64 = 32 << 20;

/// A part's file whose data goes to disk while the worker writes on: every
/// [`WRITEBACK_BYTES`] a thread of its own (blocked on the disk, not using a core) syncs
/// what was written so far, so the closing `fsync`, on the run's critical path, only has
/// the tail left to write.
struct SyncingFile {
    file: File,
    unsynced: u64,
    request: Option<std::sync::mpsc::SyncSender<()>>,
    writeback: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl SyncingFile {
    fn new(file: File) -> std::io::Result<SyncingFile> {
        let background = file.try_clone()?;
        // One pending request at most: a request made while a sync runs is covered by
        // the next one.
        let (request, requests) = std::sync::mpsc::sync_channel::<()>(1);
        let writeback = std::thread::Builder::new()
            .name("part-writeback".into())
            .spawn(move || {
                for () in requests {
                    background.sync_data()?;
                }
                Ok(())
            })?;
        Ok(SyncingFile {
            file,
            unsynced: 0,
            request: Some(request),
            writeback: Some(writeback),
        })
    }

    /// Stops the writeback thread (reporting any failure it met) and syncs the rest.
    fn finish(mut self) -> std::io::Result<()> {
        self.stop()?;
        self.file.sync_all()
    }

    fn stop(&mut self) -> std::io::Result<()> {
        drop(self.request.take());
        match self.writeback.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the writeback thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for SyncingFile {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Write for SyncingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written as u64;
        if self.unsynced >= WRITEBACK_BYTES {
            self.unsynced = 0;
            if let Some(request) = &self.request {
                let _ = request.try_send(());
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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

enum Sink {
    Parquet(Box<ArrowWriter<HashingWriter<SyncingFile>>>),
    JsonLines {
        out: Box<BufWriter<HashingWriter<SyncingFile>>>,
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
            builder =
                builder.set_column_encoding(column.path.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY);
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
        let file = SyncingFile::new(file).map_err(|error| GateError::Write {
            path: temporary.clone(),
            error,
        })?;
        let hashing = HashingWriter::new(file);
        let sink = match format {
            FileFormat::Parquet => {
                let options = ArrowWriterOptions::new()
                    .with_properties(properties.clone())
                    .with_skip_arrow_metadata(true);
                let writer = ArrowWriter::try_new_with_options(hashing, schema.clone(), options)
                    .map_err(|error| GateError::WriteParquet {
                        path: temporary.clone(),
                        reason: error.to_string(),
                    })?;
                Sink::Parquet(Box::new(writer))
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
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Sink::Parquet(writer) = &mut self.sink {
            let written = writer.write(batch);
            written.map_err(|error| self.write_error(error))?;
            self.rows += batch.num_rows() as u64;
            return Ok(());
        }
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| crate::json_lines::json_value(column.as_ref(), row));
            self.write_row(values)?;
        }
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
            Sink::Parquet(writer) => {
                writer
                    .into_inner()
                    .map_err(|error| GateError::WriteParquet {
                        path: self.temporary.clone(),
                        reason: error.to_string(),
                    })?
            }
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
