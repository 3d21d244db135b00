//! Durable appends per second through `PostgresLedger::append`, beside `SqliteLedger::append`
//! on the same machine, both on a ledger that already holds at least a million events: the
//! cost of the random `(member, purpose)` index only shows once the index is much larger
//! than one commit. Mirrors crates/optout-sqlite/benches/durable_appends.rs (same events,
//! same benchmarks), with both backends in one binary so they get the same preload.
//!
//! - `<backend>::batched::events_N`: one caller, one `append` of N events per durable
//!   commit, N = 1, 100, 10 000; half live choices, half imported choices.
//! - `<backend>::batched_keyed::events_N`: live choices each with its own idempotency key.
//! - `<backend>::concurrent_64_threads::*`: 64 threads each appending one live choice per
//!   call; the group-commit writer turns them into few commits.
//!
//! Run one backend at a time and alternate (the machine is shared):
//!
//! ```text
//! cargo bench -p optout-postgres --bench durable_appends -- postgres
//! cargo bench -p optout-postgres --bench durable_appends -- sqlite
//! ```
//!
//! The ledgers persist between runs so the preload is paid once: PostgreSQL in schema
//! `optout_bench` of `$OPTOUT_BENCH_POSTGRES_URL` (else `$OPTOUT_TEST_POSTGRES_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`), SQLite in `optout-bench-preloaded/ledger.db`
//! under `$OPTOUT_BENCH_DIR` (else the temporary directory unless it is a tmpfs, else the
//! target directory). Each is first filled to `$OPTOUT_BENCH_PRELOAD_EVENTS` events
//! (default 1 000 000) in batches of 10 000. `OPTOUT_BENCH_FRESH=1` starts the ledgers of
//! the backends that run over.
//!
//! The items counter is events, so divan reports events/s; its `mean` column is total
//! events over total time. Lines on stderr: `optout-bench-ledger {json}` (backend, events
//! before the run, preload rate) and after each benchmark `optout-bench-writer {json}`
//! (commits and events it caused, so the mean group-commit batch is known).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use divan::counter::ItemsCount;
use divan::Bencher;
use optout_core::{Actor, SystemClock};
use optout_postgres::{PostgresConfig, PostgresLedger};
use optout_sqlite::SqliteLedger;
use optout_store::bench_workload::EventSource;
use optout_store::conformance::default_policy_event;
use optout_store::{Ledger, WriterMetrics};

fn main() {
    divan::main();
}

const PRELOAD_EVENTS_DEFAULT: u64 = 1_000_000;
const PRELOAD_BATCH_EVENTS: usize = 10_000;
const BENCH_SCHEMA: &str = "optout_bench";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A source whose sequence starts from the clock: a rerun on the persisted ledger never
/// repeats an idempotency key (a repeat would be a replay, not a write).
fn clock_seeded_source() -> EventSource {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    EventSource::starting_at(u64::try_from(nanos % (1 << 59)).unwrap())
}

fn import_actor() -> Actor {
    Actor::new("import:choices-2025-06.parquet").unwrap()
}

/// Where the SQLite file goes: a real disk, so every commit pays a real fsync.
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

fn fresh_requested() -> bool {
    std::env::var("OPTOUT_BENCH_FRESH").is_ok_and(|value| value == "1")
}

fn preload_events() -> u64 {
    std::env::var("OPTOUT_BENCH_PRELOAD_EVENTS")
        .ok()
        .map(|value| {
            value
                .parse()
                .expect("OPTOUT_BENCH_PRELOAD_EVENTS: a number")
        })
        .unwrap_or(PRELOAD_EVENTS_DEFAULT)
}

/// One backend's persisted, preloaded ledger, opened once per process.
struct BenchLedger {
    name: &'static str,
    /// Opening the existing ledger (the PostgreSQL writer loads its key filter then).
    open_seconds: f64,
    ledger: &'static dyn Ledger,
    metrics: &'static WriterMetrics,
}

