//! `ConsentIndex`: the live index over a ledger.
//!
//! Per purpose it keeps each member's latest explicit choice (by time, then ledger
//! position) in an [`ExplicitSet`], and the newest choice time seen. A check at or after
//! that time is a bitmap lookup plus a [`DecisionTable`] read. A check at an earlier time
//! for a member who has choices reads that member's history from the ledger (exact, and
//! rare for online checks); batch checks at past cutoffs go through a [`Snapshot`].
//!
//! The index is built from the ledger at start (one scan keeping each member's latest
//! choice as it streams past) and kept current by applying events after its position in
//! order: the same path a node will use to tail a shared PostgreSQL ledger written by
//! others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use optout_core::consent::latest_choice_at;
use optout_core::policy::PolicyDocument;
use optout_core::{
    EventBody, Jurisdiction, LedgerPosition, MemberId, PolicyHistory, Purpose, SealedEvent,
    Timestamp,
};
use optout_store::{member_history, policy_history_up_to, Ledger, StoreError};

use crate::decision_table::{Basis, DecisionTable, ExplicitState};
use crate::dense::DenseLimits;
use crate::explicit::ExplicitSet;
use crate::latest::LatestChoices;
use crate::snapshot::Snapshot;

/// Events read per call while catching up.
const CATCH_UP_PAGE_EVENTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {found} applied where position {expected} was due: the index must see every event in order")]
    OutOfOrder {
        expected: LedgerPosition,
        found: LedgerPosition,
    },
    #[error("policy at ledger position {position} is invalid: {problem}")]
    Policy {
        position: LedgerPosition,
        problem: String,
    },
    #[error("{members} member ids but {jurisdictions} jurisdictions: a batch needs one jurisdiction (or none) per id")]
    BatchShape {
        members: usize,
        jurisdictions: usize,
    },
    #[error("position {requested} is beyond the ledger head {head}")]
    PositionBeyondHead {
        requested: LedgerPosition,
        head: LedgerPosition,
    },
}

#[derive(Clone, Debug, Default)]
struct PurposeState {
    explicit: ExplicitSet,
    /// The newest `at` of any applied choice; `None` before the first.
    newest_at: Option<Timestamp>,
}

impl PurposeState {
    /// No applied choice is later than `at`: the latest choices are the ones at `at`.
    fn is_current_at(&self, at: Timestamp) -> bool {
        self.newest_at.is_none_or(|newest| at >= newest)
    }
}

/// An answer from the index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Check {
    pub allowed: bool,
    pub basis: Basis,
}

#[derive(Debug, Default)]
pub struct ConsentIndex {
    policies: PolicyHistory,
    purposes: HashMap<Purpose, PurposeState>,
    applied: LedgerPosition,
    /// Per purpose, the last table resolved for batch checks and the times it holds for
    /// (resolving one costs 0.2-0.3 ms: more than a batch of 1 000 checks). Cleared when a
    /// policy is applied.
    tables: Mutex<HashMap<Purpose, CachedTable>>,
    /// Given to every purpose's explicit set, including purposes first seen later.
    dense_limits: DenseLimits,
}

#[derive(Debug)]
struct CachedTable {
    from: Timestamp,
    until: Option<Timestamp>,
    table: Arc<DecisionTable>,
}

impl ConsentIndex {
    /// Builds the index from every event in the ledger up to its current head.
    pub fn build(ledger: &dyn Ledger) -> Result<Self, IndexError> {
        let up_to = ledger
            .head()?
            .map_or(LedgerPosition(0), |head| head.position);
        let policies = policy_history_up_to(ledger, up_to)?;
        // Per purpose: each member's latest choice, streamed, and the newest choice time.
        let mut by_purpose: HashMap<Purpose, (LatestChoices, Option<i64>)> = HashMap::new();
        ledger.scan_choices(up_to, &mut |facts| {
            let entry = match by_purpose.get_mut(facts.purpose) {
                Some(entry) => entry,
                None => by_purpose
                    .entry(facts.purpose.clone())
                    .or_insert_with(|| (LatestChoices::new(), None)),
            };
            let at = facts.at.as_micros();
            entry
                .0
                .push(facts.member.get(), at, facts.position.get(), facts.allowed);
            entry.1 = Some(entry.1.map_or(at, |newest| newest.max(at)));
        })?;
        let purposes = by_purpose
            .into_iter()
            .map(|(purpose, (latest, newest_at))| {
                (
                    purpose,
                    PurposeState {
                        explicit: latest.into_explicit(),
                        newest_at: newest_at.map(Timestamp::from_micros),
                    },
                )
            })
            .collect();
        Ok(ConsentIndex {
            policies,
            purposes,
            applied: up_to,
            tables: Mutex::default(),
            dense_limits: DenseLimits::default(),
        })
    }

