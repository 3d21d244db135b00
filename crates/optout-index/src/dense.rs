//! `DenseStates`: every member's explicit state as 2 bits per id over one id range, so a
//! batch check reads one word per member instead of searching two compressed bitmaps.
//!
//! The Roaring bitmaps of [`ExplicitSet`](crate::ExplicitSet) stay the source of truth
//! (they are what snapshots, checkpoints and exports use); this layout is an accelerator
//! built from them when batch checks make it worthwhile and the ids are dense enough (see
//! [`DenseLimits`]), kept in step on every change, and dropped when a change would take
//! it beyond its limits. Ids outside the range have no explicit choice, so any `u64` id
//! can be asked about.
//!
//! Why: a lookup in a Roaring bitmap is a search over container keys and then a binary
//! search in a container, each step waiting on the previous load. At 100M ids that is
//! several cache and TLB misses in a chain per check; here it is one independent load,
//! and the loads of a batch overlap (bench/index.md has the figures).

use roaring::RoaringTreemap;

/// Ids per 64-bit word (2 bits each).
const IDS_PER_WORD: u64 = 32;

/// The 2-bit codes, the same numbers as `ExplicitState`: none 0, allowed 1, denied 2.
const STATE_ALLOWED: u64 = 1;
const STATE_DENIED: u64 = 2;

/// When a dense layout is built and kept. Memory is `span / 4` bytes (2 bits per id of the
/// range from the lowest to the highest id with a choice, plus growth room), on top of the
/// bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseLimits {
    /// The widest id range covered (default 2^32 ids: 1 GiB).
    pub span_ids_max: u64,
    /// The most ids in the range per member with a choice (default 32: at least 1 in 32
    /// ids has a choice, so the layout costs at most 8 bytes per such member; at the
    /// benchmark's 8% it costs 3.1).
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
            span_ids_per_member_max: 32,
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
}

impl DenseStates {
    /// Builds from the bitmaps (`allowed` ⊆ `chosen`), or `None` when the limits say no.
    pub(crate) fn build(
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

    /// Records `id`'s state (`None`: no choice). `members` gives how many members have a
    /// choice after the change (asked only when the range must grow: counting is not
    /// free). Returns false when `id` is outside the range and the range cannot grow to it
    /// within the limits: the layout must then be dropped.
    pub(crate) fn set(
        &mut self,
        id: u64,
        state: Option<bool>,
        members: impl FnOnce() -> u64,
        limits: &DenseLimits,
    ) -> bool {
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
            if !self.grow_to(word, members(), limits) {
                return false;
            }
        }
        self.xor_bits(id, self.state_code(id) ^ code);
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
        assert!(dense.set(base + 40, Some(true), || 3, &limits));
        assert_eq!(dense.state_code(base + 40), 1);
        assert!(
            dense.set(base + 500, Some(false), || 4, &limits),
            "grows up"
        );
        assert!(
            dense.set(base - 200, Some(true), || 5, &limits),
            "grows down"
        );
        assert_eq!(dense.state_code(base + 500), 2);
        assert_eq!(dense.state_code(base - 200), 1);
        assert_eq!(dense.state_code(base + 3), 1, "kept across growth");
        assert!(dense.set(base + 3, None, || 4, &limits));
        assert_eq!(dense.state_code(base + 3), 0);
        assert!(
            !dense.set(u64::MAX, Some(false), || 5, &limits),
            "beyond the span limit: the caller drops the layout"
        );
        assert!(
            dense.set(u64::MAX, None, || 5, &limits),
            "nothing to record"
        );
        assert!(
            !dense.set(base + 6000, Some(false), || 5, &limits),
            "beyond 1000 ids per member"
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
