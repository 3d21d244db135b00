//! In-process consent checks per second (one core) and memory per explicit member.
//!
//! Workload (see `common/mod.rs`): member ids 1..=S, 8% of them with an explicit choice
//! (in opt-in countries 70% of those allow, elsewhere 15%), countries 25% opt-in (DE, FR,
//! GB, IT, ES, NL, PL) and 75% opt-out (US, IN, BR, CA, MX, JP, AU, ID, NG); policy = the
//! shipped default policy; checks at 2025-07-01, after every choice (the live fast path).
//! Queries are ids drawn uniformly from 1..=S with their member's country, from a pool of
//! 4 Mi queries; each iteration takes the next window of the pool, so repeated iterations
//! do not re-read the same few ids.
//!
//! Sizes: `OPTOUT_BENCH_EXPLICIT` = comma-separated explicit-member counts (default
//! `1M,8M`); the id space is 12.5 × that (8% explicit), so `8M` is the issue's
//! 100-million-member id space and `1M,10M,100M` is the growth series. `100M` needs about
//! 5 GiB at its peak (the `ConsentIndex` build) and about a minute of setup.
//!
//! - `point::explicit_get_table_allowed`: `ExplicitSet::get` + `DecisionTable::allowed`
//!   per query (the live fast path), 65 536 queries per iteration.
//! - `point::consent_index_check`: `ConsentIndex::check` at the current time, 64 queries
//!   per iteration (cached decision table, dense layout).
//! - `batch::check_batch_with`: the product batch check over slices of 1 Ki, 64 Ki and
//!   1 Mi random ids and jurisdictions (the 8M size; the others only 64 Ki), with the
//!   set's dense layout built up front; `batch::check_batch_with_bitmap_path`: the same
//!   with the layout turned off (the fallback for sparse id ranges);
//!   `batch::consent_index_check_batch`: `ConsentIndex::check_batch`, as the server calls it.
//! - `proto::*`: 64 Ki batches through alternatives built inside this file, to find where
//!   the time goes (each is checked against the product's answers before it is timed).
//!
//! With `OPTOUT_BENCH_ROUND_ROBIN=<rounds>` divan does not run; instead every prototype and
//! the product run in turn on the same 64 Ki window, `rounds` times, and one line
//! `optout-bench-round-robin {json}` per variant gives the best and median checks per
//! second: the fairest comparison when the machine is shared.
//!
//! The items counter is checks, so divan's `items/s` is checks per second. Memory figures
//! are printed on stderr as `optout-bench-memory {json}` when a size is first set up:
//! `ExplicitSet::serialized_bytes` (the bitmaps' portable size, the floor) and the growth
//! of the process's resident set (VmRSS) while building the set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::{
    country, describe_bitmaps, explicit_members, id_space_for, purpose, rss_bytes, short_count,
    sizes_from_env, Fixtures, Queries, SyntheticChoices, SyntheticLedger, CHECK_AT_US,
};
use divan::counter::ItemsCount;
use divan::Bencher;
use optout_core::{
    decide, ExplicitChoice, Jurisdiction, LedgerPosition, MemberId, PolicyDocument, PolicyHistory,
    Timestamp,
};
use optout_index::decision_table::ExplicitState;
use optout_index::index::check_batch_with;
use optout_index::{ConsentIndex, DecisionTable, DenseLimits, ExplicitSet};
use roaring::{RoaringBitmap, RoaringTreemap};

/// Queries generated per size; iterations walk through it window by window.
const QUERY_POOL: usize = 1 << 22;
/// Batch length of the point loop and of the prototypes.
const WINDOW: usize = 1 << 16;
/// Queries per iteration of `ConsentIndex::check`.
const INDEX_CHECK_WINDOW: usize = 64;
/// The size the target is stated for: 8M explicit members among 100M ids.
const HEADLINE_EXPLICIT: u64 = 8_000_000;

fn main() {
    match std::env::var("OPTOUT_BENCH_ROUND_ROBIN") {
        Ok(rounds) => round_robin(rounds.parse().expect("OPTOUT_BENCH_ROUND_ROBIN: a count")),
        Err(_) => divan::main(),
    }
}

/// A size of the workload: explicit members (the id space is 12.5 times larger).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Size {
    explicit: u64,
}

impl Size {
    fn id_space(self) -> u64 {
        id_space_for(self.explicit)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}_of_{}",
            short_count(self.explicit),
            short_count(self.id_space())
        )
    }
}

fn sizes() -> Vec<Size> {
    sizes_from_env("OPTOUT_BENCH_EXPLICIT", &[1_000_000, HEADLINE_EXPLICIT])
        .into_iter()
        .map(|explicit| Size { explicit })
        .collect()
}

/// A size and a batch length.
#[derive(Clone, Copy, Debug)]
struct Batch {
    size: Size,
    len: usize,
}

