//! `DenseStates`: every member's explicit state as 2 bits per id over one id range, so a
//! batch check reads one word per member instead of searching two compressed bitmaps.
//!
//! [`ExplicitSet`](crate::ExplicitSet) builds it from its Roaring bitmaps when batch
//! checks make it worthwhile and the ids are dense enough (see [`DenseLimits`]), then
//! keeps it as its only copy, changed in place, until a change would take it beyond its
//! limits (bitmaps again). Snapshots, checkpoints and exports get bitmaps built from it
//! ([`DenseStates::ids_in_state`]). Ids outside the range have no explicit choice, so any
//! `u64` id can be asked about.
//!
//! Why: a lookup in a Roaring bitmap is a search over container keys and then a binary
//! search in a container, each step waiting on the previous load. At 100M ids that is
//! several cache and TLB misses in a chain per check; here it is one independent load,
//! and the loads of a batch overlap (bench/index.md has the figures).

use roaring::RoaringTreemap;

use crate::explicit::push_or_insert;

/// Ids per 64-bit word (2 bits each).
const IDS_PER_WORD: u64 = 32;

/// The 2-bit codes, the same numbers as `ExplicitState`: none 0, allowed 1, denied 2.
pub(crate) const STATE_ALLOWED: u64 = 1;
pub(crate) const STATE_DENIED: u64 = 2;

/// When a dense layout is built and kept. Memory is `span / 4` bytes (2 bits per id of the
/// range from the lowest to the highest id with a choice, plus growth room); once in use
/// it replaces the bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseLimits {
    /// The widest id range covered (default 2^32 ids: 1 GiB).
    pub span_ids_max: u64,
    /// The most ids in the range per member with a choice (default 16: at least 1 in 16
    /// ids has a choice, so the layout costs at most 4 bytes per such member, growth room
    /// included; at the benchmark's 8% it costs 3.3). Sparser sets keep the bitmaps
    /// (about 2.1-2.4 bytes per member), whose checks are slower.
    pub span_ids_per_member_max: u64,
    /// The layout is built once this many ids, at least, have been checked through the
    /// bitmaps since the set last changed shape (default 4096), and also not before the
    /// ids checked reach 1/16 of the members with a choice: building costs about as much
    /// as checking that many ids through the bitmaps, so it pays off only for a set that
    /// serves many checks.
    pub checked_ids_before_build_min: u64,
}

impl Default for DenseLimits {
    fn default() -> Self {
        DenseLimits {
            span_ids_max: 1 << 32,
            span_ids_per_member_max: 16,
            checked_ids_before_build_min: 4096,
        }
    }
}

impl DenseLimits {
    /// Whether a range of `span` ids for `members` members with a choice is within limits.
    fn allows(&self, span: u64, members: u64) -> bool {
        span <= self.span_ids_max && span <= members.saturating_mul(self.span_ids_per_member_max)
    }

    /// Ids to check through the bitmaps before building for a set of `members`.
    pub(crate) fn checked_ids_before_build(&self, members: u64) -> u64 {
        self.checked_ids_before_build_min.max(members / 16)
    }
}

/// 2 bits per id for the ids `first_word * 32 ..` `(first_word + words.len()) * 32`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenseStates {
    first_word: u64,
    words: Vec<u64>,
    /// Ids with a non-zero state.
    members: u64,
}

impl DenseStates {
    /// Builds from the bitmaps (`allowed` ⊆ `chosen`), or `None` when the limits say no.
    pub fn build(
        chosen: &RoaringTreemap,
        allowed: &RoaringTreemap,
        limits: &DenseLimits,
    ) -> Option<DenseStates> {
        let members = chosen.len();
        let (Some(min), Some(max)) = (chosen.min(), chosen.max()) else {
            return None;
        };
        let first_word = min / IDS_PER_WORD;
        let needed_words = max / IDS_PER_WORD - first_word + 1;
        if !limits.allows(needed_words.saturating_mul(IDS_PER_WORD), members) {
            return None;
        }
        // Room to grow upwards by 1/16: new members tend to get new, higher ids.
        let words_len = grown_len(needed_words, needed_words / 16, first_word, limits, members);
        let mut dense = DenseStates {
            first_word,
            words: vec![0; usize::try_from(words_len).ok()?],
            members,
        };
        for id in chosen {
            dense.or_bits(id, STATE_DENIED);
        }
        // Denied (2) becomes allowed (1).
        for id in allowed {
            dense.xor_bits(id, STATE_DENIED ^ STATE_ALLOWED);
        }
        Some(dense)
    }

    /// The state code of `id`: 0 no choice, 1 allowed, 2 denied.
    #[inline(always)]
    pub fn state_code(&self, id: u64) -> u64 {
        let word = (id / IDS_PER_WORD).wrapping_sub(self.first_word);
        let word = usize::try_from(word)
            .ok()
            .and_then(|word| self.words.get(word))
            .copied()
            .unwrap_or(0);
        (word >> ((id % IDS_PER_WORD) * 2)) & 3
    }