    /// The last ledger position reflected in the index.
    pub fn applied_position(&self) -> LedgerPosition {
        self.applied
    }

    pub fn policies(&self) -> &PolicyHistory {
        &self.policies
    }

    /// Applies every event appended since the index's position; returns how many.
    pub fn catch_up(&mut self, ledger: &dyn Ledger) -> Result<u64, IndexError> {
        let mut applied = 0u64;
        loop {
            let page = ledger.read_range(self.applied.next(), CATCH_UP_PAGE_EVENTS)?;
            if page.is_empty() {
                return Ok(applied);
            }
            for event in &page {
                self.apply(event, ledger)?;
                applied += 1;
            }
        }
    }

    /// Applies the next event of the ledger. `ledger` is consulted only when a backdated
    /// choice arrives for a member who already has choices.
    pub fn apply(&mut self, sealed: &SealedEvent, ledger: &dyn Ledger) -> Result<(), IndexError> {
        let expected = self.applied.next();
        if sealed.position() != expected {
            return Err(IndexError::OutOfOrder {
                expected,
                found: sealed.position(),
            });
        }
        match &sealed.event.body {
            EventBody::Policy(record) => {
                let document =
                    PolicyDocument::parse(&record.document, "ledger").map_err(|error| {
                        IndexError::Policy {
                            position: sealed.position(),
                            problem: error.to_string(),
                        }
                    })?;
                self.policies
                    .push(document)
                    .map_err(|error| IndexError::Policy {
                        position: sealed.position(),
                        problem: error.to_string(),
                    })?;
                match self.tables.get_mut() {
                    Ok(tables) => tables.clear(),
                    Err(poisoned) => poisoned.into_inner().clear(),
                }
            }
            EventBody::Dataset(_) => {}
            EventBody::Choice(choice) => {
                let limits = self.dense_limits;
                let state = self
                    .purposes
                    .entry(choice.purpose.clone())
                    .or_insert_with(|| {
                        let mut state = PurposeState::default();
                        state.explicit.set_dense_limits(limits);
                        state
                    });
                let prior = state.explicit.get(choice.member);
                let newest = state.newest_at.is_none_or(|newest| choice.at >= newest);
                if prior.is_none() || newest {
                    // Nothing earlier for this member, or later than every applied choice
                    // (an equal time loses to this higher position): it is the latest.
                    state.explicit.set(choice.member, choice.allowed);
                } else {
                    // A backdated choice for a member with history: recompute from the
                    // member's events up to this one.
                    let history =
                        member_history(ledger, choice.member, &choice.purpose, sealed.position())?;
                    match latest_choice_at(&history, Timestamp::MAX) {
                        Some(latest) => state.explicit.set(choice.member, latest.allowed),
                        None => state.explicit.set(choice.member, choice.allowed),
                    }
                }
                state.newest_at = Some(
                    state
                        .newest_at
                        .map_or(choice.at, |newest| newest.max(choice.at)),
                );
            }
        }
        self.applied = expected;
        Ok(())
    }

    /// The rule resolved for a purpose at a time, over the index's policy history.
    pub fn decision_table(&self, purpose: &Purpose, at: Timestamp) -> DecisionTable {
        DecisionTable::new(&self.policies, purpose, at)
    }