impl fmt::Display for Batch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/batch_{}", self.size, self.len)
    }
}

fn batches() -> Vec<Batch> {
    let mut cases = Vec::new();
    for size in sizes() {
        if size.explicit == HEADLINE_EXPLICIT {
            for len in [1 << 10, 1 << 16, 1 << 20] {
                cases.push(Batch { size, len });
            }
        } else {
            cases.push(Batch { size, len: WINDOW });
        }
    }
    cases
}

fn check_at() -> Timestamp {
    Timestamp::from_micros(CHECK_AT_US)
}

fn default_policies() -> PolicyHistory {
    PolicyHistory::from_versions([PolicyDocument::default_policy()]).unwrap()
}

/// Everything the in-memory benchmarks of one size read.
struct Fixture {
    /// The product set, its dense layout built (what batch checks use once warm).
    explicit: ExplicitSet,
    /// The same set with the dense layout turned off: the bitmap path.
    bitmaps_only: ExplicitSet,
    table: DecisionTable,
    queries: Queries,
    /// The same queries, each window of `WINDOW` sorted by id.
    sorted: Queries,
    /// Prototype: allowed ∪ denied, so a member without a choice costs one lookup.
    union: RoaringTreemap,
    /// Prototype: the 32-bit bitmaps under the treemap (every id here is < 2^32).
    allowed_low: RoaringBitmap,
    denied_low: RoaringBitmap,
    /// Prototype: a flat array of 2 bits per id (0 none, 1 allowed, 2 denied).
    dense: Vec<u64>,
    /// Prototype: a flat bit per id: has an explicit choice (the allowed bitmap says which).
    presence: Vec<u64>,
    /// Prototype: one sorted array per 2^16-id block, indexed directly, plus allowed flags.
    blocked: Blocked,
    next_window: AtomicUsize,
}

impl Fixture {
    /// The next window of `len` queries in the pool.
    fn window(&self, len: usize) -> Range<usize> {
        let windows = QUERY_POOL / len;
        let index = self.next_window.fetch_add(1, Ordering::Relaxed) % windows;
        index * len..(index + 1) * len
    }
}

static FIXTURES: Fixtures<Fixture> = Fixtures::new();

fn fixture(size: Size) -> &'static Fixture {
    FIXTURES.get(size.explicit, || build_fixture(size))
}

fn build_fixture(size: Size) -> Fixture {
    let space = size.id_space();
    let rss_before = rss_bytes();
    let started = Instant::now();
    let explicit = ExplicitSet::from_sorted(explicit_members(space));
    let build_seconds = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let members = explicit.len();
    let serialized = explicit.serialized_bytes() as u64;
    let rss_delta = rss_after.saturating_sub(rss_before);
    eprintln!(
        "optout-bench-memory {{\"what\":\"ExplicitSet::from_sorted\",\"size\":\"{size}\",\"id_space\":{space},\"explicit_members\":{members},\"serialized_bytes\":{serialized},\"serialized_bytes_per_member\":{:.3},\"rss_delta_bytes\":{rss_delta},\"rss_bytes_per_member\":{:.3},\"seconds_incl_generation\":{build_seconds:.2},\"bitmaps\":{{{}}}}}",
        serialized as f64 / members as f64,
        rss_delta as f64 / members as f64,
        describe_bitmaps(&explicit),
    );

    let rss_before = rss_bytes();
    let started = Instant::now();
    let dense_bytes = explicit.prepare_dense().map_or(0, |dense| dense.bytes()) as u64;
    eprintln!(
        "optout-bench-memory {{\"what\":\"ExplicitSet::prepare_dense\",\"size\":\"{size}\",\"id_space\":{space},\"explicit_members\":{members},\"dense_bytes\":{dense_bytes},\"dense_bytes_per_explicit_member\":{:.3},\"dense_bytes_per_id\":{:.4},\"rss_delta_bytes\":{},\"seconds\":{:.3}}}",
        dense_bytes as f64 / members as f64,
        dense_bytes as f64 / space as f64,
        rss_bytes().saturating_sub(rss_before),
        started.elapsed().as_secs_f64(),
    );
    let mut bitmaps_only = explicit.clone();
    bitmaps_only.set_dense_limits(DenseLimits {
        span_ids_max: 0,
        ..DenseLimits::default()
    });
    let table = DecisionTable::new(&default_policies(), &purpose(), check_at());
    let queries = Queries::random(space, QUERY_POOL, 0x5eed ^ size.explicit);
    let sorted = queries.sorted_in_windows(WINDOW);
    let union = &*explicit.allowed() | &*explicit.denied();
    let low = |map: &RoaringTreemap| {
        let mut bitmaps = map.bitmaps();
        let (high, bitmap) = bitmaps.next().unwrap();
        assert!(high == 0 && bitmaps.next().is_none(), "ids must be < 2^32");
        bitmap.clone()
    };
    let allowed_low = low(&explicit.allowed());
    let denied_low = low(&explicit.denied());
    let mut dense = vec![0u64; usize::try_from(space / 32 + 1).unwrap()];
    for (map, state) in [(explicit.allowed(), 1u64), (explicit.denied(), 2u64)] {
        for member in map.iter() {
            dense[usize::try_from(member / 32).unwrap()] |= state << ((member % 32) * 2);
        }
    }
    let mut presence = vec![0u64; usize::try_from(space / 64 + 1).unwrap()];
    for member in &union {
        presence[usize::try_from(member / 64).unwrap()] |= 1 << (member % 64);
    }
    let blocked = Blocked::new(&explicit);
    eprintln!(
        "optout-bench-memory {{\"what\":\"blocked_prototype\",\"size\":\"{size}\",\"heap_bytes\":{},\"bytes_per_member\":{:.3}}}",
        blocked.heap_bytes(),
        blocked.heap_bytes() as f64 / members as f64
    );
    eprintln!(
        "optout-bench-memory {{\"what\":\"prototypes\",\"size\":\"{size}\",\"union_serialized_bytes\":{},\"dense_two_bit_bytes\":{},\"presence_bit_bytes\":{}}}",
        union.serialized_size(),
        dense.len() * 8,
        presence.len() * 8
    );
    let fixture = Fixture {
        explicit,
        bitmaps_only,
        table,
        queries,
        sorted,
        union,
        allowed_low,
        denied_low,
        dense,
        presence,
        blocked,
        next_window: AtomicUsize::new(0),
    };
    verify_prototypes(&fixture);
    fixture
}

