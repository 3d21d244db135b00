//! `Snapshot`: effective explicit consent for (purpose, cutoff T, ledger position S).
//!
//! It holds, for every member with a choice for the purpose among the events at positions
//! <= S with time <= T, that member's latest such choice (by time, then position), plus
//! the rule resolved at T. Events at positions <= S never change, so the same triple gives
//! the same snapshot forever, whatever is appended later, including imports dated before T.

use std::collections::BTreeSet;

use optout_core::consent::latest_choice_at;
use optout_core::{
    EventHash, Jurisdiction, LedgerPosition, MemberId, PolicyHistory, PolicyVersion, Purpose,
    Timestamp,
};
use optout_store::{member_history, policy_history_up_to, IndexCheckpoint, Ledger};
use roaring::RoaringTreemap;

use crate::decision_table::{DecisionTable, ExplicitState};
use crate::explicit::{ExplicitSet, SortedExplicitBuilder};
use crate::index::{check_batch_with, IndexError};
use crate::latest::LatestChoices;

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub purpose: Purpose,
    pub cutoff: Timestamp,
    pub position: LedgerPosition,
    /// The hash of the event at `position`: names the exact ledger state.
    pub head_hash: EventHash,
    /// The policy version in force at the cutoff, if any.
    pub policy_version: Option<PolicyVersion>,
    pub explicit: ExplicitSet,
    pub table: DecisionTable,
    /// The policy versions recorded at or before `position`: what the snapshot's rule
    /// and exported jurisdiction rules come from.
    pub policies: PolicyHistory,
    /// How it was computed.
    pub source: SnapshotSource,
}

/// Whether a snapshot may start from a stored index checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointUse {
    IfStored,
    Never,
}

/// Where a snapshot's explicit set came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotSource {
    /// Every choice event up to the position was read.
    FullScan { events: u64 },
    /// Each member's latest choice was read from the ledger's index of choices by member
    /// (`members` of them), without reading whole events.
    MemberIndex { members: u64 },
    /// A stored index checkpoint plus the events it did not reflect.
    Checkpoint {
        cutoff: Timestamp,
        position: LedgerPosition,
        events: u64,
        backdated_members: u64,
    },
}

/// Above this many members with choices backdated behind a checkpoint, re-reading each
/// member's history costs more than a full scan.
const BACKDATED_MEMBERS_MAX: usize = 10_000;

impl Snapshot {
    /// Takes the snapshot of `purpose` at `cutoff` as recorded up to `position` (default:
    /// the ledger head).
    pub fn build(
        ledger: &dyn Ledger,
        purpose: &Purpose,
        cutoff: Timestamp,
        position: Option<LedgerPosition>,
    ) -> Result<Snapshot, IndexError> {
        Self::build_with(ledger, purpose, cutoff, position, CheckpointUse::IfStored)
    }

    /// [`Snapshot::build`], choosing whether stored checkpoints may be used (reading the
    /// whole ledger instead is how checkpoints themselves are checked).
    pub fn build_with(
        ledger: &dyn Ledger,
        purpose: &Purpose,
        cutoff: Timestamp,
        position: Option<LedgerPosition>,
        checkpoints: CheckpointUse,
    ) -> Result<Snapshot, IndexError> {
        let head = ledger.head()?;
        let head_position = head.map_or(LedgerPosition(0), |head| head.position);
        let position = position.unwrap_or(head_position);
        if position > head_position {
            return Err(IndexError::PositionBeyondHead {
                requested: position,
                head: head_position,
            });
        }
        let head_hash = if position.get() == 0 {
            EventHash::GENESIS
        } else {
            ledger
                .read_range(position, 1)?
                .first()
                .map(|event| event.hash)
                .unwrap_or(EventHash::GENESIS)
        };
        let policies = policy_history_up_to(ledger, position)?;
        let stored = match checkpoints {
            CheckpointUse::IfStored => from_checkpoint(ledger, purpose, cutoff, position)?,
            CheckpointUse::Never => None,
        };
        let (explicit, source) = match stored {
            Some(found) => found,
            None => from_ledger(ledger, purpose, cutoff, position)?,
        };
        let table = DecisionTable::new(&policies, purpose, cutoff);
        Ok(Snapshot {
            purpose: purpose.clone(),
            cutoff,
            position,
            head_hash,
            policy_version: policies.in_force_at(cutoff).map(|policy| policy.version),
            explicit,
            table,
            policies,
            source,
        })
    }

    /// Stores this snapshot as an index checkpoint, so later snapshots at or after its
    /// cutoff and position start from it instead of reading the whole ledger.
    pub fn save_checkpoint(&self, ledger: &dyn Ledger, now: Timestamp) -> Result<(), IndexError> {
        let serialize = |bitmap: &RoaringTreemap| {
            let mut bytes = Vec::with_capacity(bitmap.serialized_size());
            bitmap
                .serialize_into(&mut bytes)
                .map(|()| bytes)
                .map_err(|error| optout_store::StoreError::Backend(error.to_string()))
        };
        ledger.save_index_checkpoint(&IndexCheckpoint {
            purpose: self.purpose.clone(),
            cutoff: self.cutoff,
            position: self.position,
            ledger_hash: self.head_hash,
            allowed: serialize(&self.explicit.allowed())?,
            denied: serialize(&self.explicit.denied())?,
            created_at: now,
        })?;
        Ok(())
    }

