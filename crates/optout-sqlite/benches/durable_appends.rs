//! Durable appends per second through `SqliteLedger::append` (the group-commit writer on a
//! WAL database with `synchronous=FULL`), to set beside the raw SQLite insert rates that
//! `shared/bench/durable.py` measures on the same disk (`bench/durable.sh` runs both and
//! prints the ratios).
//!
//! - `batched::events_N`: one caller, one `append` of N events per durable commit, for
//!   N = 1, 100, 10 000; half live choices (web/mobile/gpc, policy version, notice,
//!   jurisdiction), half imported choices (original time, import actor).
//! - `batched_keyed::events_N`: the same with live choices only, each with its own
//!   idempotency key (what the HTTP API sends), so each event also costs the key lookup and
//!   the unique index on (member, idempotency_key).
//! - `concurrent_64_threads::*`: 64 threads each appending one live choice per call, the
//!   deadline rush the service has to absorb; the writer groups them into few commits.
//!
//! The items counter is events, so divan reports events/s; its `mean` column is total
//! events over total time, the figure durable.py reports. Each benchmark starts from a
//! fresh database file (holding the default policy), in `$OPTOUT_BENCH_DIR` if set, else
//! in the system temporary directory unless that is a tmpfs (fsync would cost nothing
//! there), in which case under the target directory. After each benchmark one line
//! `optout-bench-writer {json}` on stderr gives the writer's commits and events, so the
//! mean group-commit batch is known (and `optout-bench-sqlite {json}` the SQLite version).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use divan::counter::ItemsCount;
use divan::Bencher;
use optout_core::{Actor, SystemClock};
use optout_sqlite::SqliteLedger;
use optout_store::bench_workload::EventSource;
use optout_store::conformance::default_policy_event;
use optout_store::Ledger;

fn main() {
    // The bundled SQLite's version, for the report beside Python's sqlite3.
    eprintln!(
        "optout-bench-sqlite {{\"version\":\"{}\"}}",
        rusqlite::version()
    );
    divan::main();
}

/// Where the database files go: a real disk, so every commit pays a real fsync.
fn bench_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPTOUT_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let temp = std::env::temp_dir();
    if is_tmpfs(&temp) {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    } else {
        temp
    }
}

/// Whether the longest mount point containing `path` is a tmpfs (Linux; false elsewhere).
fn is_tmpfs(path: &Path) -> bool {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), fs_type == "tmpfs"))
        })
        .max_by_key(|(length, _)| *length)
        .is_some_and(|(_, tmpfs)| tmpfs)
}

/// A fresh ledger holding only the default policy; the directory goes when this drops.
struct FreshLedger {
    name: &'static str,
    ledger: Arc<SqliteLedger>,
    _dir: tempfile::TempDir,
}

impl FreshLedger {
    fn open(name: &'static str) -> Self {
        let root = bench_root();
        std::fs::create_dir_all(&root).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("optout-bench-")
            .tempdir_in(&root)
            .unwrap();
        let ledger = SqliteLedger::open(&dir.path().join("ledger.db"), Arc::new(SystemClock))
            .expect("open the ledger");
        ledger.append(vec![default_policy_event()]).unwrap();
        FreshLedger {
            name,
            ledger: Arc::new(ledger),
            _dir: dir,
        }
    }
}

impl Drop for FreshLedger {
    fn drop(&mut self) {
        let metrics = self.ledger.writer_metrics();
        // The policy event's commit is left out.
        let commits = metrics.commits.load(Ordering::Relaxed).saturating_sub(1);
        let events = metrics
            .events_committed
            .load(Ordering::Relaxed)
            .saturating_sub(1);
        let requests = metrics.requests.load(Ordering::Relaxed).saturating_sub(1);
        let largest = metrics.largest_batch_events.load(Ordering::Relaxed);
        eprintln!(
            "optout-bench-writer {{\"bench\":\"{}\",\"commits\":{commits},\"events\":{events},\"requests\":{requests},\"largest_batch_events\":{largest}}}",
            self.name
        );
        self.ledger.close();
    }
}