/// Every prototype gives the product's answers on the first windows of the pool.
fn verify_prototypes(fixture: &Fixture) {
    for window in 0..4 {
        let range = window * WINDOW..(window + 1) * WINDOW;
        let (members, jurisdictions) = (
            &fixture.queries.members[range.clone()],
            &fixture.queries.jurisdictions[range.clone()],
        );
        let expected =
            check_batch_with(&fixture.explicit, &fixture.table, members, jurisdictions).unwrap();
        assert!(fixture.explicit.dense().is_some());
        assert_eq!(bitmap_path(fixture, members, jurisdictions), expected);
        assert!(fixture.bitmaps_only.dense().is_none());
        assert_eq!(sort_inside(fixture, members, jurisdictions), expected);
        assert_eq!(union_first(fixture, members, jurisdictions), expected);
        assert_eq!(inner_bitmaps(fixture, members, jurisdictions), expected);
        assert_eq!(dense_two_bits(fixture, members, jurisdictions), expected);
        assert_eq!(
            presence_then_allowed(fixture, members, jurisdictions),
            expected
        );
        let (sorted_members, sorted_jurisdictions) = (
            &fixture.sorted.members[range.clone()],
            &fixture.sorted.jurisdictions[range],
        );
        let sorted_expected = check_batch_with(
            &fixture.explicit,
            &fixture.table,
            sorted_members,
            sorted_jurisdictions,
        )
        .unwrap();
        assert_eq!(
            merge_walk(fixture, sorted_members, sorted_jurisdictions),
            sorted_expected
        );
        assert_eq!(
            union_first(fixture, sorted_members, sorted_jurisdictions),
            sorted_expected
        );
        // Each query carries its member's country.
        assert!(members
            .iter()
            .zip(jurisdictions)
            .all(|(member, jurisdiction)| *jurisdiction == Some(country(member.get()).0)));
    }
}

#[inline]
fn set_bit(words: &mut [u64], index: usize) {
    words[index / 64] |= 1 << (index % 64);
}

/// Sorts (id, place) pairs, looks ids up in ascending order, writes each answer at its
/// place: what `check_batch_with` would do if it sorted internally.
fn sort_inside(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut order: Vec<(u64, u32)> = members
        .iter()
        .enumerate()
        .map(|(place, member)| (member.get(), u32::try_from(place).unwrap()))
        .collect();
    order.sort_unstable();
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (member, place) in order {
        let place = place as usize;
        let state = ExplicitState::from(fixture.explicit.get(MemberId(member)));
        if fixture.table.allowed(jurisdictions[place], state) {
            set_bit(&mut words, place);
        }
    }
    words
}

/// One lookup in allowed ∪ denied; the second only for the 8% with a choice.
fn union_first(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (index, (member, jurisdiction)) in members.iter().zip(jurisdictions).enumerate() {
        let id = member.get();
        let state = if !fixture.union.contains(id) {
            ExplicitState::None
        } else if fixture.explicit.allowed().contains(id) {
            ExplicitState::Allowed
        } else {
            ExplicitState::Denied
        };
        if fixture.table.allowed(*jurisdiction, state) {
            set_bit(&mut words, index);
        }
    }
    words
}

