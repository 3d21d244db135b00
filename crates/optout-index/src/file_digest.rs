//! Sizes and SHA-256 digests of files, as manifests and snapshot exports record them.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes read per step of a [`FileDigest`]: how long a stop request may wait.
const DIGEST_CHUNK_BYTES: usize = 1 << 20;

/// Size and SHA-256 (hex) of a file.
pub fn file_sha256(path: &Path) -> std::io::Result<(u64, String)> {
    // Never asked to stop, the digest reads to the end.
    FileDigest::open(path)?
        .advance(&|| false)?
        .ok_or_else(|| std::io::Error::other("the digest stopped before the end of the file"))
}

/// A file's size and SHA-256 taken in steps, so the digest can pause between two chunks
/// (the gate digests inputs beside the snapshot build and stops when the snapshot is
/// ready) and be resumed later from where it stopped, by another thread.
pub struct FileDigest {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl FileDigest {
    pub fn open(path: &Path) -> std::io::Result<FileDigest> {
        Ok(FileDigest {
            file: File::open(path)?,
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
            let read = self.file.read(&mut buffer)?;
            let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
                let hasher = std::mem::take(&mut self.hasher);
                return Ok(Some((self.bytes, hex::encode(hasher.finalize()))));
            };
            self.hasher.update(chunk);
            self.bytes += read as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::Cell;

    use super::*;

    /// A digest stopped between chunks and resumed (even right away, or with nothing
    /// read) ends with the same size and SHA-256 as the whole content hashed at once.
    #[test]
    fn a_digest_stopped_and_resumed_matches_the_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.bin");
        let content: Vec<u8> = (0..(DIGEST_CHUNK_BYTES * 3 + 12_345))
            .map(|index| (index % 251) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let expected = (content.len() as u64, hex::encode(Sha256::digest(&content)));
        assert_eq!(file_sha256(&path).unwrap(), expected);

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

    #[test]
    fn an_empty_file_has_the_empty_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            file_sha256(&path).unwrap(),
            (0, hex::encode(Sha256::digest(b"")))
        );
    }
}
