//! Input files: paths given on the command line expanded into files (a directory stands
//! for the Parquet and JSON Lines files directly in it, in name order, hidden files
//! skipped), each with its format and size; and the SHA-256 digests that a manifest
//! records for inputs and outputs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::GateError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Parquet,
    JsonLines,
}

impl FileFormat {
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "parquet" | "pq" => Some(FileFormat::Parquet),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::JsonLines),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::JsonLines => "jsonl",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Parquet => "Parquet",
            FileFormat::JsonLines => "JSON Lines",
        }
    }
}

#[derive(Clone, Debug)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: FileFormat,
    pub bytes: u64,
}

/// Expands files and directories into input files, in the order given.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<InputFile>, GateError> {
    if paths.is_empty() {
        return Err(GateError::NoInputs);
    }
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|error| GateError::Unreadable {
            path: path.clone(),
            error,
        })?;
        if metadata.is_dir() {
            let found = directory_files(path)?;
            if found.is_empty() {
                return Err(GateError::EmptyDirectory { path: path.clone() });
            }
            files.extend(found);
        } else {
            let format = FileFormat::from_path(path)
                .ok_or_else(|| GateError::UnknownFormat { path: path.clone() })?;
            files.push(InputFile {
                path: path.clone(),
                format,
                bytes: metadata.len(),
            });
        }
    }
    Ok(files)
}

fn directory_files(directory: &Path) -> Result<Vec<InputFile>, GateError> {
    let unreadable = |error| GateError::Unreadable {
        path: directory.to_path_buf(),
        error,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(directory).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with(['.', '_']);
        let Some(format) = FileFormat::from_path(&path).filter(|_| !hidden) else {
            continue;
        };
        // manifest.json describes a dataset; it is not part of one.
        if path.file_name().is_some_and(|name| name == "manifest.json") {
            continue;
        }
        let metadata = entry.metadata().map_err(unreadable)?;
        if metadata.is_file() {
            files.push(InputFile {
                path,
                format,
                bytes: metadata.len(),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Size and SHA-256 (hex) of a file, and the same taken in steps.
pub use optout_index::file_digest::{file_sha256 as digest_file, FileDigest};

/// A writer that hashes what passes through it, so an output's digest costs no second
/// read. Parquet and JSON Lines writers only append, never seek.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the bytes written and their SHA-256 (hex).
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some(chunk) = buf.get(..written) {
            self.hasher.update(chunk);
        }
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