/// The product's two lookups, on the 32-bit bitmaps directly (no BTreeMap step).
fn inner_bitmaps(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (index, (member, jurisdiction)) in members.iter().zip(jurisdictions).enumerate() {
        let id = u32::try_from(member.get()).unwrap();
        let state = if fixture.allowed_low.contains(id) {
            ExplicitState::Allowed
        } else if fixture.denied_low.contains(id) {
            ExplicitState::Denied
        } else {
            ExplicitState::None
        };
        if fixture.table.allowed(*jurisdiction, state) {
            set_bit(&mut words, index);
        }
    }
    words
}

/// Ids in ascending order, walked against both bitmaps' iterators (`advance_to`).
fn merge_walk(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    let mut allowed = fixture.allowed_low.iter();
    let mut denied = fixture.denied_low.iter();
    let mut allowed_at = allowed.next();
    let mut denied_at = denied.next();
    for (index, (member, jurisdiction)) in members.iter().zip(jurisdictions).enumerate() {
        let id = u32::try_from(member.get()).unwrap();
        if allowed_at.is_some_and(|at| at < id) {
            allowed.advance_to(id);
            allowed_at = allowed.next();
        }
        if denied_at.is_some_and(|at| at < id) {
            denied.advance_to(id);
            denied_at = denied.next();
        }
        let state = if allowed_at == Some(id) {
            ExplicitState::Allowed
        } else if denied_at == Some(id) {
            ExplicitState::Denied
        } else {
            ExplicitState::None
        };
        if fixture.table.allowed(*jurisdiction, state) {
            set_bit(&mut words, index);
        }
    }
    words
}

#[inline]
fn dense_state(dense: &[u64], id: u64) -> ExplicitState {
    match (dense[(id / 32) as usize] >> ((id % 32) * 2)) & 3 {
        1 => ExplicitState::Allowed,
        2 => ExplicitState::Denied,
        _ => ExplicitState::None,
    }
}

/// A flat 2-bit-per-id array: one load per check (the speed ceiling; memory is id space / 4).
fn dense_two_bits(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (index, (member, jurisdiction)) in members.iter().zip(jurisdictions).enumerate() {
        let state = dense_state(&fixture.dense, member.get());
        if fixture.table.allowed(*jurisdiction, state) {
            set_bit(&mut words, index);
        }
    }
    words
}

/// A flat presence bit per id, then the allowed bitmap for the 8% present.
fn presence_then_allowed(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (index, (member, jurisdiction)) in members.iter().zip(jurisdictions).enumerate() {
        let id = member.get();
        let state = if (fixture.presence[(id / 64) as usize] >> (id % 64)) & 1 == 0 {
            ExplicitState::None
        } else if fixture.explicit.allowed().contains(id) {
            ExplicitState::Allowed
        } else {
            ExplicitState::Denied
        };
        if fixture.table.allowed(*jurisdiction, state) {
            set_bit(&mut words, index);
        }
    }
    words
}

/// Prototype layout: for each block of 2^16 ids (found by `id >> 16`, no search), the
/// sorted low 16 bits of the members with a choice and one flag bit per entry (allowed).
/// One search per check instead of two, about 2.1 bytes per member.
struct Blocked {
    members: Vec<Vec<u16>>,
    allowed: Vec<Vec<u64>>,
    /// The largest power of two below the longest block: the first search step.
    top_step: usize,
}

impl Blocked {
    fn new(explicit: &ExplicitSet) -> Blocked {
        let mut members: Vec<Vec<u16>> = Vec::new();
        let mut allowed: Vec<Vec<u64>> = Vec::new();
        let (allowed_set, denied_set) = (explicit.allowed(), explicit.denied());
        let mut allowed_ids = allowed_set.iter().peekable();
        let mut denied_ids = denied_set.iter().peekable();
        loop {
            let (id, is_allowed) = match (allowed_ids.peek(), denied_ids.peek()) {
                (Some(&a), Some(&d)) if a < d => (allowed_ids.next().unwrap(), true),
                (Some(_), Some(_)) | (None, Some(_)) => (denied_ids.next().unwrap(), false),
                (Some(_), None) => (allowed_ids.next().unwrap(), true),
                (None, None) => break,
            };
            let block = usize::try_from(id >> 16).unwrap();
            if members.len() <= block {
                members.resize_with(block + 1, Vec::new);
                allowed.resize_with(block + 1, Vec::new);
            }
            let entry = members[block].len();
            members[block].push(id as u16);
            if entry.is_multiple_of(64) {
                allowed[block].push(0);
            }
            if is_allowed {
                allowed[block][entry / 64] |= 1 << (entry % 64);
            }
        }
        for (block_members, block_allowed) in members.iter_mut().zip(&mut allowed) {
            block_members.shrink_to_fit();
            block_allowed.shrink_to_fit();
        }
        let longest = members.iter().map(Vec::len).max().unwrap_or(0);
        let top_step = longest.next_power_of_two() / 2;
        Blocked {
            members,
            allowed,
            top_step,
        }
    }

