//! Time to build the consent index from a ledger, and to take a snapshot at an old cutoff
//! with and without a stored index checkpoint.
//!
//! SQLite ledgers (`sqlite::*`): `OPTOUT_BENCH_EVENTS` = comma-separated event counts
//! (default `1M`; the figure is `10M`). Each ledger holds the default policy and
//! that many `ai_training` choices over an id space of 10 × events members (a 10M-event
//! ledger: 100M ids, about 9.5M distinct members), countries 25% opt-in / 75% opt-out,
//! times rising along the ledger from 2023-10-16 to 2025-06-30 with 10% imports backdated
//! by up to a year. It is generated once through `SqliteLedger::append` (100 000 events per
//! append) into `$OPTOUT_BENCH_DATA` (default `target/bench-data/`) as
//! `ledger-v1-<events>.sqlite` and reused while that file exists (10M events: 1.9 GB,
//! about 7 minutes to generate; delete the file to regenerate).
//!
//! - `sqlite::scan_choices`: the lean scan alone (what every build reads).
//! - `sqlite::consent_index_build`: `ConsentIndex::build(&ledger)`.
//! - `sqlite::snapshot`: `Snapshot::build_with` at the old cutoff 2024-01-01 (about 12% of
//!   the events are at or before it) and at 2024-01-31, without a checkpoint (full scan)
//!   and with the checkpoint this benchmark stores at (2024-01-01, head) before timing:
//!   at the same cutoff it is loaded and nothing newer is read; 30 days later the events
//!   of those 30 days are read through the choices-by-time index.
//!
//! In memory (`in_memory::*`, no store): the same builds over a ledger that produces its
//! choices on the fly, `OPTOUT_BENCH_MEMORY_EVENTS` (default `1M`; `1M,10M,100M` is the
//! growth series; 100M needs about 5 GiB).
//!
//! The items counter is ledger events, so `items/s` is events per second. When a size is
//! first set up, `optout-bench-build {json}` lines on stderr give explicit members, bitmap
//! bytes, resident-set growth and peak, and the checkpoint's size and time to take.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use common::{
    generated_choice, purpose, rss_bytes, short_count, sizes_from_env, Fixtures, SyntheticChoices,
    SyntheticLedger, OLD_CUTOFF_US,
};
use divan::counter::ItemsCount;
use divan::Bencher;
use optout_core::{Source, SystemClock, Timestamp};
use optout_index::snapshot::{CheckpointUse, SnapshotSource};
use optout_index::{ConsentIndex, Snapshot};
use optout_sqlite::SqliteLedger;
use optout_store::conformance::{choice, default_policy_event};
use optout_store::{Ledger, NewEvent};

/// Events per `append` while generating a ledger.
const APPEND_EVENTS: u64 = 100_000;
/// Bump when the generated events change, so old files are not reused.
const WORKLOAD_VERSION: u32 = 1;
/// The default policy's notice for `ai_training`.
const NOTICE_VERSION: &str = "ai_training-2023-10-16";
const DAY_US: i64 = 86_400_000_000;

fn main() {
    divan::main();
}

fn event_sizes() -> Vec<u64> {
    sizes_from_env("OPTOUT_BENCH_EVENTS", &[1_000_000])
}

fn memory_sizes() -> Vec<u64> {
    sizes_from_env("OPTOUT_BENCH_MEMORY_EVENTS", &[1_000_000])
}

fn old_cutoff() -> Timestamp {
    Timestamp::from_micros(OLD_CUTOFF_US)
}

/// Peak resident set (VmHWM) in bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resets VmHWM to the current resident set (Linux: "5" to clear_refs), so the next peak
/// reading is the peak of what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn data_dir() -> PathBuf {
    match std::env::var_os("OPTOUT_BENCH_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("bench-data"),
    }
}

