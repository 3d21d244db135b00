//! `ConsentFilter`: a snapshot laid out for the gate's hot loop.
//!
//! A row's verdict needs the member's explicit state (none, allowed, denied) and the
//! rule for the row's jurisdiction. The snapshot keeps explicit choices in Roaring
//! treemaps, where a lookup walks a B-tree and a container; the filter copies them into
//! the index's dense layout ([`DenseStates`]: two-bit states over the span of member ids
//! that have a choice; ids outside it have none), so a lookup is one word read from one
//! cache line. The decision table is flattened into one
//! byte per (jurisdiction slot, explicit state) holding the verdict, computed from
//! `DecisionTable::allowed` and `basis`, so the filter cannot disagree with the rule.
//! When the ids with choices spread over more than `DENSE_SPAN_IDS_MAX`, the filter
//! falls back to the treemaps.

use optout_core::{Jurisdiction, MemberId};
use optout_index::decision_table::ExplicitState;
use optout_index::{DenseLimits, DenseStates, ExplicitSet, Snapshot};

use crate::outcome::Verdict;

/// One slot per two-letter code (26 × 26) and one for a missing or malformed jurisdiction.
pub const JURISDICTION_SLOTS: usize = 26 * 26 + 1;
pub const MISSING_JURISDICTION: u16 = 26 * 26;
/// Span of the dense state array: 2^29 ids, 128 MiB at two bits an id (plus growth room
/// the gate does not use).
const DENSE_SPAN_IDS_MAX: u64 = 1 << 29;

/// The gate's dense layout: any density, as long as the ids with choices fit in
/// `DENSE_SPAN_IDS_MAX` (a run is short-lived; its memory is bounded by the span).
fn dense_states(explicit: &ExplicitSet) -> Option<DenseStates> {
    let limits = DenseLimits {
        span_ids_max: DENSE_SPAN_IDS_MAX,
        span_ids_per_member_max: u64::MAX,
        ..DenseLimits::default()
    };
    DenseStates::build(&explicit.chosen(), &explicit.allowed(), &limits)
}

pub struct ConsentFilter<'s> {
    explicit: &'s ExplicitSet,
    dense: Option<DenseStates>,
    /// `verdicts[slot * 3 + state]`, as `Verdict` codes.
    verdicts: Vec<u8>,
}

impl<'s> ConsentFilter<'s> {
    pub fn new(snapshot: &'s Snapshot) -> Self {
        let states = [
            ExplicitState::None,
            ExplicitState::Allowed,
            ExplicitState::Denied,
        ];
        let mut verdicts = Vec::with_capacity(JURISDICTION_SLOTS * 3);
        for slot in 0..JURISDICTION_SLOTS {
            let jurisdiction = jurisdiction_of_slot(slot);
            for state in states {
                let verdict = if snapshot.table.allowed(jurisdiction, state) {
                    Verdict::Keep
                } else {
                    Verdict::dropped_because(snapshot.table.basis(jurisdiction, state))
                };
                verdicts.push(verdict as u8);
            }
        }
        ConsentFilter {
            explicit: &snapshot.explicit,
            dense: dense_states(&snapshot.explicit),
            verdicts,
        }
    }

    /// The member's explicit state as an index (none 0, allowed 1, denied 2).
    #[inline]
    pub fn explicit_state(&self, id: u64) -> usize {
        match &self.dense {
            Some(dense) => dense.state_code(id) as usize,
            None => ExplicitState::from(self.explicit.get(MemberId(id))) as usize,
        }
    }

    /// The verdict for a valid member id in a jurisdiction slot.
    #[inline]
    pub fn verdict(&self, id: u64, slot: u16) -> Verdict {
        self.verdict_for_state(slot, self.explicit_state(id))
    }

    #[inline]
    pub fn verdict_for_state(&self, slot: u16, state: usize) -> Verdict {
        let code = self
            .verdicts
            .get(usize::from(slot) * 3 + state)
            .copied()
            .unwrap_or(Verdict::MissingOrUnknownJurisdiction as u8);
        Verdict::from_code(code)
    }

    /// Whether the dense state array is in use (false: treemap lookups).
    pub fn is_dense(&self) -> bool {
        self.dense.is_some()
    }
}

/// The slot of a two-letter code given as its two bytes (any case); malformed is missing.
#[inline]
pub fn slot_of_letters(first: u8, second: u8) -> u16 {
    if first.is_ascii_alphabetic() && second.is_ascii_alphabetic() {
        let first = u16::from(first.to_ascii_uppercase() - b'A');
        let second = u16::from(second.to_ascii_uppercase() - b'A');
        first * 26 + second
    } else {
        MISSING_JURISDICTION
    }
}

/// The slot of a jurisdiction as text: two letters, optionally surrounded by spaces.
#[inline]
pub fn slot_of_text(text: &str) -> u16 {
    match text.as_bytes() {
        [first, second] => slot_of_letters(*first, *second),
        _ => match Jurisdiction::parse(text) {
            Ok(code) => {
                let [first, second] = code.as_bytes();
                slot_of_letters(first, second)
            }
            Err(_) => MISSING_JURISDICTION,
        },
    }
}

pub fn jurisdiction_of_slot(slot: usize) -> Option<Jurisdiction> {
    if slot >= usize::from(MISSING_JURISDICTION) {
        return None;
    }
    let first = b'A' + u8::try_from(slot / 26).ok()?;
    let second = b'A' + u8::try_from(slot % 26).ok()?;
    Jurisdiction::parse(std::str::from_utf8(&[first, second]).ok()?).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn slots_round_trip_and_normalise_case() {
        assert_eq!(slot_of_text("de"), slot_of_text("DE"));
        assert_eq!(slot_of_text(" DE "), slot_of_text("DE"));
        assert_eq!(slot_of_text("D1"), MISSING_JURISDICTION);
        assert_eq!(slot_of_text(""), MISSING_JURISDICTION);
        assert_eq!(slot_of_text("DEU"), MISSING_JURISDICTION);
        for slot in 0..usize::from(MISSING_JURISDICTION) {
            let code = jurisdiction_of_slot(slot).unwrap();
            assert_eq!(usize::from(slot_of_text(code.as_str())), slot);
        }
    }

    #[test]
    fn dense_states_agree_with_the_treemaps() {
        let mut explicit = ExplicitSet::new();
        for (id, allowed) in [(5u64, true), (6, false), (1 << 20, true), (130, false)] {
            explicit.set(MemberId(id), allowed);
        }
        let dense = dense_states(&explicit).unwrap();
        for id in [0u64, 4, 5, 6, 7, 130, 131, 1 << 20, (1 << 20) + 1, u64::MAX] {
            assert_eq!(
                dense.state_code(id) as usize,
                ExplicitState::from(explicit.get(MemberId(id))) as usize,
                "id {id}"
            );
        }
        let mut spread = ExplicitSet::new();
        spread.set(MemberId(1), true);
        spread.set(MemberId(u64::MAX), false);
        assert!(dense_states(&spread).is_none());
    }
}
