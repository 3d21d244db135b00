//! Output parts: each gate worker writes its own file (`part-NNNNN.parquet` or `.jsonl`)
//! under a temporary name (`.part-NNNNN.parquet.partial`), hashing the bytes as they go
//! out; the gate renames the parts only when every worker has finished cleanly.
//!
//! Parquet is written with ZSTD level 3, dictionaries on (turning them off is slower and
//! larger), data pages v2, and statistics only for the id column, where readers use them
//! to prune; without the Arrow schema embedded, so `Utf8View` columns read back as plain
//! strings in every engine.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{ArrowWriter, ArrowWriterOptions};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde_json::{Map, Value};

use crate::error::GateError;
use crate::input::{FileFormat, HashingWriter};

pub const ZSTD_LEVEL: i32 = 3;
/// Rows per output row group; bounds what a writer buffers (compressed) in memory.
pub const OUTPUT_ROW_GROUP_ROWS: usize = 256 * 1024;

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
    Parquet(Box<ArrowWriter<HashingWriter<File>>>),
    JsonLines(BufWriter<HashingWriter<File>>),
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

pub fn writer_properties(id_column: &str) -> Result<WriterProperties, GateError> {
    let level =
        ZstdLevel::try_new(ZSTD_LEVEL).map_err(|error| GateError::Usage(error.to_string()))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_max_row_group_row_count(Some(OUTPUT_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(
            ColumnPath::from(id_column.to_string()),
            EnabledStatistics::Chunk,
        )
        .build())
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
            FileFormat::JsonLines => Sink::JsonLines(BufWriter::with_capacity(1 << 20, hashing)),
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
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let object: Map<String, Value> = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| {
                    (
                        field.name().clone(),
                        crate::json_lines::json_value(column.as_ref(), row),
                    )
                })
                .collect();
            self.write_object(&object)?;
        }
        Ok(())
    }

    /// Appends one JSON object as a line (JSON Lines parts only).
    pub fn write_object(&mut self, object: &Map<String, Value>) -> Result<(), GateError> {
        let Sink::JsonLines(writer) = &mut self.sink else {
            return Err(GateError::Usage(
                "JSON Lines input can be written as JSON Lines only (--format jsonl)".into(),
            ));
        };
        let result = serde_json::to_writer(&mut *writer, object)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.write_all(b"\n"));
        result.map_err(|error| GateError::Write {
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
            Sink::JsonLines(writer) => writer
                .into_inner()
                .map_err(|error| io(error.into_error()))?,
        };
        let (file, bytes, sha256) = hashing.finish();
        file.sync_all().map_err(io)?;
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