    fn heap_bytes(&self) -> usize {
        let vectors = (self.members.capacity() + self.allowed.capacity()) * 24;
        let members: usize = self.members.iter().map(|block| block.capacity() * 2).sum();
        let allowed: usize = self.allowed.iter().map(|block| block.capacity() * 8).sum();
        vectors + members + allowed
    }

    /// Looks up `G` ids at once: branch-free binary searches with the same fixed steps in
    /// every lane advance in lockstep, so their cache misses overlap instead of queueing.
    #[inline]
    fn states<const G: usize>(&self, ids: &[MemberId]) -> [ExplicitState; G] {
        const SENTINEL: &[u16] = &[0];
        let mut arrays = [SENTINEL; G];
        let mut lasts = [0usize; G];
        let mut keys = [0u16; G];
        let mut bases = [0usize; G];
        for lane in 0..G {
            let id = ids[lane].get();
            let block = usize::try_from(id >> 16).unwrap_or(usize::MAX);
            if let Some(array) = self.members.get(block).filter(|array| !array.is_empty()) {
                arrays[lane] = array.as_slice();
                lasts[lane] = array.len() - 1;
            }
            keys[lane] = id as u16;
        }
        let mut step = self.top_step;
        while step > 0 {
            for lane in 0..G {
                let candidate = bases[lane] + step;
                let value = arrays[lane][candidate.min(lasts[lane])];
                let take = (candidate <= lasts[lane]) & (value <= keys[lane]);
                bases[lane] += step * usize::from(take);
            }
            step /= 2;
        }
        let mut states = [ExplicitState::None; G];
        for lane in 0..G {
            if !std::ptr::eq(arrays[lane], SENTINEL) && arrays[lane][bases[lane]] == keys[lane] {
                let block = usize::try_from(ids[lane].get() >> 16).unwrap();
                let entry = bases[lane];
                states[lane] = if (self.allowed[block][entry / 64] >> (entry % 64)) & 1 == 1 {
                    ExplicitState::Allowed
                } else {
                    ExplicitState::Denied
                };
            }
        }
        states
    }
}

/// The batch check over the blocked layout, `G` lookups in lockstep.
fn blocked_search<const G: usize>(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    let groups = members.len() / G;
    for group in 0..groups {
        let from = group * G;
        let states = fixture.blocked.states::<G>(&members[from..from + G]);
        for (lane, state) in states.into_iter().enumerate() {
            if fixture.table.allowed(jurisdictions[from + lane], state) {
                set_bit(&mut words, from + lane);
            }
        }
    }
    for index in groups * G..members.len() {
        let [state] = fixture.blocked.states::<1>(&members[index..=index]);
        if fixture.table.allowed(jurisdictions[index], state) {
            set_bit(&mut words, index);
        }
    }
    words
}

fn product_batch(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    check_batch_with(&fixture.explicit, &fixture.table, members, jurisdictions).unwrap()
}

/// The product's `check_batch_with` with the dense layout turned off.
fn bitmap_path(
    fixture: &Fixture,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    check_batch_with(
        &fixture.bitmaps_only,
        &fixture.table,
        members,
        jurisdictions,
    )
    .unwrap()
}

/// The product's dense layout alone, no table (the answer bit says "has a choice"): how
/// much of the batch check is the jurisdiction slot and table read.
fn dense_states_only(
    fixture: &Fixture,
    members: &[MemberId],
    _jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let dense = fixture.explicit.dense().unwrap();
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (ids, word) in members.chunks(64).zip(&mut words) {
        let mut bits = 0u64;
        for (bit, member) in ids.iter().enumerate() {
            bits |= u64::from(dense.state_code(member.get()) != 0) << bit;
        }
        *word = bits;
    }
    words
}

/// `ExplicitSet::get` alone (the answer bits say "has a choice").
fn explicit_get_only(
    fixture: &Fixture,
    members: &[MemberId],
    _jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    for (index, member) in members.iter().enumerate() {
        if fixture.explicit.get(*member).is_some() {
            set_bit(&mut words, index);
        }
    }
    words
}