    /// How many ids have a choice.
    pub fn members(&self) -> u64 {
        self.members
    }

    /// The ids whose state code passes `wanted` (never asked about code 0), in a bitmap.
    pub fn ids_in_state(&self, wanted: impl Fn(u64) -> bool) -> RoaringTreemap {
        // Bit 2k of `mask` set when slot k's code is wanted; codes are 1 and 2 only.
        let mask = |word: u64| {
            let low = word & 0x5555_5555_5555_5555;
            let high = (word >> 1) & 0x5555_5555_5555_5555;
            let mut mask = 0;
            if wanted(STATE_ALLOWED) {
                mask |= low & !high;
            }
            if wanted(STATE_DENIED) {
                mask |= high & !low;
            }
            mask
        };
        let ids = self.words.iter().enumerate().flat_map(|(index, &word)| {
            let base = (self.first_word + index as u64) * IDS_PER_WORD;
            let mut bits = if word == 0 { 0 } else { mask(word) };
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let slot = u64::from(bits.trailing_zeros()) / 2;
                bits &= bits - 1;
                Some(base + slot)
            })
        });
        // Ascending ids: the bitmap's append path.
        let mut bitmap = RoaringTreemap::new();
        for id in ids {
            push_or_insert(&mut bitmap, id);
        }
        bitmap
    }

    /// Bytes of the layout.
    pub fn bytes(&self) -> usize {
        self.words.len() * std::mem::size_of::<u64>()
    }

    /// The ids covered (including room to grow), as `(first, count)`.
    pub fn range(&self) -> (u64, u64) {
        (
            self.first_word * IDS_PER_WORD,
            self.words.len() as u64 * IDS_PER_WORD,
        )
    }

    /// Records `id`'s state (`None`: no choice). Returns false, changing nothing, when `id`
    /// is outside the range and the range cannot grow to it within the limits: the caller
    /// must then hold the set some other way.
    pub(crate) fn set(&mut self, id: u64, state: Option<bool>, limits: &DenseLimits) -> bool {
        let code = match state {
            None => 0,
            Some(true) => STATE_ALLOWED,
            Some(false) => STATE_DENIED,
        };
        let word = id / IDS_PER_WORD;
        if word < self.first_word || word - self.first_word >= self.words.len() as u64 {
            if code == 0 {
                return true; // outside the range nobody has a choice already
            }
            // A new member: the limits are judged with it counted.
            if !self.grow_to(word, self.members + 1, limits) {
                return false;
            }
        }
        let old = self.state_code(id);
        match (old, code) {
            (0, 0) => return true,
            (0, _) => self.members += 1,
            (_, 0) => self.members -= 1,
            _ => {}
        }
        self.xor_bits(id, old ^ code);
        true
    }

    /// Extends the range to cover `word`, with room for more of the same.
    fn grow_to(&mut self, word: u64, members: u64, limits: &DenseLimits) -> bool {
        let len = self.words.len() as u64;
        let slack = len / 8;
        if word < self.first_word {
            let end = self.first_word + len;
            let needed = end - word;
            if !limits.allows(needed.saturating_mul(IDS_PER_WORD), members) {
                return false;
            }
            let room = slack
                .min(word)
                .min(span_words_max(limits, members).saturating_sub(needed));
            let first_word = word - room;
            let Ok(prepend) = usize::try_from(needed + room - len) else {
                return false;
            };
            let mut words = vec![0; prepend];
            words.extend_from_slice(&self.words);
            self.first_word = first_word;
            self.words = words;
        } else {
            let needed = word - self.first_word + 1;
            if !limits.allows(needed.saturating_mul(IDS_PER_WORD), members) {
                return false;
            }
            let grown = grown_len(needed, slack, self.first_word, limits, members);
            let Ok(grown) = usize::try_from(grown) else {
                return false;
            };
            self.words.resize(grown, 0);
        }
        true
    }

    #[inline]
    fn or_bits(&mut self, id: u64, code: u64) {
        if let Some(word) = self.word_mut(id) {
            *word |= code << ((id % IDS_PER_WORD) * 2);
        }
    }

    #[inline]
    fn xor_bits(&mut self, id: u64, code: u64) {
        if let Some(word) = self.word_mut(id) {
            *word ^= code << ((id % IDS_PER_WORD) * 2);
        }
    }

    #[inline]
    fn word_mut(&mut self, id: u64) -> Option<&mut u64> {
        let word = (id / IDS_PER_WORD).wrapping_sub(self.first_word);
        usize::try_from(word)
            .ok()
            .and_then(|word| self.words.get_mut(word))
    }
}

/// The most words the limits allow for `members` members with a choice.
fn span_words_max(limits: &DenseLimits, members: u64) -> u64 {
    (limits.span_ids_max / IDS_PER_WORD)
        .min(members.saturating_mul(limits.span_ids_per_member_max) / IDS_PER_WORD)
}

