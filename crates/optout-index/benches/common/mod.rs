//! The synthetic workload both index benchmarks share: who has an explicit choice, which
//! one, each member's country, random check queries, the events of a generated ledger, a
//! ledger that produces its events on the fly (no store), and resident-memory readings.
//!
//! Everything is a pure function of member ids and event numbers (splitmix64), so every
//! run, and every size, sees the same members.
#![allow(dead_code)]

use std::sync::OnceLock;

pub use optout_core::splitmix::mix64;
use optout_core::{
    ChainHead, DatasetRecord, EventHash, Jurisdiction, LedgerPosition, MemberId, PolicyRecord,
    Purpose, SealedEvent, Timestamp,
};
use optout_index::ExplicitSet;
use optout_store::conformance::default_policy_event;
use optout_store::{
    Appended, ChoiceAt, ChoiceFacts, IndexCheckpoint, Ledger, NewEvent, StoreError,
};

pub const PURPOSE: &str = "ai_training";

/// Members with an explicit choice, per million member ids (8%).
pub const EXPLICIT_PER_MILLION: u64 = 80_000;

/// 2023-10-16T00:00:00Z: the default policy's notice date; the first generated choice.
pub const CHOICES_FROM_US: i64 = 1_697_414_400_000_000;
/// 2025-06-30T00:00:00Z: the last generated choice.
pub const CHOICES_TO_US: i64 = 1_751_241_600_000_000;
/// 2025-07-01T00:00:00Z: "now" for checks, after every generated choice, so checks are
/// answered from the bitmaps alone.
pub const CHECK_AT_US: i64 = 1_751_328_000_000_000;
/// 2024-01-01T00:00:00Z: an old cutoff (about the first tenth of the generated span).
pub const OLD_CUTOFF_US: i64 = 1_704_067_200_000_000;

/// Country mix, in per-mille of members: 25% in opt-in jurisdictions (EU/EEA, CH, GB),
/// 75% in opt-out ones. `true` marks opt-in.
const COUNTRIES: [(&str, u64, bool); 16] = [
    ("DE", 70, true),
    ("FR", 55, true),
    ("GB", 55, true),
    ("IT", 25, true),
    ("ES", 20, true),
    ("NL", 15, true),
    ("PL", 10, true),
    ("US", 300, false),
    ("IN", 200, false),
    ("BR", 100, false),
    ("CA", 40, false),
    ("MX", 30, false),
    ("JP", 20, false),
    ("AU", 20, false),
    ("ID", 20, false),
    ("NG", 20, false),
];

const COUNTRY_SALT: u64 = 0x636f_756e_7472_7921;
const EXPLICIT_SALT: u64 = 0x6578_706c_6963_6974;
const EVENT_SALT: u64 = 0x6576_656e_7473_2121;

pub fn purpose() -> Purpose {
    Purpose::new(PURPOSE).unwrap()
}

/// One entry per mille: (country, opt-in?).
fn country_table() -> &'static [(Jurisdiction, bool); 1000] {
    static TABLE: OnceLock<[(Jurisdiction, bool); 1000]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let first = Jurisdiction::parse("US").unwrap();
        let mut table = [(first, false); 1000];
        let mut slot = 0usize;
        for (code, per_mille, opt_in) in COUNTRIES {
            let jurisdiction = Jurisdiction::parse(code).unwrap();
            for _ in 0..per_mille {
                table[slot] = (jurisdiction, opt_in);
                slot += 1;
            }
        }
        assert_eq!(slot, 1000, "the country mix must add up to 1000 per mille");
        table
    })
}

/// A member's country and whether it is an opt-in jurisdiction.
#[inline]
pub fn country(member: u64) -> (Jurisdiction, bool) {
    country_table()[usize::try_from(mix64(member ^ COUNTRY_SALT) % 1000).unwrap()]
}

/// Whether a member who made an explicit choice allowed: in opt-in countries choices are
/// mostly opt-ins (70% allow), elsewhere mostly opt-outs (15% allow).
#[inline]
fn chooses_allow(member_country_opt_in: bool, random: u64) -> bool {
    let share = random % 100;
    if member_country_opt_in {
        share < 70
    } else {
        share < 15
    }
}

/// The member's latest explicit choice in the in-memory workload (8% of members have one).
#[inline]
pub fn explicit_choice(member: u64) -> Option<bool> {
    let random = mix64(member ^ EXPLICIT_SALT);
    if random % 1_000_000 >= EXPLICIT_PER_MILLION {
        return None;
    }
    Some(chooses_allow(country(member).1, random >> 32))
}

/// The id space (1..=space) that holds about `explicit` members with a choice at 8%.
pub fn id_space_for(explicit: u64) -> u64 {
    explicit * 1_000_000 / EXPLICIT_PER_MILLION
}

/// Every member of 1..=space with an explicit choice, ascending, with that choice.
pub fn explicit_members(space: u64) -> impl Iterator<Item = (MemberId, bool)> {
    (1..=space)
        .filter_map(|member| explicit_choice(member).map(|allowed| (MemberId(member), allowed)))
}