/// `DecisionTable::allowed` with no choice, and the output bits: no bitmap at all.
fn table_and_bits_only(
    fixture: &Fixture,
    _members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Vec<u64> {
    let mut words = vec![0u64; jurisdictions.len().div_ceil(64)];
    for (index, jurisdiction) in jurisdictions.iter().enumerate() {
        if fixture.table.allowed(*jurisdiction, ExplicitState::None) {
            set_bit(&mut words, index);
        }
    }
    words
}

type BatchFn = fn(&Fixture, &[MemberId], &[Option<Jurisdiction>]) -> Vec<u64>;

/// (name, reads the sorted windows, check).
const VARIANTS: [(&str, bool, BatchFn); 19] = [
    ("product_check_batch_with", false, product_batch),
    ("product_on_sorted_ids", true, product_batch),
    ("product_bitmap_path", false, bitmap_path),
    ("product_bitmap_path_on_sorted_ids", true, bitmap_path),
    ("sort_inside_then_lookup", false, sort_inside),
    ("merge_walk_on_sorted_ids", true, merge_walk),
    ("union_first_lookup", false, union_first),
    ("union_first_on_sorted_ids", true, union_first),
    ("inner_32bit_bitmaps", false, inner_bitmaps),
    ("presence_bits_then_allowed", false, presence_then_allowed),
    ("presence_bits_on_sorted_ids", true, presence_then_allowed),
    ("blocked_one_search", false, blocked_search::<1>),
    (
        "blocked_16_searches_interleaved",
        false,
        blocked_search::<16>,
    ),
    (
        "blocked_32_searches_interleaved",
        false,
        blocked_search::<32>,
    ),
    ("dense_two_bits_per_id", false, dense_two_bits),
    ("dense_two_bits_on_sorted_ids", true, dense_two_bits),
    ("explicit_get_only", false, explicit_get_only),
    ("dense_states_only", false, dense_states_only),
    ("table_and_bits_only", false, table_and_bits_only),
];

/// Every variant on the same window in turn, `rounds` times, so the load of a shared
/// machine falls on all of them alike; prints the best and median checks per second.
fn round_robin(rounds: usize) {
    for size in sizes() {
        let fixture = fixture(size);
        let mut timings = vec![Vec::with_capacity(rounds); VARIANTS.len()];
        for round in 0..rounds {
            let range = (round % (QUERY_POOL / WINDOW)) * WINDOW
                ..(round % (QUERY_POOL / WINDOW) + 1) * WINDOW;
            for (variant, (_, sorted, check)) in VARIANTS.iter().enumerate() {
                let queries = if *sorted {
                    &fixture.sorted
                } else {
                    &fixture.queries
                };
                let started = Instant::now();
                let words = check(
                    fixture,
                    &queries.members[range.clone()],
                    &queries.jurisdictions[range.clone()],
                );
                let seconds = started.elapsed().as_secs_f64();
                divan::black_box(words);
                timings[variant].push(seconds / WINDOW as f64);
            }
        }
        let median = |times: &mut Vec<f64>| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        };
        let product_median = median(&mut timings[0].clone());
        for ((name, _, _), times) in VARIANTS.iter().zip(&mut timings) {
            let middle = median(times);
            eprintln!(
                "optout-bench-round-robin {{\"size\":\"{size}\",\"variant\":\"{name}\",\"rounds\":{rounds},\"best_checks_per_second\":{:.0},\"median_checks_per_second\":{:.0},\"median_speedup_vs_product\":{:.2}}}",
                1.0 / times[0],
                1.0 / middle,
                product_median / middle
            );
        }
    }
}

mod point {
    use super::*;

