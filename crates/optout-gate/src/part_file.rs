//! A part's file on disk. The worker hands its bytes over in whole blocks to a thread of
//! the part's own, which writes them while the worker encodes on, and the file is synced
//! before it is reported written.
//!
//! Where the file system allows it (Linux, most local file systems), the file is opened
//! for direct I/O (`O_DIRECT`): blocks go from our memory to the disk without being copied
//! into the page cache. That copy, into page cache pages the kernel first has to find and
//! charge, took 4.6% of the gate's time at 10M members, more than writing the data
//! needs: the output is not read again by this process, so caching it buys nothing.
//! Direct I/O wants offsets, lengths and memory aligned to the device's blocks; blocks
//! here are [`DIRECT_BLOCK_BYTES`] long and start at [`ALIGNMENT`] in memory, and the tail
//! (the last bytes, fewer than [`ALIGNMENT`]) goes through the page cache. Where direct
//! I/O is refused, when the file is opened or at any write, the part is written through
//! the page cache from then on. Either way the file is synced every [`WRITEBACK_BYTES`]
//! so the closing sync only has the last stretch left.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// Alignment of memory, offsets and lengths for direct I/O: the page size, a multiple
/// of every common logical block size.
const ALIGNMENT: usize = 4096;
/// Bytes per block when the part is written directly: big enough that the disk's
/// latency is paid rarely, small enough that a part holds little.
const DIRECT_BLOCK_BYTES: usize = 1 << 20;
/// Bytes per block through the page cache: the kernel zeroes each page cache page a
/// write covers only in part before copying into it (1.7% of the gate's time at 10M
/// members when the Parquet writer's 8 KiB pieces went straight to `write`); whole
/// blocks at offsets that are multiples of this size cover their pages. Blocks of 1 MiB
/// made the kernel's copy three times slower.
const BUFFERED_BLOCK_BYTES: usize = 64 << 10;
/// Bytes written between two syncs by the writing thread, so the closing sync, which
/// the run waits for, only has the last stretch left. Direct writes need them too: they
/// bypass the page cache, not the disk's own cache, and the one sync of a whole 234 MB
/// part at the end took 191 ms (strace, 10M members) while both cores stood idle.
const WRITEBACK_BYTES: u64 = 32 << 20;
/// Blocks a part may hold at most: one being filled, the others queued or being written.
/// A worker hands over a whole row group at once (about 17 MiB of compressed pages at
/// 10M members), faster than the disk takes it; with a pool that holds the burst the
/// worker encodes on while the blocks drain. With 3 blocks the workers waited for the
/// disk 0.1-0.5 s each per 10M-member run (`perf sched timehist`, futex waits in
/// `hand_over`). Blocks are made only when none is free, so a fast disk keeps few.
const BLOCKS_MAX: usize = 32;

/// A block of bytes whose start is aligned to [`ALIGNMENT`] in memory.
struct Block {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
    len: usize,
}

impl Block {
    fn new(capacity: usize) -> Block {
        let storage = vec![0; capacity + ALIGNMENT];
        let start = storage.as_ptr().align_offset(ALIGNMENT).min(ALIGNMENT);
        Block {
            storage,
            start,
            capacity,
            len: 0,
        }
    }

    fn filled(&self) -> &[u8] {
        self.storage
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Appends what fits of `bytes`; returns how many were taken.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.capacity - self.len);
        let at = self.start + self.len;
        if let (Some(room), Some(bytes)) =
            (self.storage.get_mut(at..at + taken), bytes.get(..taken))
        {
            room.copy_from_slice(bytes);
            self.len += taken;
            taken
        } else {
            0
        }
    }
}