/// Check queries: ids uniform over 1..=space, each with the member's country.
pub struct Queries {
    pub members: Vec<MemberId>,
    pub jurisdictions: Vec<Option<Jurisdiction>>,
}

impl Queries {
    pub fn random(space: u64, count: usize, seed: u64) -> Queries {
        let mut members = Vec::with_capacity(count);
        let mut jurisdictions = Vec::with_capacity(count);
        for index in 0..u64::try_from(count).unwrap() {
            let member = 1 + mix64(seed.wrapping_add(index)) % space;
            members.push(MemberId(member));
            jurisdictions.push(Some(country(member).0));
        }
        Queries {
            members,
            jurisdictions,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The same queries with each window of `window` queries sorted by member id.
    pub fn sorted_in_windows(&self, window: usize) -> Queries {
        let mut members = Vec::with_capacity(self.len());
        let mut jurisdictions = Vec::with_capacity(self.len());
        for (ids, places) in self
            .members
            .chunks(window)
            .zip(self.jurisdictions.chunks(window))
        {
            let mut pairs: Vec<_> = ids.iter().copied().zip(places.iter().copied()).collect();
            pairs.sort_unstable_by_key(|(member, _)| member.get());
            for (member, jurisdiction) in pairs {
                members.push(member);
                jurisdictions.push(jurisdiction);
            }
        }
        Queries {
            members,
            jurisdictions,
        }
    }
}

/// Resident memory of this process in bytes (VmRSS of /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Reports an explicit set's size: serialized bytes (the floor) and container mix.
pub fn describe_bitmaps(set: &ExplicitSet) -> String {
    let mut parts = Vec::new();
    for (name, map) in [("allowed", set.allowed()), ("denied", set.denied())] {
        let (mut arrays, mut bitsets, mut runs, mut array_capacity_bytes) =
            (0u64, 0u64, 0u64, 0u64);
        for (_, bitmap) in map.bitmaps() {
            let stats = bitmap.statistics();
            arrays += u64::from(stats.n_array_containers);
            bitsets += u64::from(stats.n_bitset_containers);
            runs += u64::from(stats.n_run_containers);
            // roaring reports array capacity in u32 units; arrays hold u16.
            array_capacity_bytes += stats.n_bytes_array_containers / 2;
        }
        parts.push(format!(
            "\"{name}\":{{\"members\":{},\"serialized_bytes\":{},\"array_containers\":{arrays},\"bitset_containers\":{bitsets},\"run_containers\":{runs},\"array_capacity_bytes\":{array_capacity_bytes}}}",
            map.len(),
            map.serialized_size()
        ));
    }
    parts.join(",")
}

/// How many events per generated ledger: member ids come from 1..=10 × events, so a
/// 10-million-event ledger covers a 100-million-member id space (about 9.5 million
/// distinct members, some with several choices).
pub fn event_id_space(events: u64) -> u64 {
    events * 10
}

/// One generated choice event.
#[derive(Clone, Copy, Debug)]
pub struct GeneratedChoice {
    pub member: u64,
    pub allowed: bool,
    pub at: Timestamp,
    pub jurisdiction: Jurisdiction,
    /// Imported (backdated) rather than made live.
    pub imported: bool,
}

/// The `index`-th (0-based) of `events` generated choices: times rise along the ledger
/// over 2023-10-16 .. 2025-06-30, except 10% imports backdated by up to a year.
pub fn generated_choice(index: u64, events: u64) -> GeneratedChoice {
    let random = mix64(index ^ EVENT_SALT);
    let member = 1 + random % event_id_space(events);
    let (jurisdiction, opt_in) = country(member);
    let allowed = chooses_allow(opt_in, random >> 40);
    let span = u128::try_from(CHOICES_TO_US - CHOICES_FROM_US).unwrap();
    let offset = u128::from(index) * span / u128::from(events.max(1));
    let mut at = CHOICES_FROM_US + i64::try_from(offset).unwrap();
    let imported = (random >> 20).is_multiple_of(10);
    if imported {
        let year_us = 365 * 86_400 * 1_000_000_u64;
        let back = i64::try_from(mix64(random) % year_us).unwrap();
        at = (at - back).max(CHOICES_FROM_US);
    }
    GeneratedChoice {
        member,
        allowed,
        at: Timestamp::from_micros(at),
        jurisdiction,
        imported,
    }
}

pub fn default_policy_record() -> PolicyRecord {
    match default_policy_event() {
        NewEvent::Policy(record) => record,
        _ => unreachable!("default_policy_event is a policy"),
    }
}

/// What a [`SyntheticLedger`] holds after its policy event (position 1).
#[derive(Clone, Copy, Debug)]
pub enum SyntheticChoices {
    /// One choice per explicit member of 1..=space (the in-memory workload), ascending.
    ExplicitMembers { space: u64 },
    /// `events` generated choices, as written to the SQLite ledgers.
    Generated { events: u64 },
}

/// A read-only ledger that produces its choices on the fly: the store's cost taken out, so
/// what remains is the index's own work (collect, sort, build bitmaps).
pub struct SyntheticLedger {
    choices: SyntheticChoices,
    events: u64,
    policy: PolicyRecord,
    purpose: Purpose,
}

impl SyntheticLedger {
    pub fn new(choices: SyntheticChoices) -> SyntheticLedger {
        let events = match choices {
            SyntheticChoices::ExplicitMembers { space } => explicit_members(space).count() as u64,
            SyntheticChoices::Generated { events } => events,
        };
        SyntheticLedger {
            choices,
            events,
            policy: default_policy_record(),
            purpose: purpose(),
        }
    }

    pub fn choice_events(&self) -> u64 {
        self.events
    }
}

fn read_only() -> StoreError {
    StoreError::Backend("the synthetic ledger is read-only".into())
}

impl Ledger for SyntheticLedger {
    fn append(&self, _events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        Err(read_only())
    }

    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(Some(ChainHead {
            position: LedgerPosition(self.events + 1),
            hash: EventHash::GENESIS,
        }))
    }

    fn read_range(
        &self,
        _from: LedgerPosition,
        _limit: usize,
    ) -> Result<Vec<SealedEvent>, StoreError> {
        Ok(Vec::new())
    }

    fn member_choices(
        &self,
        _member: MemberId,
        _purpose: &Purpose,
    ) -> Result<Vec<ChoiceAt>, StoreError> {
        Ok(Vec::new())
    }

    fn policy_records(&self) -> Result<Vec<(LedgerPosition, PolicyRecord)>, StoreError> {
        Ok(vec![(LedgerPosition(1), self.policy.clone())])
    }

    fn dataset_records(&self) -> Result<Vec<(LedgerPosition, DatasetRecord)>, StoreError> {
        Ok(Vec::new())
    }

    fn save_index_checkpoint(&self, _checkpoint: &IndexCheckpoint) -> Result<(), StoreError> {
        Err(read_only())
    }

    fn find_index_checkpoint(
        &self,
        _purpose: &Purpose,
        _cutoff: Timestamp,
        _up_to: LedgerPosition,
    ) -> Result<Option<IndexCheckpoint>, StoreError> {
        Ok(None)
    }

    fn scan_choices(
        &self,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        let last = up_to.get().min(self.events + 1);
        match self.choices {
            SyntheticChoices::ExplicitMembers { space } => {
                let at = Timestamp::from_micros(CHOICES_FROM_US);
                for (position, (member, allowed)) in (2..=last).zip(explicit_members(space)) {
                    visit(ChoiceFacts {
                        position: LedgerPosition(position),
                        member,
                        purpose: &self.purpose,
                        allowed,
                        at,
                    });
                }
            }
            SyntheticChoices::Generated { events } => {
                for position in 2..=last {
                    let choice = generated_choice(position - 2, events);
                    visit(ChoiceFacts {
                        position: LedgerPosition(position),
                        member: MemberId(choice.member),
                        purpose: &self.purpose,
                        allowed: choice.allowed,
                        at: choice.at,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A comma-separated list of counts from an environment variable ("1000000,10M,1e8" style
/// suffixes K/M/G accepted), or the default.
pub fn sizes_from_env(name: &str, default: &[u64]) -> Vec<u64> {
    let Ok(value) = std::env::var(name) else {
        return default.to_vec();
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (digits, scale) = match part.as_bytes().last() {
                Some(b'K' | b'k') => (&part[..part.len() - 1], 1_000),
                Some(b'M' | b'm') => (&part[..part.len() - 1], 1_000_000),
                Some(b'G' | b'g') => (&part[..part.len() - 1], 1_000_000_000),
                _ => (part, 1),
            };
            digits
                .replace('_', "")
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}: cannot read {part:?} as a count"))
                * scale
        })
        .collect()
}

/// 8000000 -> "8M", 12500000 -> "12.5M", 1250000000 -> "1.25G".
pub fn short_count(count: u64) -> String {
    for (scale, suffix) in [(1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K")] {
        if count >= scale {
            let whole = count / scale;
            let hundredths = count % scale * 100 / scale;
            return match hundredths {
                0 => format!("{whole}{suffix}"),
                _ if hundredths.is_multiple_of(10) => {
                    format!("{whole}.{}{suffix}", hundredths / 10)
                }
                _ => format!("{whole}.{hundredths:02}{suffix}"),
            };
        }
    }
    count.to_string()
}

/// Values leaked once per key, for fixtures shared by every benchmark of a process.
pub struct Fixtures<T: 'static> {
    built: std::sync::Mutex<Vec<(u64, &'static T)>>,
}

impl<T: Sync + 'static> Fixtures<T> {
    pub const fn new() -> Self {
        Fixtures {
            built: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn get(&'static self, key: u64, build: impl FnOnce() -> T) -> &'static T {
        let mut built = self.built.lock().unwrap();
        if let Some((_, found)) = built.iter().find(|(built_key, _)| *built_key == key) {
            return found;
        }
        let value: &'static T = Box::leak(Box::new(build()));
        built.push((key, value));
        value
    }
}
