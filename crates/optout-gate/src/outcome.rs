//! What happens to one row: kept, or dropped for a named reason, and the counts of each.
//!
//! The reasons follow the consent rule's own (`optout_index::Basis`), so a dataset's
//! counts say why members were left out in the rule's terms, plus the two that come from
//! the data rather than the rule: an id that is not a member id, and a jurisdiction that
//! is missing or not an assigned ISO 3166-1 code.

use std::collections::BTreeMap;

use optout_index::Basis;

/// A row's fate. The discriminant indexes [`RowCounts`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Verdict {
    Keep = 0,
    /// The member's latest choice at or before the cutoff said no.
    ExplicitOptOut = 1,
    /// No choice, and the jurisdiction's default is opt-in.
    NotOptedIn = 2,
    /// The jurisdiction is excluded from the purpose.
    ExcludedJurisdiction = 3,
    /// No choice, opt-out jurisdiction, cutoff before the deadline.
    BeforeDeadline = 4,
    /// Null id, or not an unsigned 64-bit integer.
    InvalidId = 5,
    /// Null, malformed or unassigned jurisdiction.
    MissingOrUnknownJurisdiction = 6,
    /// No policy version was in force at the cutoff.
    NoPolicyInForce = 7,
    /// The policy in force at the cutoff does not define the purpose.
    PurposeNotInPolicy = 8,
}

pub const VERDICTS: usize = 9;

impl Verdict {
    pub const ALL: [Verdict; VERDICTS] = [
        Verdict::Keep,
        Verdict::ExplicitOptOut,
        Verdict::NotOptedIn,
        Verdict::ExcludedJurisdiction,
        Verdict::BeforeDeadline,
        Verdict::InvalidId,
        Verdict::MissingOrUnknownJurisdiction,
        Verdict::NoPolicyInForce,
        Verdict::PurposeNotInPolicy,
    ];

    /// The verdict for a member the rule does not allow, from what the answer rests on.
    pub fn dropped_because(basis: Basis) -> Verdict {
        match basis {
            Basis::ExplicitChoice => Verdict::ExplicitOptOut,
            Basis::JurisdictionDefault => Verdict::NotOptedIn,
            Basis::BeforeDeadline => Verdict::BeforeDeadline,
            Basis::Excluded => Verdict::ExcludedJurisdiction,
            Basis::UnknownJurisdiction => Verdict::MissingOrUnknownJurisdiction,
            Basis::NoPolicyInForce => Verdict::NoPolicyInForce,
            Basis::PurposeNotInPolicy => Verdict::PurposeNotInPolicy,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Keep => "kept",
            Verdict::ExplicitOptOut => "explicit_opt_out",
            Verdict::NotOptedIn => "not_opted_in",
            Verdict::ExcludedJurisdiction => "excluded_jurisdiction",
            Verdict::BeforeDeadline => "before_deadline",
            Verdict::InvalidId => "invalid_id",
            Verdict::MissingOrUnknownJurisdiction => "missing_or_unknown_jurisdiction",
            Verdict::NoPolicyInForce => "no_policy_in_force",
            Verdict::PurposeNotInPolicy => "purpose_not_in_policy",
        }
    }

    #[inline]
    pub fn from_code(code: u8) -> Verdict {
        Verdict::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or(Verdict::InvalidId)
    }
}

/// Rows per verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    by_verdict: [u64; VERDICTS],
}

impl RowCounts {
    #[inline]
    pub fn add(&mut self, verdict: Verdict, rows: u64) {
        if let Some(count) = self.by_verdict.get_mut(verdict as usize) {
            *count += rows;
        }
    }

    pub fn merge(&mut self, other: &RowCounts) {
        for (mine, theirs) in self.by_verdict.iter_mut().zip(other.by_verdict) {
            *mine += theirs;
        }
    }

    pub fn get(&self, verdict: Verdict) -> u64 {
        self.by_verdict.get(verdict as usize).copied().unwrap_or(0)
    }

    pub fn rows_in(&self) -> u64 {
        self.by_verdict.iter().sum()
    }

    pub fn kept(&self) -> u64 {
        self.get(Verdict::Keep)
    }

    /// Dropped rows by reason name, every reason listed (zeros included).
    pub fn dropped_by_reason(&self) -> BTreeMap<String, u64> {
        Verdict::ALL
            .iter()
            .filter(|verdict| **verdict != Verdict::Keep)
            .map(|verdict| (verdict.name().to_string(), self.get(*verdict)))
            .collect()
    }
}