/// `needed` words from `first_word` plus up to `room` more, as far as the limits and the
/// id space allow.
fn grown_len(needed: u64, room: u64, first_word: u64, limits: &DenseLimits, members: u64) -> u64 {
    let words_max = span_words_max(limits, members).min(u64::MAX / IDS_PER_WORD - first_word + 1);
    needed.saturating_add(room).min(words_max).max(needed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bitmaps(pairs: &[(u64, bool)]) -> (RoaringTreemap, RoaringTreemap) {
        let chosen = pairs.iter().map(|&(id, _)| id).collect();
        let allowed = pairs
            .iter()
            .filter(|&&(_, allowed)| allowed)
            .map(|&(id, _)| id)
            .collect();
        (chosen, allowed)
    }

    #[test]
    fn build_and_set_follow_the_bitmaps_across_growth() {
        let base = 5 << 32;
        let (chosen, allowed) = bitmaps(&[(base + 3, true), (base + 40, false), (base + 95, true)]);
        let limits = DenseLimits {
            span_ids_per_member_max: 1000,
            ..DenseLimits::default()
        };
        let mut dense = DenseStates::build(&chosen, &allowed, &limits).unwrap();
        assert_eq!(dense.state_code(base + 3), 1);
        assert_eq!(dense.state_code(base + 40), 2);
        assert_eq!(dense.state_code(base + 95), 1);
        assert_eq!(dense.state_code(base + 4), 0);
        assert_eq!(dense.state_code(0), 0, "below the range");
        assert_eq!(dense.state_code(u64::MAX), 0, "above the range");
        assert!(dense.set(base + 40, Some(true), &limits));
        assert_eq!(dense.state_code(base + 40), 1);
        assert!(dense.set(base + 500, Some(false), &limits), "grows up");
        assert!(dense.set(base - 200, Some(true), &limits), "grows down");
        assert_eq!(dense.state_code(base + 500), 2);
        assert_eq!(dense.state_code(base - 200), 1);
        assert_eq!(dense.state_code(base + 3), 1, "kept across growth");
        assert!(dense.set(base + 3, None, &limits));
        assert_eq!(dense.state_code(base + 3), 0);
        assert!(
            !dense.set(u64::MAX, Some(false), &limits),
            "beyond the span limit: the caller drops the layout"
        );
        assert!(dense.set(u64::MAX, None, &limits), "nothing to record");
        assert!(
            !dense.set(base + 6000, Some(false), &limits),
            "beyond 1000 ids per member"
        );
    }

    #[test]
    fn counts_members_and_gives_back_the_bitmaps() {
        let base = (1 << 32) - 40;
        let pairs = [
            (base, true),
            (base + 31, false),
            (base + 32, true),
            (base + 77, false),
        ];
        let (chosen, allowed) = bitmaps(&pairs);
        let limits = DenseLimits {
            span_ids_per_member_max: 1000,
            ..DenseLimits::default()
        };
        let mut dense = DenseStates::build(&chosen, &allowed, &limits).unwrap();
        assert_eq!(dense.members(), 4);
        assert_eq!(dense.ids_in_state(|code| code != 0), chosen);
        assert_eq!(dense.ids_in_state(|code| code == STATE_ALLOWED), allowed);
        assert_eq!(
            dense.ids_in_state(|code| code == STATE_DENIED),
            &chosen - &allowed
        );
        assert!(dense.set(base + 31, Some(true), &limits), "a flip");
        assert!(dense.set(base + 5, None, &limits), "removing nobody");
        assert_eq!(dense.members(), 4);
        assert!(dense.set(base + 32, None, &limits));
        assert_eq!(dense.members(), 3);
        assert!(dense.set(base + 1000, Some(false), &limits), "grows");
        assert_eq!(dense.members(), 4);
        assert!(!dense.set(u64::MAX, Some(true), &limits));
        assert_eq!(dense.members(), 4, "a refused change changes nothing");
        assert_eq!(
            dense
                .ids_in_state(|code| code == STATE_ALLOWED)
                .iter()
                .collect::<Vec<_>>(),
            [base, base + 31]
        );
        assert_eq!(
            dense
                .ids_in_state(|code| code == STATE_DENIED)
                .iter()
                .collect::<Vec<_>>(),
            [base + 77, base + 1000]
        );
    }

    #[test]
    fn limits_refuse_sparse_and_huge_ranges() {
        let limits = DenseLimits::default();
        let (chosen, allowed) = bitmaps(&[(1, true), (u64::MAX, false)]);
        assert!(DenseStates::build(&chosen, &allowed, &limits).is_none());
        let sparse: Vec<_> = (0..100).map(|i| (i * 64, false)).collect();
        let (chosen, allowed) = bitmaps(&sparse);
        assert!(DenseStates::build(&chosen, &allowed, &limits).is_none());
        let dense: Vec<_> = (0..100).map(|i| (i * 16, i % 3 == 0)).collect();
        let (chosen, allowed) = bitmaps(&dense);
        let built = DenseStates::build(&chosen, &allowed, &limits).unwrap();
        assert!(built.bytes() <= 100 * 32 / 4);
        let empty = RoaringTreemap::new();
        assert!(DenseStates::build(&empty, &empty, &limits).is_none());
    }
}