fn bench_batches(
    bencher: Bencher<'_, '_>,
    name: &'static str,
    events_per_commit: usize,
    keyed: bool,
) {
    let fresh = FreshLedger::open(name);
    let source = EventSource::default();
    let actor = Actor::new("import:choices-2025-06.parquet").unwrap();
    bencher
        .counter(ItemsCount::new(events_per_commit))
        .with_inputs(|| {
            if keyed {
                source.keyed(events_per_commit)
            } else {
                source.mixed(events_per_commit, &actor)
            }
        })
        .bench_local_values(|events| fresh.ledger.append(events).unwrap());
}

/// One caller, one durable commit per `append` call of N events.
mod batched {
    use super::*;

    #[divan::bench(sample_count = 200, sample_size = 10)]
    fn events_1(bencher: Bencher<'_, '_>) {
        bench_batches(bencher, "batched::events_1", 1, false);
    }

    #[divan::bench(sample_count = 100, sample_size = 5)]
    fn events_100(bencher: Bencher<'_, '_>) {
        bench_batches(bencher, "batched::events_100", 100, false);
    }

    #[divan::bench(sample_count = 60, sample_size = 1)]
    fn events_10000(bencher: Bencher<'_, '_>) {
        bench_batches(bencher, "batched::events_10000", 10_000, false);
    }
}

/// As `batched`, with live choices that each carry an idempotency key.
mod batched_keyed {
    use super::*;

    #[divan::bench(sample_count = 100, sample_size = 10)]
    fn events_1(bencher: Bencher<'_, '_>) {
        bench_batches(bencher, "batched_keyed::events_1", 1, true);
    }

    #[divan::bench(sample_count = 100, sample_size = 5)]
    fn events_100(bencher: Bencher<'_, '_>) {
        bench_batches(bencher, "batched_keyed::events_100", 100, true);
    }

    #[divan::bench(sample_count = 60, sample_size = 1)]
    fn events_10000(bencher: Bencher<'_, '_>) {
        bench_batches(bencher, "batched_keyed::events_10000", 10_000, true);
    }
}

const CROWD_THREADS: usize = 64;
/// `append` calls each thread makes per sample.
const CROWD_CALLS_PER_THREAD: usize = 8;

/// Threads that, on each round, all append single choices at once. Kept alive across
/// samples so thread start-up is not timed.
struct Crowd {
    start: Arc<Barrier>,
    done: Arc<Barrier>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Crowd {
    fn new(ledger: &Arc<SqliteLedger>, source: &Arc<EventSource>, keyed: bool) -> Self {
        let start = Arc::new(Barrier::new(CROWD_THREADS + 1));
        let done = Arc::new(Barrier::new(CROWD_THREADS + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..CROWD_THREADS)
            .map(|_| {
                let (start, done, stop) = (start.clone(), done.clone(), stop.clone());
                let (ledger, source) = (ledger.clone(), source.clone());
                std::thread::spawn(move || loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    for _ in 0..CROWD_CALLS_PER_THREAD {
                        let appended = ledger.append(vec![source.live(keyed)]).unwrap();
                        assert_eq!(appended.len(), 1);
                    }
                    done.wait();
                })
            })
            .collect();
        Crowd {
            start,
            done,
            stop,
            threads,
        }
    }

    /// Every thread makes its calls; returns when all have been acknowledged.
    fn round(&self) {
        self.start.wait();
        self.done.wait();
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.start.wait();
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
    }
}

fn bench_crowd(bencher: Bencher<'_, '_>, name: &'static str, keyed: bool) {
    let fresh = FreshLedger::open(name);
    let crowd = Crowd::new(&fresh.ledger, &Arc::new(EventSource::default()), keyed);
    bencher
        .counter(ItemsCount::new(CROWD_THREADS * CROWD_CALLS_PER_THREAD))
        .bench_local(|| crowd.round());
    drop(crowd);
}

/// 64 threads, each appending one live choice per call: the writer's group commit.
mod concurrent_64_threads {
    use super::*;

    #[divan::bench(sample_count = 40, sample_size = 1)]
    fn single_choice(bencher: Bencher<'_, '_>) {
        bench_crowd(bencher, "concurrent_64_threads::single_choice", false);
    }

    #[divan::bench(sample_count = 40, sample_size = 1)]
    fn single_keyed_choice(bencher: Bencher<'_, '_>) {
        bench_crowd(bencher, "concurrent_64_threads::single_keyed_choice", true);
    }
}
