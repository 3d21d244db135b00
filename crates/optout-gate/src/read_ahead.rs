//! Advice to the kernel to read parts of the inputs into the page cache in the
//! background. The gate reads every input twice, once whole for its digest and once for
//! the needed columns, and a host may page out file pages in between or even before the
//! first read (this one's DAMON pages out up to 128 MB a second of pages it saw idle,
//! and after the benchmark's other engines ran, a 10M-member gate read 6-31 MB of its
//! inputs back from the disk, its threads waiting up to 280 ms in all for them). Asked
//! ahead, those reads overlap the work. Advice only: a failure changes nothing and is
//! ignored.

use std::fs::File;
use std::path::Path;

use std::num::NonZeroU64;

/// Asks for `length` bytes of `file` from `start` (nothing when `length` is 0).
pub fn will_need(file: &File, start: u64, length: u64) {
    if let Some(length) = NonZeroU64::new(length) {
        platform::will_need(file, start, Some(length));
    }
}

/// Asks for all of the file at `path`.
pub fn will_need_whole(path: &Path) {
    if let Ok(file) = File::open(path) {
        // No length: up to the end of the file.
        platform::will_need(&file, 0, None);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod platform {
    use std::fs::File;
    use std::num::NonZeroU64;

    use rustix::fs::{fadvise, Advice};

    pub fn will_need(file: &File, start: u64, length: Option<NonZeroU64>) {
        let _ = fadvise(file, start, length, Advice::WillNeed);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod platform {
    use std::fs::File;
    use std::num::NonZeroU64;

    pub fn will_need(_file: &File, _start: u64, _length: Option<NonZeroU64>) {}
}