    /// [`ConsentIndex::decision_table`], reusing the last one resolved for the purpose
    /// while `at` is in the span of time it holds for (its `at()` is then that of the
    /// check that resolved it).
    pub fn cached_decision_table(&self, purpose: &Purpose, at: Timestamp) -> Arc<DecisionTable> {
        let Ok(mut tables) = self.tables.lock() else {
            return Arc::new(self.decision_table(purpose, at));
        };
        if let Some(cached) = tables.get(purpose) {
            if cached.from <= at && cached.until.is_none_or(|until| at < until) {
                return Arc::clone(&cached.table);
            }
        }
        let (from, until) = DecisionTable::unchanged_between(&self.policies, at);
        let table = Arc::new(self.decision_table(purpose, at));
        tables.insert(
            purpose.clone(),
            CachedTable {
                from,
                until,
                table: Arc::clone(&table),
            },
        );
        table
    }

    /// Whether checks for `purpose` at `at` can be answered from the bitmaps alone.
    pub fn is_current_at(&self, purpose: &Purpose, at: Timestamp) -> bool {
        self.purposes
            .get(purpose)
            .is_none_or(|state| state.is_current_at(at))
    }

    /// May `member`'s data be used for `purpose` as of `at`?
    pub fn check(
        &self,
        member: MemberId,
        jurisdiction: Option<Jurisdiction>,
        purpose: &Purpose,
        at: Timestamp,
        ledger: &dyn Ledger,
    ) -> Result<Check, IndexError> {
        let explicit = ExplicitState::from(self.explicit_at(member, purpose, at, ledger)?);
        // The table for the policy interval holding `at`, resolved once and reused: a
        // fresh one (677 jurisdictions) costs far more than a single check.
        let table = self.cached_decision_table(purpose, at);
        Ok(Check {
            allowed: table.allowed(jurisdiction, explicit),
            basis: table.basis(jurisdiction, explicit),
        })
    }

    /// The member's latest explicit choice at or before `at`, as of the applied position.
    pub fn explicit_at(
        &self,
        member: MemberId,
        purpose: &Purpose,
        at: Timestamp,
        ledger: &dyn Ledger,
    ) -> Result<Option<bool>, IndexError> {
        let Some(state) = self.purposes.get(purpose) else {
            return Ok(None);
        };
        let current = state.explicit.get(member);
        if current.is_none() || state.is_current_at(at) {
            return Ok(current);
        }
        let history = member_history(ledger, member, purpose, self.applied)?;
        Ok(latest_choice_at(&history, at).map(|choice| choice.allowed))
    }

    /// Checks many members at once; bit `i` of the result is member `i`'s answer.
    /// `jurisdictions` is empty (all unknown) or one per member. At a past time with
    /// choices after it, this takes a snapshot first.
    pub fn check_batch(
        &self,
        purpose: &Purpose,
        at: Timestamp,
        members: &[MemberId],
        jurisdictions: &[Option<Jurisdiction>],
        ledger: &dyn Ledger,
    ) -> Result<Vec<u64>, IndexError> {
        if self.is_current_at(purpose, at) {
            let table = self.cached_decision_table(purpose, at);
            let empty = ExplicitSet::new();
            let explicit = self
                .purposes
                .get(purpose)
                .map_or(&empty, |state| &state.explicit);
            return check_batch_with(explicit, &table, members, jurisdictions);
        }
        let snapshot = Snapshot::build(ledger, purpose, at, Some(self.applied))?;
        snapshot.check_batch(members, jurisdictions)
    }

    /// Sets the limits under which batch checks build and keep a dense layout, for every
    /// purpose (layouts already built are dropped and rebuilt on demand).
    pub fn set_dense_limits(&mut self, limits: DenseLimits) {
        self.dense_limits = limits;
        for state in self.purposes.values_mut() {
            state.explicit.set_dense_limits(limits);
        }
    }