/// The generated choice events `from..to` (0-based) of a ledger of `events`.
fn new_events(from: u64, to: u64, events: u64) -> Vec<NewEvent> {
    (from..to)
        .map(|index| {
            let generated = generated_choice(index, events);
            let mut event = choice(generated.member, generated.allowed, Some(generated.at));
            if let NewEvent::Choice { choice, .. } = &mut event {
                choice.source = if generated.imported {
                    Source::Import
                } else {
                    Source::Web
                };
                choice.jurisdiction = Some(generated.jurisdiction);
                choice.notice_version = Some(NOTICE_VERSION.into());
            }
            event
        })
        .collect()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes a ledger of `events` choices to `path` through `SqliteLedger::append`, under a
/// temporary name first, so an interrupted run leaves no file that looks complete.
fn generate(path: &Path, events: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let partial = with_suffix(path, ".partial");
    for file in [
        partial.clone(),
        with_suffix(&partial, "-wal"),
        with_suffix(&partial, "-shm"),
    ] {
        let _ = std::fs::remove_file(file);
    }
    eprintln!(
        "optout-bench-build generating {} ({events} events)",
        path.display()
    );
    let started = Instant::now();
    {
        let ledger = SqliteLedger::open(&partial, Arc::new(SystemClock)).unwrap();
        ledger.append(vec![default_policy_event()]).unwrap();
        let mut from = 0;
        while from < events {
            let to = (from + APPEND_EVENTS).min(events);
            ledger.append(new_events(from, to, events)).unwrap();
            from = to;
            if from.is_multiple_of(1_000_000) || from == events {
                eprintln!(
                    "optout-bench-build generated {from} events in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        ledger.close();
    }
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(&partial, suffix);
        if from.exists() {
            std::fs::rename(&from, with_suffix(path, suffix)).unwrap();
        }
    }
    let bytes = std::fs::metadata(path).map_or(0, |meta| meta.len());
    eprintln!(
        "optout-bench-build {{\"what\":\"generate\",\"events\":{events},\"seconds\":{:.1},\"file_bytes\":{bytes}}}",
        started.elapsed().as_secs_f64()
    );
}

struct LedgerFixture {
    ledger: SqliteLedger,
    /// Whether the checkpoint at (old cutoff, head) is stored.
    checkpointed: std::sync::OnceLock<()>,
}

static LEDGERS: Fixtures<LedgerFixture> = Fixtures::new();

fn sqlite_ledger(events: u64) -> &'static LedgerFixture {
    LEDGERS.get(events, || {
        let path = data_dir().join(format!(
            "ledger-v{WORKLOAD_VERSION}-{}.sqlite",
            short_count(events)
        ));
        if !path.exists() {
            generate(&path, events);
        }
        let ledger = SqliteLedger::open(&path, Arc::new(SystemClock)).unwrap();
        let head = ledger.head().unwrap().unwrap().position.get();
        assert_eq!(
            head,
            events + 1,
            "{} is not a complete ledger",
            path.display()
        );
        LedgerFixture {
            ledger,
            checkpointed: std::sync::OnceLock::new(),
        }
    })
}

/// Stores the checkpoint at (old cutoff, head), once per process.
fn ensure_checkpoint(fixture: &LedgerFixture, events: u64) {
    fixture.checkpointed.get_or_init(|| {
        let started = Instant::now();
        let snapshot = Snapshot::build_with(
            &fixture.ledger,
            &purpose(),
            old_cutoff(),
            None,
            CheckpointUse::Never,
        )
        .unwrap();
        let scanned = started.elapsed().as_secs_f64();
        let saving = Instant::now();
        snapshot
            .save_checkpoint(&fixture.ledger, Timestamp::from_micros(OLD_CUTOFF_US))
            .unwrap();
        // The store's query for what the checkpoint does not reflect, alone: at the same
        // cutoff and position it returns nothing, so its time is pure overhead.
        let head = fixture.ledger.head().unwrap().unwrap().position;
        let querying = Instant::now();
        let mut unreflected = 0u64;
        fixture
            .ledger
            .scan_choices_since(
                &purpose(),
                old_cutoff(),
                head,
                old_cutoff(),
                head,
                &mut |_| unreflected += 1,
            )
            .unwrap();
        eprintln!(
            "optout-bench-build {{\"what\":\"scan_choices_since(same cutoff, same position)\",\"events\":{events},\"returned\":{unreflected},\"seconds\":{:.3}}}",
            querying.elapsed().as_secs_f64()
        );
        eprintln!(
            "optout-bench-build {{\"what\":\"save_checkpoint\",\"events\":{events},\"cutoff\":\"{}\",\"explicit_members\":{},\"checkpoint_bytes\":{},\"snapshot_seconds\":{scanned:.2},\"save_seconds\":{:.3}}}",
            old_cutoff(),
            snapshot.explicit.len(),
            snapshot.explicit.serialized_bytes(),
            saving.elapsed().as_secs_f64()
        );
    });
}

/// How a snapshot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// Full scan at the old cutoff.
    FullScan,
    /// Full scan at the old cutoff + 30 days.
    FullScan30DaysLater,
    /// From the checkpoint at the old cutoff, at that cutoff.
    Checkpoint,
    /// From the checkpoint at the old cutoff, 30 days later.
    Checkpoint30DaysLater,
}

impl Way {
    fn cutoff(self) -> Timestamp {
        match self {
            Way::FullScan | Way::Checkpoint => old_cutoff(),
            Way::FullScan30DaysLater | Way::Checkpoint30DaysLater => {
                Timestamp::from_micros(OLD_CUTOFF_US + 30 * DAY_US)
            }
        }
    }

    fn uses(self) -> CheckpointUse {
        match self {
            Way::FullScan | Way::FullScan30DaysLater => CheckpointUse::Never,
            Way::Checkpoint | Way::Checkpoint30DaysLater => CheckpointUse::IfStored,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct SnapshotCase {
    events: u64,
    way: Way,
}

impl fmt::Display for SnapshotCase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let way = match self.way {
            Way::FullScan => "no_checkpoint/2024-01-01",
            Way::FullScan30DaysLater => "no_checkpoint/2024-01-31",
            Way::Checkpoint => "checkpoint_2024-01-01/2024-01-01",
            Way::Checkpoint30DaysLater => "checkpoint_2024-01-01/2024-01-31",
        };
        write!(formatter, "{}/{way}", short_count(self.events))
    }
}

fn snapshot_cases() -> Vec<SnapshotCase> {
    let mut cases = Vec::new();
    for events in event_sizes() {
        for way in [
            Way::FullScan,
            Way::Checkpoint,
            Way::FullScan30DaysLater,
            Way::Checkpoint30DaysLater,
        ] {
            cases.push(SnapshotCase { events, way });
        }
    }
    cases
}

/// Prints what an index build holds and costs in memory; the index is kept until then.
fn report_index(what: &str, events: u64, index: &ConsentIndex, rss_before: u64, seconds: f64) {
    eprintln!(
        "optout-bench-build {{\"what\":\"{what}\",\"events\":{events},\"explicit_members\":{},\"bitmap_bytes\":{},\"bitmap_bytes_per_member\":{:.3},\"rss_delta_bytes\":{},\"peak_rss_delta_bytes\":{},\"seconds\":{seconds:.2}}}",
        index.explicit_members(),
        index.bitmap_bytes(),
        index.bitmap_bytes() as f64 / index.explicit_members().max(1) as f64,
        rss_bytes().saturating_sub(rss_before),
        peak_rss_bytes().saturating_sub(rss_before),
    );
}

mod sqlite {
    use super::*;

    /// The lean choice scan alone.
    #[divan::bench(args = event_sizes(), sample_count = 5, sample_size = 1)]
    fn scan_choices(bencher: Bencher, events: u64) {
        let fixture = sqlite_ledger(events);
        let head = fixture.ledger.head().unwrap().unwrap().position;
        bencher.counter(ItemsCount::new(events)).bench_local(|| {
            let mut seen = 0u64;
            fixture
                .ledger
                .scan_choices(head, &mut |facts| {
                    seen += u64::from(facts.allowed) + 1;
                })
                .unwrap();
            seen
        });
    }

    /// `ConsentIndex::build` over the whole ledger.
    #[divan::bench(args = event_sizes(), sample_count = 5, sample_size = 1)]
    fn consent_index_build(bencher: Bencher, events: u64) {
        let fixture = sqlite_ledger(events);
        reset_peak_rss();
        let rss_before = rss_bytes();
        let started = Instant::now();
        let index = ConsentIndex::build(&fixture.ledger).unwrap();
        report_index(
            "ConsentIndex::build(sqlite)",
            events,
            &index,
            rss_before,
            started.elapsed().as_secs_f64(),
        );
        drop(index);
        bencher
            .counter(ItemsCount::new(events))
            .bench_local(|| ConsentIndex::build(&fixture.ledger).unwrap());
    }

    /// `Snapshot::build_with` at an old cutoff, with or without the stored checkpoint.
    #[divan::bench(args = snapshot_cases(), sample_count = 5, sample_size = 1)]
    fn snapshot(bencher: Bencher, case: SnapshotCase) {
        let fixture = sqlite_ledger(case.events);
        ensure_checkpoint(fixture, case.events);
        let purpose = purpose();
        let take = || {
            Snapshot::build_with(
                &fixture.ledger,
                &purpose,
                case.way.cutoff(),
                None,
                case.way.uses(),
            )
            .unwrap()
        };
        // The checkpoint is used where meant to be, and gives the full scan's answer.
        let taken = take();
        let full = Snapshot::build_with(
            &fixture.ledger,
            &purpose,
            case.way.cutoff(),
            None,
            CheckpointUse::Never,
        )
        .unwrap();
        assert_eq!(taken.explicit, full.explicit);
        let used_checkpoint = matches!(taken.source, SnapshotSource::Checkpoint { .. });
        assert_eq!(used_checkpoint, case.way.uses() == CheckpointUse::IfStored);
        eprintln!(
            "optout-bench-build {{\"what\":\"snapshot\",\"case\":\"{case}\",\"explicit_members\":{},\"source\":\"{:?}\"}}",
            taken.explicit.len(),
            taken.source
        );
        drop((taken, full));
        bencher
            .counter(ItemsCount::new(case.events))
            .bench_local(take);
    }
}

mod in_memory {
    use super::*;

    /// `ConsentIndex::build` over a ledger that makes its events on the fly (no store).
    #[divan::bench(args = memory_sizes(), sample_count = 3, sample_size = 1)]
    fn consent_index_build(bencher: Bencher, events: u64) {
        let ledger = SyntheticLedger::new(SyntheticChoices::Generated { events });
        reset_peak_rss();
        let rss_before = rss_bytes();
        let started = Instant::now();
        let index = ConsentIndex::build(&ledger).unwrap();
        report_index(
            "ConsentIndex::build(in_memory)",
            events,
            &index,
            rss_before,
            started.elapsed().as_secs_f64(),
        );
        drop(index);
        bencher
            .counter(ItemsCount::new(events))
            .bench_local(|| ConsentIndex::build(&ledger).unwrap());
    }

    /// `Snapshot::build` at the old cutoff (full scan: the synthetic ledger stores no
    /// checkpoints). Set up first: the peak memory and time of full-scan snapshots at the
    /// old cutoff and at the head, streamed (the product) and by keeping every event and
    /// sorting (the previous implementation, rebuilt here), with the same answers.
    #[divan::bench(args = memory_sizes(), sample_count = 3, sample_size = 1)]
    fn snapshot_old_cutoff(bencher: Bencher, events: u64) {
        let ledger = SyntheticLedger::new(SyntheticChoices::Generated { events });
        let purpose = purpose();
        for (name, cutoff) in [("old_cutoff", old_cutoff()), ("head", Timestamp::MAX)] {
            reset_peak_rss();
            let rss_before = rss_bytes();
            let started = Instant::now();
            let kept = keep_every_event_then_sort(&ledger, cutoff);
            let kept_seconds = started.elapsed().as_secs_f64();
            let kept_peak = peak_rss_bytes().saturating_sub(rss_before);
            drop(kept.1);
            reset_peak_rss();
            let rss_before = rss_bytes();
            let started = Instant::now();
            let snapshot =
                Snapshot::build_with(&ledger, &purpose, cutoff, None, CheckpointUse::Never)
                    .unwrap();
            let streamed_seconds = started.elapsed().as_secs_f64();
            let streamed_peak = peak_rss_bytes().saturating_sub(rss_before);
            assert_eq!(snapshot.explicit, kept.0, "same members either way");
            let members = snapshot.explicit.len();
            eprintln!(
                "optout-bench-build {{\"what\":\"Snapshot::build full scan (in_memory)\",\"cutoff\":\"{name}\",\"events\":{events},\"explicit_members\":{members},\"streamed_peak_rss_delta_bytes\":{streamed_peak},\"streamed_seconds\":{streamed_seconds:.2},\"kept_events_peak_rss_delta_bytes\":{kept_peak},\"kept_events_seconds\":{kept_seconds:.2}}}"
            );
        }
        bencher.counter(ItemsCount::new(events)).bench_local(|| {
            Snapshot::build_with(&ledger, &purpose, old_cutoff(), None, CheckpointUse::Never)
                .unwrap()
        });
    }
}

/// The previous full scan: every choice up to the cutoff as a 32-byte tuple, sorted, each
/// member's last kept. Returns the set and the tuples' vector (dropped by the caller after
/// the peak is read, as the old code dropped it after building the set).
fn keep_every_event_then_sort(
    ledger: &dyn Ledger,
    cutoff: Timestamp,
) -> (optout_index::ExplicitSet, Vec<(u64, i64, u64, bool)>) {
    let purpose = purpose();
    let head = ledger.head().unwrap().map_or(0, |head| head.position.get());
    let mut choices = Vec::new();
    ledger
        .scan_choices(optout_core::LedgerPosition(head), &mut |facts| {
            if *facts.purpose == purpose && facts.at <= cutoff {
                choices.push((
                    facts.member.get(),
                    facts.at.as_micros(),
                    facts.position.get(),
                    facts.allowed,
                ));
            }
        })
        .unwrap();
    choices.sort_unstable_by_key(|&(member, at, position, _)| (member, at, position));
    let mut latest = Vec::new();
    let mut iter = choices.iter().peekable();
    while let Some(&(member, _, _, allowed)) = iter.next() {
        if iter.peek().is_none_or(|next| next.0 != member) {
            latest.push((optout_core::MemberId(member), allowed));
        }
    }
    (optout_index::ExplicitSet::from_sorted(latest), choices)
}
