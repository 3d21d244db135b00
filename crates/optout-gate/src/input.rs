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

/// Size and SHA-256 (hex) of a file.
pub use optout_index::export::file_sha256 as digest_file;

/// Bytes read per step of a [`FileDigest`]: how long a stop request may wait.
const DIGEST_CHUNK_BYTES: usize = 1 << 20;

/// A file's size and SHA-256 taken in steps, so the digest can pause between two chunks
/// (the gate digests inputs beside the snapshot build and stops when the snapshot is
/// ready) and be resumed later from where it stopped, by another thread.
pub struct FileDigest {
    file: fs::File,
    hasher: Sha256,
    bytes: u64,
}

impl FileDigest {
    pub fn open(path: &Path) -> std::io::Result<FileDigest> {
        Ok(FileDigest {
            file: fs::File::open(path)?,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Reads on until the end of the file, or until `stop` says so between two chunks.
    /// Returns the size and SHA-256 (hex) once the whole file is read.
    pub fn advance(&mut self, stop: &dyn Fn() -> bool) -> std::io::Result<Option<(u64, String)>> {
        let mut buffer = vec![0u8; DIGEST_CHUNK_BYTES];
        loop {
            if stop() {
                return Ok(None);
            }
            let read = std::io::Read::read(&mut self.file, &mut buffer)?;
            let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
                let hasher = std::mem::take(&mut self.hasher);
                return Ok(Some((self.bytes, hex::encode(hasher.finalize()))));
            };
            self.hasher.update(chunk);
            self.bytes += read as u64;
        }
    }
}

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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A digest stopped between chunks and resumed (even right away, or with nothing
    /// read) ends with the same size and SHA-256 as one read straight through.
    #[test]
    fn a_digest_stopped_and_resumed_matches_one_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.bin");
        let content: Vec<u8> = (0..(DIGEST_CHUNK_BYTES * 3 + 12_345))
            .map(|index| (index % 251) as u8)
            .collect();
        fs::write(&path, &content).unwrap();
        let expected = digest_file(&path).unwrap();

        let mut digest = FileDigest::open(&path).unwrap();
        assert_eq!(
            digest.advance(&|| true).unwrap(),
            None,
            "stopped before reading"
        );
        let chunks_left = Cell::new(2u32);
        let stop_after_two = || {
            let left = chunks_left.get();
            chunks_left.set(left.saturating_sub(1));
            left == 0
        };
        assert_eq!(digest.advance(&stop_after_two).unwrap(), None);
        assert_eq!(digest.bytes, 2 * DIGEST_CHUNK_BYTES as u64);
        assert_eq!(digest.advance(&|| false).unwrap(), Some(expected));
    }
}