fn postgres_bench_ledger() -> &'static BenchLedger {
    static LEDGER: OnceLock<BenchLedger> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let url = std::env::var("OPTOUT_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("OPTOUT_TEST_POSTGRES_URL"))
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        if fresh_requested() {
            let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE"))
                .unwrap();
        }
        let config = PostgresConfig::new(&url, BENCH_SCHEMA).unwrap();
        let opening = Instant::now();
        let ledger: &'static PostgresLedger = Box::leak(Box::new(
            PostgresLedger::open(&config, Arc::new(SystemClock))
                .unwrap_or_else(|error| panic!("open the PostgreSQL ledger: {error}")),
        ));
        let open_seconds = opening.elapsed().as_secs_f64();
        let metrics = ledger.writer_metrics().expect("opened as the writer");
        preloaded(BenchLedger {
            name: "postgres",
            open_seconds,
            ledger,
            metrics,
        })
    })
}

fn sqlite_bench_ledger() -> &'static BenchLedger {
    static LEDGER: OnceLock<BenchLedger> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let dir = bench_root().join("optout-bench-preloaded");
        if fresh_requested() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).unwrap();
        let opening = Instant::now();
        let ledger: &'static SqliteLedger = Box::leak(Box::new(
            SqliteLedger::open(&dir.join("ledger.db"), Arc::new(SystemClock))
                .unwrap_or_else(|error| panic!("open the SQLite ledger: {error}")),
        ));
        preloaded(BenchLedger {
            name: "sqlite",
            open_seconds: opening.elapsed().as_secs_f64(),
            ledger,
            metrics: ledger.writer_metrics(),
        })
    })
}