    /// The live fast path: `ExplicitSet::get` + `DecisionTable::allowed`, one query at a time.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn explicit_get_table_allowed(bencher: Bencher, size: Size) {
        let fixture = fixture(size);
        bencher.counter(ItemsCount::new(WINDOW)).bench_local(|| {
            let range = fixture.window(WINDOW);
            let mut allowed = 0u32;
            for (member, jurisdiction) in fixture.queries.members[range.clone()]
                .iter()
                .zip(&fixture.queries.jurisdictions[range])
            {
                let state = ExplicitState::from(fixture.explicit.get(*member));
                allowed += u32::from(fixture.table.allowed(*jurisdiction, state));
            }
            allowed
        });
    }

    pub(super) struct IndexFixture {
        pub(super) index: ConsentIndex,
        pub(super) ledger: SyntheticLedger,
    }

    static INDEXES: Fixtures<IndexFixture> = Fixtures::new();

    pub(super) fn index_fixture(size: Size) -> &'static IndexFixture {
        let fixture = fixture(size);
        INDEXES.get(size.explicit, || {
            let ledger = SyntheticLedger::new(SyntheticChoices::ExplicitMembers {
                space: size.id_space(),
            });
            let rss_before = rss_bytes();
            let started = Instant::now();
            let mut index = ConsentIndex::build(&ledger).unwrap();
            let build_seconds = started.elapsed().as_secs_f64();
            let started = Instant::now();
            // As the service does at start: the dense layout replaces the bitmaps.
            assert!(index.prepare_dense(&purpose()));
            eprintln!(
                "optout-bench-memory {{\"what\":\"ConsentIndex::build(synthetic)\",\"size\":\"{size}\",\"explicit_members\":{},\"bitmap_bytes\":{},\"dense_bytes\":{},\"memory_bytes\":{},\"memory_bytes_per_explicit_member\":{:.3},\"rss_delta_bytes\":{},\"seconds\":{build_seconds:.2},\"prepare_dense_seconds\":{:.3}}}",
                index.explicit_members(),
                index.bitmap_bytes(),
                index.dense_bytes(),
                index.memory_bytes(),
                index.memory_bytes() as f64 / index.explicit_members().max(1) as f64,
                rss_bytes().saturating_sub(rss_before),
                started.elapsed().as_secs_f64()
            );
            assert_eq!(index.explicit(&purpose()), Some(&fixture.explicit));
            IndexFixture { index, ledger }
        })
    }

    /// `ConsentIndex::check` at the current time (answered from the bitmaps).
    #[divan::bench(args = sizes(), sample_count = 20, max_time = 10)]
    fn consent_index_check(bencher: Bencher, size: Size) {
        let fixture = fixture(size);
        let built = index_fixture(size);
        let purpose = purpose();
        let at = check_at();
        bencher
            .counter(ItemsCount::new(INDEX_CHECK_WINDOW))
            .bench_local(|| {
                let range = fixture.window(INDEX_CHECK_WINDOW);
                let mut allowed = 0u32;
                for (member, jurisdiction) in fixture.queries.members[range.clone()]
                    .iter()
                    .zip(&fixture.queries.jurisdictions[range])
                {
                    let check = built
                        .index
                        .check(*member, *jurisdiction, &purpose, at, &built.ledger)
                        .unwrap();
                    allowed += u32::from(check.allowed);
                }
                allowed
            });
    }

    /// What `ConsentIndex::check` costs with the table resolved once (prototype): the
    /// purpose lookup, the bitmaps and the table read.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn proto_index_check_cached_table(bencher: Bencher, size: Size) {
        let fixture = fixture(size);
        let built = index_fixture(size);
        let purpose = purpose();
        let table = built.index.decision_table(&purpose, check_at());
        bencher.counter(ItemsCount::new(WINDOW)).bench_local(|| {
            let range = fixture.window(WINDOW);
            let mut allowed = 0u32;
            for (member, jurisdiction) in fixture.queries.members[range.clone()]
                .iter()
                .zip(&fixture.queries.jurisdictions[range])
            {
                let explicit = built
                    .index
                    .explicit(&purpose)
                    .and_then(|set| set.get(*member));
                allowed += u32::from(table.allowed(*jurisdiction, ExplicitState::from(explicit)));
            }
            allowed
        });
    }

    /// What `ConsentIndex::check` costs if it called the rule once for the member's
    /// jurisdiction instead of resolving a whole `DecisionTable` (prototype).
    #[divan::bench(args = sizes(), max_time = 10)]
    fn proto_index_check_decide_once(bencher: Bencher, size: Size) {
        let fixture = fixture(size);
        let built = index_fixture(size);
        let purpose = purpose();
        let at = check_at();
        let policies = built.index.policies();
        bencher.counter(ItemsCount::new(WINDOW)).bench_local(|| {
            let range = fixture.window(WINDOW);
            let mut allowed = 0u32;
            for (member, jurisdiction) in fixture.queries.members[range.clone()]
                .iter()
                .zip(&fixture.queries.jurisdictions[range])
            {
                let explicit = built
                    .index
                    .explicit(&purpose)
                    .and_then(|set| set.get(*member))
                    .map(|allowed| ExplicitChoice {
                        allowed,
                        at,
                        position: LedgerPosition(0),
                    });
                let decision = decide(policies, &purpose, *jurisdiction, at, explicit.as_ref());
                allowed += u32::from(decision.allowed);
            }
            allowed
        });
    }

    /// Resolving the rule for one (purpose, time): what every `ConsentIndex::check` and
    /// `check_batch` call pays first.
    #[divan::bench]
    fn decision_table_new(bencher: Bencher) {
        let policies = default_policies();
        let purpose = purpose();
        bencher.bench_local(|| DecisionTable::new(&policies, &purpose, check_at()));
    }
}

mod batch {
    use super::*;

    /// The product batch check: `check_batch_with` over random ids and jurisdictions, on
    /// the set with its dense layout built (what large batches use once warm).
    #[divan::bench(args = batches(), max_time = 20)]
    fn check_batch_with(bencher: Bencher, batch: Batch) {
        let fixture = fixture(batch.size);
        bencher.counter(ItemsCount::new(batch.len)).bench_local(|| {
            let range = fixture.window(batch.len);
            super::check_batch_with(
                &fixture.explicit,
                &fixture.table,
                &fixture.queries.members[range.clone()],
                &fixture.queries.jurisdictions[range],
            )
            .unwrap()
        });
    }