    /// Builds the purpose's dense layout now instead of on first need, and keeps it as the
    /// purpose's only copy of the choices (see [`ExplicitSet::switch_to_dense`]); false
    /// when the limits do not allow one (or the purpose has no choices).
    pub fn prepare_dense(&mut self, purpose: &Purpose) -> bool {
        self.purposes
            .get_mut(purpose)
            .is_some_and(|state| state.explicit.switch_to_dense())
    }

    /// Bytes of all dense layouts built (beside or instead of the bitmaps).
    pub fn dense_bytes(&self) -> usize {
        self.purposes
            .values()
            .map(|state| state.explicit.dense_bytes())
            .sum()
    }

    /// The explicit choices of a purpose as of the applied position (latest of each member).
    pub fn explicit(&self, purpose: &Purpose) -> Option<&ExplicitSet> {
        self.purposes.get(purpose).map(|state| &state.explicit)
    }

    /// Members with an explicit choice, over all purposes.
    pub fn explicit_members(&self) -> u64 {
        self.purposes
            .values()
            .map(|state| state.explicit.len())
            .sum()
    }

    /// Bytes of all bitmaps held (serialized size, close to their size in memory).
    pub fn bitmap_bytes(&self) -> usize {
        self.purposes
            .values()
            .map(|state| state.explicit.serialized_bytes())
            .sum()
    }

    /// Bytes held for the explicit choices of every purpose: bitmaps and dense layouts.
    pub fn memory_bytes(&self) -> usize {
        self.purposes
            .values()
            .map(|state| state.explicit.memory_bytes())
            .sum()
    }
}

/// The batch check over an explicit set and a resolved rule. Large batches over a dense
/// enough id range read the set's [`DenseStates`](crate::DenseStates) layout (one load per
/// member), built on first need; others search the bitmaps.
pub fn check_batch_with(
    explicit: &ExplicitSet,
    table: &DecisionTable,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
) -> Result<Vec<u64>, IndexError> {
    if !jurisdictions.is_empty() && jurisdictions.len() != members.len() {
        return Err(IndexError::BatchShape {
            members: members.len(),
            jurisdictions: jurisdictions.len(),
        });
    }
    Ok(match explicit.dense_for_batch(members.len()) {
        Some(dense) => answer_bits(table, members, jurisdictions, |id| dense.state_code(id)),
        None => answer_bits(table, members, jurisdictions, |id| {
            explicit.bitmap_state_code(id)
        }),
    })
}

/// Bit `i` set when member `i` is allowed; `state_code` gives a member's explicit state.
///
/// Members go 64 at a time: first their states alone (a loop of independent loads, so the
/// cache and TLB misses of a whole chunk overlap), then the table reads, which hit L1.
/// Interleaving the two per member runs 3× slower on the dense layout (bench/index.md):
/// the table work fills the out-of-order window and fewer misses are in flight.
#[inline(always)]
fn answer_bits(
    table: &DecisionTable,
    members: &[MemberId],
    jurisdictions: &[Option<Jurisdiction>],
    state_code: impl Fn(u64) -> u64,
) -> Vec<u64> {
    let mut words = vec![0u64; members.len().div_ceil(64)];
    let mut codes = [0u8; 64];
    let mut fill_codes = |ids: &[MemberId]| {
        for (code, member) in codes.iter_mut().zip(ids) {
            *code = state_code(member.get()) as u8;
        }
        codes
    };
    if jurisdictions.is_empty() {
        for (ids, word) in members.chunks(64).zip(words.iter_mut()) {
            let codes = fill_codes(ids);
            let mut bits = 0u64;
            for (bit, code) in codes.iter().take(ids.len()).enumerate() {
                bits |= table.allowed_bit(None, u64::from(*code)) << bit;
            }
            *word = bits;
        }
        return words;
    }
    for ((ids, places), word) in members
        .chunks(64)
        .zip(jurisdictions.chunks(64))
        .zip(words.iter_mut())
    {
        let codes = fill_codes(ids);
        let mut bits = 0u64;
        for (bit, (code, place)) in codes.iter().zip(places).enumerate() {
            bits |= table.allowed_bit(*place, u64::from(*code)) << bit;
        }
        *word = bits;
    }
    words
}