/// Fills the ledger to the preload size (the default policy first) and reports it.
fn preloaded(bench: BenchLedger) -> BenchLedger {
    let target = preload_events();
    let before = bench
        .ledger
        .head()
        .unwrap()
        .map_or(0, |head| head.position.get());
    if before == 0 {
        bench.ledger.append(vec![default_policy_event()]).unwrap();
    }
    let source = clock_seeded_source();
    let actor = import_actor();
    let started = Instant::now();
    let mut loaded = 0u64;
    let mut size = before.max(1);
    while size < target {
        let count = usize::try_from((target - size).min(PRELOAD_BATCH_EVENTS as u64)).unwrap();
        bench.ledger.append(source.mixed(count, &actor)).unwrap();
        loaded += count as u64;
        size += count as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = if loaded > 0 {
        loaded as f64 / seconds
    } else {
        0.0
    };
    eprintln!(
        "optout-bench-ledger {{\"backend\":\"{}\",\"open_seconds\":{:.3},\"events_before_run\":{size},\"preloaded_events\":{loaded},\"preload_events_per_second\":{rate:.0}}}",
        bench.name, bench.open_seconds
    );
    bench
}

/// Counts the writer's commits and events during one benchmark.
struct WriterDelta {
    bench: &'static BenchLedger,
    name: &'static str,
    commits: u64,
    events: u64,
    requests: u64,
}

impl WriterDelta {
    fn start(bench: &'static BenchLedger, name: &'static str) -> Self {
        WriterDelta {
            bench,
            name,
            commits: bench.metrics.commits.load(Ordering::Relaxed),
            events: bench.metrics.events_committed.load(Ordering::Relaxed),
            requests: bench.metrics.requests.load(Ordering::Relaxed),
        }
    }
}

impl Drop for WriterDelta {
    fn drop(&mut self) {
        let metrics = self.bench.metrics;
        let commits = metrics.commits.load(Ordering::Relaxed) - self.commits;
        let events = metrics.events_committed.load(Ordering::Relaxed) - self.events;
        let requests = metrics.requests.load(Ordering::Relaxed) - self.requests;
        let head = self
            .bench
            .ledger
            .head()
            .unwrap()
            .map_or(0, |head| head.position.get());
        eprintln!(
            "optout-bench-writer {{\"backend\":\"{}\",\"bench\":\"{}\",\"commits\":{commits},\"events\":{events},\"requests\":{requests},\"ledger_events_after\":{head}}}",
            self.bench.name, self.name
        );
    }
}

fn bench_batches(
    bencher: Bencher<'_, '_>,
    bench: &'static BenchLedger,
    name: &'static str,
    events_per_commit: usize,
    keyed: bool,
) {
    let _delta = WriterDelta::start(bench, name);
    let source = clock_seeded_source();
    let actor = import_actor();
    bencher
        .counter(ItemsCount::new(events_per_commit))
        .with_inputs(|| {
            if keyed {
                source.keyed(events_per_commit)
            } else {
                source.mixed(events_per_commit, &actor)
            }
        })
        .bench_local_values(|events| {
            let appended = bench.ledger.append(events).unwrap();
            assert!(appended.iter().all(|appended| !appended.replayed));
        });
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
    fn new(ledger: &'static dyn Ledger, source: &Arc<EventSource>, keyed: bool) -> Self {
        let start = Arc::new(Barrier::new(CROWD_THREADS + 1));
        let done = Arc::new(Barrier::new(CROWD_THREADS + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..CROWD_THREADS)
            .map(|_| {
                let (start, done, stop) = (start.clone(), done.clone(), stop.clone());
                let source = source.clone();
                std::thread::spawn(move || loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    for _ in 0..CROWD_CALLS_PER_THREAD {
                        let appended = ledger.append(vec![source.live(keyed)]).unwrap();
                        assert_eq!(appended.len(), 1);
                        assert!(!appended[0].replayed);
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

fn bench_crowd(
    bencher: Bencher<'_, '_>,
    bench: &'static BenchLedger,
    name: &'static str,
    keyed: bool,
) {
    let _delta = WriterDelta::start(bench, name);
    let crowd = Crowd::new(bench.ledger, &Arc::new(clock_seeded_source()), keyed);
    bencher
        .counter(ItemsCount::new(CROWD_THREADS * CROWD_CALLS_PER_THREAD))
        .bench_local(|| crowd.round());
    drop(crowd);
}

/// The same benchmarks for each backend; `$ledger` is the function opening its ledger.
macro_rules! backend_benches {
    ($backend:ident, $ledger:ident) => {
        mod $backend {
            use super::*;

            /// One caller, one durable commit per `append` call of N events.
            mod batched {
                use super::*;

                #[divan::bench(sample_count = 200, sample_size = 10)]
                fn events_1(bencher: Bencher<'_, '_>) {
                    bench_batches(bencher, $ledger(), "batched::events_1", 1, false);
                }

                #[divan::bench(sample_count = 100, sample_size = 5)]
                fn events_100(bencher: Bencher<'_, '_>) {
                    bench_batches(bencher, $ledger(), "batched::events_100", 100, false);
                }

                #[divan::bench(sample_count = 60, sample_size = 1)]
                fn events_10000(bencher: Bencher<'_, '_>) {
                    bench_batches(bencher, $ledger(), "batched::events_10000", 10_000, false);
                }
            }

            /// As `batched`, with live choices that each carry an idempotency key.
            mod batched_keyed {
                use super::*;

                #[divan::bench(sample_count = 100, sample_size = 10)]
                fn events_1(bencher: Bencher<'_, '_>) {
                    bench_batches(bencher, $ledger(), "batched_keyed::events_1", 1, true);
                }

                #[divan::bench(sample_count = 100, sample_size = 5)]
                fn events_100(bencher: Bencher<'_, '_>) {
                    bench_batches(bencher, $ledger(), "batched_keyed::events_100", 100, true);
                }

                #[divan::bench(sample_count = 60, sample_size = 1)]
                fn events_10000(bencher: Bencher<'_, '_>) {
                    bench_batches(
                        bencher,
                        $ledger(),
                        "batched_keyed::events_10000",
                        10_000,
                        true,
                    );
                }
            }

            /// 64 threads, each appending one live choice per call: the group commit.
            mod concurrent_64_threads {
                use super::*;

                #[divan::bench(sample_count = 40, sample_size = 1)]
                fn single_choice(bencher: Bencher<'_, '_>) {
                    bench_crowd(
                        bencher,
                        $ledger(),
                        "concurrent_64_threads::single_choice",
                        false,
                    );
                }

                #[divan::bench(sample_count = 40, sample_size = 1)]
                fn single_keyed_choice(bencher: Bencher<'_, '_>) {
                    bench_crowd(
                        bencher,
                        $ledger(),
                        "concurrent_64_threads::single_keyed_choice",
                        true,
                    );
                }
            }
        }
    };
}

backend_benches!(postgres_ledger, postgres_bench_ledger);
backend_benches!(sqlite_ledger, sqlite_bench_ledger);