    /// The same with the dense layout turned off: the bitmap path (sparse id ranges).
    #[divan::bench(args = batches(), max_time = 20)]
    fn check_batch_with_bitmap_path(bencher: Bencher, batch: Batch) {
        let fixture = fixture(batch.size);
        bencher.counter(ItemsCount::new(batch.len)).bench_local(|| {
            let range = fixture.window(batch.len);
            super::check_batch_with(
                &fixture.bitmaps_only,
                &fixture.table,
                &fixture.queries.members[range.clone()],
                &fixture.queries.jurisdictions[range],
            )
            .unwrap()
        });
    }

    /// `ConsentIndex::check_batch` at the current time, as the server calls it: the purpose
    /// lookup, the cached decision table, then the dense layout.
    #[divan::bench(args = batches(), max_time = 20)]
    fn consent_index_check_batch(bencher: Bencher, batch: Batch) {
        let fixture = fixture(batch.size);
        let built = point::index_fixture(batch.size);
        let purpose = purpose();
        let at = check_at();
        bencher.counter(ItemsCount::new(batch.len)).bench_local(|| {
            let range = fixture.window(batch.len);
            built
                .index
                .check_batch(
                    &purpose,
                    at,
                    &fixture.queries.members[range.clone()],
                    &fixture.queries.jurisdictions[range],
                    &built.ledger,
                )
                .unwrap()
        });
    }
}

/// Alternatives, 64 Ki queries per iteration, to see where the batch check's time goes.
mod proto {
    use super::*;

    fn run(bencher: Bencher, size: Size, sorted: bool, check: BatchFn) {
        let fixture = fixture(size);
        let queries = if sorted {
            &fixture.sorted
        } else {
            &fixture.queries
        };
        bencher.counter(ItemsCount::new(WINDOW)).bench_local(|| {
            let range = fixture.window(WINDOW);
            check(
                fixture,
                &queries.members[range.clone()],
                &queries.jurisdictions[range],
            )
        });
    }

    /// The product's `check_batch_with`, unchanged, on ids the caller sorted.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn product_on_sorted_ids(bencher: Bencher, size: Size) {
        run(bencher, size, true, product_batch);
    }

    /// Sort (id, place) inside the check, then look up in id order.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn sort_inside_then_lookup(bencher: Bencher, size: Size) {
        run(bencher, size, false, sort_inside);
    }

    /// Merge walk of sorted ids against the bitmaps' iterators.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn merge_walk_on_sorted_ids(bencher: Bencher, size: Size) {
        run(bencher, size, true, merge_walk);
    }

    /// allowed ∪ denied first: one lookup for the 92% without a choice.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn union_first_lookup(bencher: Bencher, size: Size) {
        run(bencher, size, false, union_first);
    }

    /// The same on ids the caller sorted.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn union_first_on_sorted_ids(bencher: Bencher, size: Size) {
        run(bencher, size, true, union_first);
    }

    /// One sorted array per directly indexed block, one search per check.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn blocked_one_search(bencher: Bencher, size: Size) {
        run(bencher, size, false, blocked_search::<1>);
    }

    /// The same, 16 searches in lockstep.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn blocked_16_searches_interleaved(bencher: Bencher, size: Size) {
        run(bencher, size, false, blocked_search::<16>);
    }

    /// The same, 32 searches in lockstep.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn blocked_32_searches_interleaved(bencher: Bencher, size: Size) {
        run(bencher, size, false, blocked_search::<32>);
    }

    /// A flat presence bit per id, then the allowed bitmap for those present.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn presence_bits_then_allowed(bencher: Bencher, size: Size) {
        run(bencher, size, false, presence_then_allowed);
    }

    /// The product's two lookups on the inner 32-bit bitmaps (no treemap step).
    #[divan::bench(args = sizes(), max_time = 10)]
    fn inner_32bit_bitmaps(bencher: Bencher, size: Size) {
        run(bencher, size, false, inner_bitmaps);
    }

    /// A flat 2-bit array over the id space: the one-load ceiling.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn dense_two_bits_per_id(bencher: Bencher, size: Size) {
        run(bencher, size, false, dense_two_bits);
    }

    /// The presence bits on ids the caller sorted.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn presence_bits_on_sorted_ids(bencher: Bencher, size: Size) {
        run(bencher, size, true, presence_then_allowed);
    }

    /// The flat 2-bit array on ids the caller sorted.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn dense_two_bits_on_sorted_ids(bencher: Bencher, size: Size) {
        run(bencher, size, true, dense_two_bits);
    }

    /// Only `ExplicitSet::get` (no table).
    #[divan::bench(args = sizes(), max_time = 10)]
    fn explicit_get_only(bencher: Bencher, size: Size) {
        run(bencher, size, false, super::explicit_get_only);
    }

    /// Only `DecisionTable::allowed` (state None) and the output bits: no bitmap.
    #[divan::bench(args = sizes(), max_time = 10)]
    fn table_and_bits_only(bencher: Bencher, size: Size) {
        run(bencher, size, false, super::table_and_bits_only);
    }
}