/// A part's file, written by its own thread. Dropping it without [`PartFile::finish`]
/// stops that thread after the blocks handed over so far.
pub struct PartFile {
    block: Block,
    /// Blocks made so far, the one being filled included.
    blocks_made: usize,
    full: Option<SyncSender<Block>>,
    empty: Receiver<Block>,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl PartFile {
    pub fn new(file: File) -> io::Result<PartFile> {
        let direct = direct_io::enable(&file);
        let capacity = if direct {
            DIRECT_BLOCK_BYTES
        } else {
            BUFFERED_BLOCK_BYTES
        };
        let (full, blocks) = sync_channel::<Block>(BLOCKS_MAX);
        let (give_back, empty) = sync_channel::<Block>(BLOCKS_MAX);
        let writer = std::thread::Builder::new()
            .name("part-writer".into())
            .spawn(move || write_blocks(file, direct, &blocks, &give_back))?;
        Ok(PartFile {
            block: Block::new(capacity),
            blocks_made: 1,
            full: Some(full),
            empty,
            writer: Some(writer),
        })
    }

    /// Hands the block being filled to the writing thread and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        let Some(full) = &self.full else {
            return Err(io::Error::other(
                "a part's file was written after it was closed",
            ));
        };
        let next = match self.empty.try_recv() {
            Ok(block) => block,
            Err(TryRecvError::Empty) if self.blocks_made < BLOCKS_MAX => {
                self.blocks_made += 1;
                Block::new(self.block.capacity)
            }
            Err(TryRecvError::Empty) => match self.empty.recv() {
                Ok(block) => block,
                Err(_) => return Err(self.stop_with_error()),
            },
            Err(TryRecvError::Disconnected) => return Err(self.stop_with_error()),
        };
        let block = std::mem::replace(&mut self.block, next);
        self.block.len = 0;
        if full.send(block).is_err() {
            return Err(self.stop_with_error());
        }
        Ok(())
    }

    /// Writes what is left, waits for the writing thread and syncs the file: once this
    /// returns, every byte is on disk.
    pub fn finish(mut self) -> io::Result<()> {
        if self.block.len > 0 {
            self.hand_over()?;
        }
        self.stop()
    }

    /// Closes the queue and reports what the writing thread met.
    fn stop(&mut self) -> io::Result<()> {
        drop(self.full.take());
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("a part's writing thread panicked")),
            None => Ok(()),
        }
    }

    /// The writing thread's error, once it has stopped on one.
    fn stop_with_error(&mut self) -> io::Error {
        match self.stop() {
            Err(error) => error,
            Ok(()) => io::Error::other("a part's writing thread stopped early"),
        }
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Write for PartFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let taken = self.block.push(buf);
        if self.block.is_full() {
            self.hand_over()?;
        }
        Ok(taken)
    }

    /// Hands over the bytes gathered so far. A block shorter than the others leaves
    /// the rest of the file unaligned, so from then on it is written through the page
    /// cache; nothing here flushes before the end of a part.
    fn flush(&mut self) -> io::Result<()> {
        if self.block.len > 0 {
            self.hand_over()?;
        }
        Ok(())
    }
}

/// The writing thread: writes each block in order, gives it back, and syncs the file
/// once the queue closes.
fn write_blocks(
    mut file: File,
    mut direct: bool,
    blocks: &Receiver<Block>,
    give_back: &SyncSender<Block>,
) -> io::Result<()> {
    let mut unsynced = 0u64;
    for block in blocks {
        write_out(&mut file, &mut direct, block.filled())?;
        unsynced += block.len as u64;
        if unsynced >= WRITEBACK_BYTES {
            unsynced = 0;
            file.sync_data()?;
        }
        // The worker may have stopped taking blocks (it failed); the file is still
        // synced below.
        let _ = give_back.send(block);
    }
    file.sync_all()
}

