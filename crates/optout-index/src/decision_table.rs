//! `DecisionTable`: the consent rule resolved for one purpose at one time, for every
//! jurisdiction and each of the three explicit states (no choice, allow, deny).
//!
//! Each entry is computed by calling the pure rule (`optout_core::consent::decide`), so a
//! check through the table is the rule, only without re-deciding per member. A batch
//! check is then one bitmap lookup and one table read per member.

use optout_core::consent::{decide, ExplicitChoice, Reason};
use optout_core::policy::Rule;
use optout_core::{Jurisdiction, LedgerPosition, PolicyHistory, Purpose, Timestamp};

/// Slots: one per two-letter code (26 × 26) and one for a missing jurisdiction.
const SLOTS: usize = 26 * 26 + 1;
const MISSING_SLOT: usize = 26 * 26;

/// What an answer rests on (the rule's reason without the details).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Basis {
    ExplicitChoice,
    JurisdictionDefault,
    BeforeDeadline,
    Excluded,
    UnknownJurisdiction,
    NoPolicyInForce,
    PurposeNotInPolicy,
}

impl Basis {
    pub fn of(reason: &Reason) -> Basis {
        match reason {
            Reason::ExplicitChoice { .. } => Basis::ExplicitChoice,
            Reason::JurisdictionDefault { .. } => Basis::JurisdictionDefault,
            Reason::BeforeDeadline { .. } => Basis::BeforeDeadline,
            Reason::Excluded => Basis::Excluded,
            Reason::UnknownJurisdiction => Basis::UnknownJurisdiction,
            Reason::NoPolicyInForce => Basis::NoPolicyInForce,
            Reason::PurposeNotInPolicy => Basis::PurposeNotInPolicy,
        }
    }

    /// The same name `Reason::name` gives.
    pub fn name(self) -> &'static str {
        match self {
            Basis::ExplicitChoice => "explicit_choice",
            Basis::JurisdictionDefault => "jurisdiction_default",
            Basis::BeforeDeadline => "before_deadline",
            Basis::Excluded => "excluded",
            Basis::UnknownJurisdiction => "unknown_jurisdiction",
            Basis::NoPolicyInForce => "no_policy_in_force",
            Basis::PurposeNotInPolicy => "purpose_not_in_policy",
        }
    }
}

/// The state of a member's explicit choice, as the table indexes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExplicitState {
    None = 0,
    Allowed = 1,
    Denied = 2,
}