    pub fn check(&self, member: MemberId, jurisdiction: Option<Jurisdiction>) -> bool {
        self.table
            .allowed(jurisdiction, ExplicitState::from(self.explicit.get(member)))
    }

    /// Bit `i` of the result is member `i`'s answer.
    pub fn check_batch(
        &self,
        members: &[MemberId],
        jurisdictions: &[Option<Jurisdiction>],
    ) -> Result<Vec<u64>, IndexError> {
        check_batch_with(&self.explicit, &self.table, members, jurisdictions)
    }
}

/// Reads the ledger: each member's latest choice from the backend's member-ordered index if
/// it has one, otherwise every choice event up to the position.
fn from_ledger(
    ledger: &dyn Ledger,
    purpose: &Purpose,
    cutoff: Timestamp,
    position: LedgerPosition,
) -> Result<(ExplicitSet, SnapshotSource), IndexError> {
    let mut sorted = SortedExplicitBuilder::default();
    let mut members = 0u64;
    let from_index =
        ledger.latest_choices_by_member(purpose, cutoff, position, &mut |member, allowed| {
            members += 1;
            sorted.push(member, allowed);
        })?;
    if from_index {
        return Ok((sorted.build(), SnapshotSource::MemberIndex { members }));
    }
    let mut latest = LatestChoices::new();
    let mut events = 0u64;
    ledger.scan_choices(position, &mut |facts| {
        events += 1;
        if facts.purpose == purpose && facts.at <= cutoff {
            latest.push(
                facts.member.get(),
                facts.at.as_micros(),
                facts.position.get(),
                facts.allowed,
            );
        }
    })?;
    Ok((latest.into_explicit(), SnapshotSource::FullScan { events }))
}

/// Starts from the best stored checkpoint, if one applies and still matches the ledger.
fn from_checkpoint(
    ledger: &dyn Ledger,
    purpose: &Purpose,
    cutoff: Timestamp,
    position: LedgerPosition,
) -> Result<Option<(ExplicitSet, SnapshotSource)>, IndexError> {
    let Some(checkpoint) = ledger.find_index_checkpoint(purpose, cutoff, position)? else {
        return Ok(None);
    };
    // A checkpoint of another ledger (or of a rewritten one) is ignored, not trusted.
    let hash_now = ledger
        .read_range(checkpoint.position, 1)?
        .first()
        .filter(|event| event.position() == checkpoint.position)
        .map(|event| event.hash);
    if hash_now != Some(checkpoint.ledger_hash) {
        return Ok(None);
    }
    let (Ok(allowed), Ok(denied)) = (
        RoaringTreemap::deserialize_from(checkpoint.allowed.as_slice()),
        RoaringTreemap::deserialize_from(checkpoint.denied.as_slice()),
    ) else {
        return Ok(None);
    };
    let mut explicit = ExplicitSet::from_bitmaps(allowed, denied);
    // Choices newer than the checkpoint's cutoff are later than anything it reflects;
    // applied in (time, position) order, the last one of each member wins. Choices
    // appended after it but dated at or before its cutoff may be older than what it holds
    // for that member: those members are re-read in full.
    let mut newer = Vec::new();
    let mut backdated = BTreeSet::new();
    ledger.scan_choices_since(
        purpose,
        checkpoint.cutoff,
        checkpoint.position,
        cutoff,
        position,
        &mut |facts| {
            if facts.at > checkpoint.cutoff {
                newer.push((facts.at, facts.position, facts.member, facts.allowed));
            } else {
                backdated.insert(facts.member);
            }
        },
    )?;
    if backdated.len() > BACKDATED_MEMBERS_MAX {
        return Ok(None);
    }
    let events = newer.len() as u64;
    newer.sort_unstable_by_key(|&(at, position, _, _)| (at, position));
    for (_, _, member, allowed) in newer {
        explicit.set(member, allowed);
    }
    for member in &backdated {
        let history = member_history(ledger, *member, purpose, position)?;
        match latest_choice_at(&history, cutoff) {
            Some(latest) => explicit.set(*member, latest.allowed),
            None => explicit.remove(*member),
        }
    }
    Ok(Some((
        explicit,
        SnapshotSource::Checkpoint {
            cutoff: checkpoint.cutoff,
            position: checkpoint.position,
            events,
            backdated_members: backdated.len() as u64,
        },
    )))
}

/// Each member's latest choice from (member, at, position, allowed) tuples in any order:
/// the model `LatestChoices` is tested against.
#[cfg(test)]
pub(crate) fn latest_per_member(mut choices: Vec<(u64, i64, u64, bool)>) -> ExplicitSet {
    choices.sort_unstable_by_key(|&(member, at, position, _)| (member, at, position));
    let mut latest = Vec::with_capacity(choices.len());
    let mut iter = choices.into_iter().peekable();
    while let Some((member, _, _, allowed)) = iter.next() {
        if iter.peek().is_none_or(|next| next.0 != member) {
            latest.push((MemberId(member), allowed));
        }
    }
    ExplicitSet::from_sorted(latest)
}