/// Writes `bytes` at the file's position: directly while the position and the lengths
/// allow it, through the page cache for a tail shorter than [`ALIGNMENT`] or once the
/// kernel refuses direct I/O (from then on).
fn write_out(file: &mut File, direct: &mut bool, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        if *direct && bytes.len() < ALIGNMENT {
            direct_io::disable(file)?;
            *direct = false;
        }
        let take = if *direct {
            bytes.len() - bytes.len() % ALIGNMENT
        } else {
            bytes.len()
        };
        match file.write(bytes.get(..take).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if *direct && direct_io::is_refusal(&error) => {
                direct_io::disable(file)?;
                *direct = false;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod direct_io {
    use std::fs::File;
    use std::io;

    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::io::Errno;

    /// Turns direct I/O on; false where the file system does not support it.
    pub fn enable(file: &File) -> bool {
        fcntl_getfl(file)
            .and_then(|flags| fcntl_setfl(file, flags | OFlags::DIRECT))
            .is_ok()
    }

    pub fn disable(file: &File) -> io::Result<()> {
        let flags = fcntl_getfl(file)?;
        fcntl_setfl(file, flags - OFlags::DIRECT)?;
        Ok(())
    }

    /// The kernel's answer to a direct write it cannot do (an alignment the device
    /// wants that is larger than ours, a position left unaligned by a short write).
    pub fn is_refusal(error: &io::Error) -> bool {
        Errno::from_io_error(error) == Some(Errno::INVAL)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod direct_io {
    use std::fs::File;
    use std::io;

    pub fn enable(_file: &File) -> bool {
        false
    }

    pub fn disable(_file: &File) -> io::Result<()> {
        Ok(())
    }

    pub fn is_refusal(_error: &io::Error) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Bytes whose value depends on where they are, so a block written twice, lost or
    /// out of order shows.
    fn pattern(size: usize, seed: usize) -> Vec<u8> {
        (0..size).map(|at| (at * 31 + seed) as u8).collect()
    }

    /// Writes pieces of the sizes `sizes` gives for the part's block size, flushing
    /// after the pieces numbered in `flush_after`, and checks that the file holds every
    /// piece, in order.
    fn write_and_check(
        sizes: impl Fn(usize) -> Vec<usize>,
        flush_after: &[usize],
    ) -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("part");
        let mut file = PartFile::new(File::create(&path)?)?;
        let mut expected = Vec::new();
        for (piece, size) in sizes(file.block.capacity).into_iter().enumerate() {
            let bytes = pattern(size, piece);
            file.write_all(&bytes)?;
            expected.extend_from_slice(&bytes);
            if flush_after.contains(&piece) {
                file.flush()?;
            }
        }
        // The pool grows only up to its bound, however far the disk lags.
        assert!((1..=BLOCKS_MAX).contains(&file.blocks_made));
        file.finish()?;
        assert_eq!(std::fs::read(&path)?, expected);
        Ok(())
    }

    #[test]
    fn a_part_file_holds_every_byte_written_in_pieces_of_any_size() -> io::Result<()> {
        // Pieces smaller than, equal to and larger than a block, several blocks' worth
        // (so the pool of blocks goes round), and an empty one.
        write_and_check(
            |block| {
                vec![
                    1,
                    8192,
                    block,
                    3 * block + 7,
                    0,
                    5,
                    2 * BLOCKS_MAX * block + 1,
                ]
            },
            &[],
        )
    }

    #[test]
    fn a_flush_in_the_middle_of_a_part_leaves_it_whole() -> io::Result<()> {
        // After the flush the file's position is unaligned: the rest goes through the
        // page cache.
        write_and_check(|block| vec![block + 100, 2 * block + ALIGNMENT + 3], &[0])
    }

    #[test]
    fn a_tail_shorter_than_the_alignment_is_written() -> io::Result<()> {
        for size in [0, 1, ALIGNMENT - 1, ALIGNMENT, ALIGNMENT + 1] {
            write_and_check(|_| vec![size], &[])?;
        }
        Ok(())
    }

    #[test]
    fn a_file_that_refuses_writes_fails_the_part() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("part");
        std::fs::write(&path, b"")?;
        // Opened for reading only: every write fails, and the failure reaches the worker.
        let mut file = PartFile::new(File::open(&path)?)?;
        let bytes = pattern(4 * DIRECT_BLOCK_BYTES, 0);
        let written = file.write_all(&bytes).and_then(|()| file.finish());
        assert!(written.is_err());
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn parts_on_a_local_disk_are_written_directly() -> io::Result<()> {
        // The test binary's own directory is on a real disk wherever the tests run
        // (unlike a temporary directory, which may be in memory).
        let binary = std::env::current_exe()?;
        let directory = tempfile::tempdir_in(binary.parent().unwrap_or(Path::new(".")))?;
        let file = PartFile::new(File::create(directory.path().join("part"))?)?;
        // Blocks of the direct size only when the file was opened for direct I/O.
        let direct = file.block.capacity == DIRECT_BLOCK_BYTES;
        file.finish()?;
        assert!(direct, "the file system refused O_DIRECT");
        Ok(())
    }
}
