//! Reading the database file ahead of a query that walks most of an index.
//!
//! Such a query asks for the index's pages in key order, which is not file order: an
//! index built while events were appended has its pages spread among the table's. From a
//! cold page cache each page is then one small read waiting on the disk: at 10M members
//! the snapshot's walk made 16,000 of them and took 1.5 s instead of 0.4 s. A thread
//! bringing the file into the page cache front to back meanwhile (large reads, which the
//! kernel reads further ahead of) gets the pages in at the disk's sequential speed, and
//! stops when the query ends.
//!
//! Where the kernel takes the advice (`posix_fadvise(WILLNEED)`, Linux and FreeBSD) the
//! thread asks it to read each step of the file into the cache, which costs next to
//! nothing when the pages are there already; reading the file into a buffer instead
//! copied every byte it reached, 0.3 s of a core at 10M members with a warm cache, taken
//! from the gate's input digest running beside the snapshot. Elsewhere the thread reads.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes per step of the read-ahead thread: how far it gets ahead of a stop.
const STEP_BYTES: usize = 1 << 20;

/// Runs `work` while another thread brings the file at `path` into the page cache from
/// start to end (or until `work` returns). This is only a hint: if the file cannot be
/// read, `work` runs all the same.
pub(crate) fn while_reading_ahead<T>(path: &Path, work: impl FnOnce() -> T) -> T {
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("ledger-read-ahead".into())
            .spawn_scoped(scope, || read_through(path, &finished));
        let result = work();
        finished.store(true, Ordering::Relaxed);
        if let Ok(reader) = reader {
            let _ = reader.join();
        }
        result
    })
}

fn read_through(path: &Path, finished: &AtomicBool) {
    let Ok(mut file) = File::open(path) else {
        return;
    };
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    if advise_through(&file, finished) {
        return;
    }
    let mut buffer = vec![0u8; STEP_BYTES];
    while !finished.load(Ordering::Relaxed) {
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Asks the kernel to read the file into the page cache, one step at a time, until the
/// end or `finished`. False when the kernel refused the first advice (then nothing was
/// asked and the caller reads instead).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn advise_through(file: &File, finished: &AtomicBool) -> bool {
    use rustix::fs::{fadvise, Advice};
    let Ok(length) = file.metadata().map(|metadata| metadata.len()) else {
        return false;
    };
    let step = std::num::NonZeroU64::new(STEP_BYTES as u64);
    let mut offset = 0u64;
    while offset < length && !finished.load(Ordering::Relaxed) {
        if fadvise(file, offset, step, Advice::WillNeed).is_err() {
            return offset > 0;
        }
        // The advice returns once the reads are queued; waiting on the first page of
        // the step keeps the thread from queuing the whole file at once, which would
        // hold up the query's own reads behind it.
        let _ = std::os::unix::fs::FileExt::read_at(file, &mut [0u8; 1], offset);
        offset += STEP_BYTES as u64;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_whether_or_not_the_file_can_be_read() {
        let directory = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = directory.path().join("ledger");
        std::fs::write(&path, vec![7u8; 3 * STEP_BYTES + 5]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(while_reading_ahead(&path, || 41 + 1), 42);
        assert_eq!(
            while_reading_ahead(&directory.path().join("missing"), || "ran"),
            "ran"
        );
    }

    // The kernel takes the advice for a regular file (tempdir is on a real filesystem),
    // so the reading thread does not fall back to copying the file.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[test]
    fn the_kernel_takes_the_advice_for_a_regular_file() {
        let directory = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = directory.path().join("ledger");
        std::fs::write(&path, vec![7u8; 2 * STEP_BYTES + 5]).unwrap_or_else(|e| panic!("{e}"));
        let file = File::open(&path).unwrap_or_else(|error| panic!("{error}"));
        assert!(advise_through(&file, &AtomicBool::new(false)));
    }
}
