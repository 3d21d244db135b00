//! `Snapshot`: effective explicit consent for (purpose, cutoff T, ledger position S).
//!
//! It holds, for every member with a choice for the purpose among the events at positions
//! <= S with time <= T, that member's latest such choice (by time, then position), plus
//! the rule resolved at T. Events at positions <= S never change, so the same triple gives
//! the same snapshot forever, whatever is appended later, including imports dated before T.

use optout_core::{
    EventHash, Jurisdiction, LedgerPosition, MemberId, PolicyVersion, Purpose, Timestamp,
};
use optout_store::Ledger;

use crate::decision_table::{DecisionTable, ExplicitState};
use crate::explicit::ExplicitSet;
use crate::index::{check_batch_with, policies_up_to, IndexError};

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
}

impl Snapshot {
    /// Takes the snapshot of `purpose` at `cutoff` as recorded up to `position` (default:
    /// the ledger head).
    pub fn build(
        ledger: &dyn Ledger,
        purpose: &Purpose,
        cutoff: Timestamp,
        position: Option<LedgerPosition>,
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
        let policies = policies_up_to(ledger, position)?;
        let mut choices = Vec::new();
        ledger.scan_choices(position, &mut |facts| {
            if facts.purpose == purpose && facts.at <= cutoff {
                choices.push((
                    facts.member.get(),
                    facts.at.as_micros(),
                    facts.position.get(),
                    facts.allowed,
                ));
            }
        })?;
        let explicit = latest_per_member(choices);
        let table = DecisionTable::new(&policies, purpose, cutoff);
        Ok(Snapshot {
            purpose: purpose.clone(),
            cutoff,
            position,
            head_hash,
            policy_version: policies.in_force_at(cutoff).map(|policy| policy.version),
            explicit,
            table,
        })
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

/// Each member's latest choice from (member, at, position, allowed) tuples in any order.
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