impl From<Option<bool>> for ExplicitState {
    #[inline]
    fn from(explicit: Option<bool>) -> Self {
        match explicit {
            None => ExplicitState::None,
            Some(true) => ExplicitState::Allowed,
            Some(false) => ExplicitState::Denied,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DecisionTable {
    /// Bit `state` of a slot is set when that state is allowed.
    allowed_bits: Vec<u8>,
    bases: Vec<[Basis; 3]>,
    at: Timestamp,
}

impl DecisionTable {
    pub fn new(policies: &PolicyHistory, purpose: &Purpose, at: Timestamp) -> Self {
        let mut allowed_bits = Vec::with_capacity(SLOTS);
        let mut bases = Vec::with_capacity(SLOTS);
        for slot in 0..SLOTS {
            let jurisdiction = jurisdiction_of_slot(slot);
            let mut bits = 0u8;
            let mut slot_bases = [Basis::NoPolicyInForce; 3];
            for (state, explicit) in [(0, None), (1, Some(true)), (2, Some(false))] {
                let choice = explicit.map(|allowed| ExplicitChoice {
                    allowed,
                    at,
                    position: LedgerPosition(0),
                });
                let decision = decide(policies, purpose, jurisdiction, at, choice.as_ref());
                if decision.allowed {
                    bits |= 1 << state;
                }
                if let Some(basis) = slot_bases.get_mut(state) {
                    *basis = Basis::of(&decision.reason);
                }
            }
            allowed_bits.push(bits);
            bases.push(slot_bases);
        }
        DecisionTable {
            allowed_bits,
            bases,
            at,
        }
    }

    pub fn at(&self) -> Timestamp {
        self.at
    }

    #[inline]
    pub fn allowed(&self, jurisdiction: Option<Jurisdiction>, explicit: ExplicitState) -> bool {
        let bits = self
            .allowed_bits
            .get(slot_of(jurisdiction))
            .copied()
            .unwrap_or(0);
        bits & (1 << explicit as u8) != 0
    }

    /// [`DecisionTable::allowed`] as a bit (0 or 1), for an explicit state given as its
    /// code (none 0, allowed 1, denied 2): the batch loop's table read.
    #[inline(always)]
    pub fn allowed_bit(&self, jurisdiction: Option<Jurisdiction>, state_code: u64) -> u64 {
        let bits = self
            .allowed_bits
            .get(slot_of(jurisdiction))
            .copied()
            .unwrap_or(0);
        (u64::from(bits) >> state_code) & 1
    }

    /// The times between which a table resolved at `at` stays the same: from the first
    /// (inclusive) to the second (exclusive, `None`: for ever). The rule depends on time
    /// only through which policy version is in force and each opt-out rule's deadline, so
    /// every such instant in the history is a boundary.
    pub fn unchanged_between(
        policies: &PolicyHistory,
        at: Timestamp,
    ) -> (Timestamp, Option<Timestamp>) {
        let mut from = Timestamp::MIN;
        let mut until: Option<Timestamp> = None;
        let mut boundary = |instant: Timestamp| {
            if instant <= at {
                from = from.max(instant);
            } else {
                until = Some(until.map_or(instant, |until| until.min(instant)));
            }
        };
        for version in policies.versions() {
            boundary(version.effective_from);
            for purpose in version.purposes.values() {
                let rules = purpose.rules.values().chain([&purpose.default_rule]);
                for rule in rules {
                    if let Rule::OptOut {
                        notified_at,
                        default_effective_from,
                    } = rule
                    {
                        boundary(*notified_at);
                        boundary(*default_effective_from);
                    }
                }
            }
        }
        (from, until)
    }

    pub fn basis(&self, jurisdiction: Option<Jurisdiction>, explicit: ExplicitState) -> Basis {
        self.bases
            .get(slot_of(jurisdiction))
            .and_then(|bases| bases.get(explicit as usize))
            .copied()
            .unwrap_or(Basis::UnknownJurisdiction)
    }

    /// Whether an explicit choice can change any answer (false when every jurisdiction is
    /// excluded or unknown, or no policy is in force).
    pub fn explicit_matters(&self) -> bool {
        self.allowed_bits
            .iter()
            .any(|bits| (bits >> 1) & 1 != (bits >> 2) & 1)
    }
}

#[inline]
fn slot_of(jurisdiction: Option<Jurisdiction>) -> usize {
    match jurisdiction {
        None => MISSING_SLOT,
        Some(code) => {
            let [first, second] = code.as_bytes();
            usize::from(first.wrapping_sub(b'A')) * 26 + usize::from(second.wrapping_sub(b'A'))
        }
    }
}

fn jurisdiction_of_slot(slot: usize) -> Option<Jurisdiction> {
    if slot >= MISSING_SLOT {
        return None;
    }
    let first = b'A' + u8::try_from(slot / 26).unwrap_or(0);
    let second = b'A' + u8::try_from(slot % 26).unwrap_or(0);
    Jurisdiction::parse(std::str::from_utf8(&[first, second]).unwrap_or("")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use optout_core::PolicyDocument;

    #[test]
    fn table_follows_the_default_policy() {
        let policies = PolicyHistory::from_versions([PolicyDocument::default_policy()]).unwrap();
        let purpose = Purpose::new("ai_training").unwrap();
        let after = DecisionTable::new(
            &policies,
            &purpose,
            Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap(),
        );
        let us = Jurisdiction::parse("US").ok();
        let de = Jurisdiction::parse("DE").ok();
        assert!(after.allowed(us, ExplicitState::None));
        assert!(!after.allowed(us, ExplicitState::Denied));
        assert!(!after.allowed(de, ExplicitState::None));
        assert!(after.allowed(de, ExplicitState::Allowed));
        assert!(!after.allowed(None, ExplicitState::Allowed));
        assert_eq!(
            after.basis(None, ExplicitState::Allowed),
            Basis::UnknownJurisdiction
        );
        assert!(!after.allowed(Jurisdiction::parse("XX").ok(), ExplicitState::Allowed));
        let before = DecisionTable::new(
            &policies,
            &purpose,
            Timestamp::parse_rfc3339("2023-10-29T23:59:59Z").unwrap(),
        );
        assert_eq!(before.basis(us, ExplicitState::None), Basis::BeforeDeadline);
        assert!(before.allowed(us, ExplicitState::Allowed));
        assert!(before.explicit_matters());
    }
}
