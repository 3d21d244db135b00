//! `MemberSet`: the members whose rows a gate or verify run saw, collected on the hot path.
//!
//! Ids arrive in no order, and inserting each into a Roaring treemap costs a container
//! search and, in array containers, a memmove of the container's tail. Each worker instead
//! sets one bit in a plain bitset indexed by id, grown on demand up to `DENSE_IDS_MAX` ids
//! (32 MiB); larger ids go to a treemap. At the end the workers' sets are merged and turned
//! into the treemap the manifest's member file and the retraction list are written from.

use roaring::{RoaringBitmap, RoaringTreemap};

/// Ids below this are kept in the bitset: 2^28 ids, 32 MiB.
const DENSE_IDS_MAX: u64 = 1 << 28;
/// The bitset's first allocation, in words (8 KiB).
const DENSE_WORDS_MIN: usize = 1024;

#[derive(Default)]
pub struct MemberSet {
    /// Bit `id % 64` of word `id / 64` is set when member `id` is in the set.
    dense: Vec<u64>,
    /// Ids at or above `DENSE_IDS_MAX`.
    sparse: RoaringTreemap,
}

impl std::fmt::Debug for MemberSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSet")
            .field("members", &self.len())
            .finish()
    }
}

impl MemberSet {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn insert(&mut self, id: u64) {
        if id >= DENSE_IDS_MAX {
            self.sparse.insert(id);
            return;
        }
        let word = (id >> 6) as usize;
        if word >= self.dense.len() {
            self.grow(word);
        }
        if let Some(bits) = self.dense.get_mut(word) {
            *bits |= 1 << (id & 63);
        }
    }

    #[cold]
    fn grow(&mut self, word: usize) {
        let words_max = (DENSE_IDS_MAX / 64) as usize;
        let words = (word + 1)
            .next_power_of_two()
            .clamp(DENSE_WORDS_MIN, words_max);
        self.dense.resize(words, 0);
    }

    /// Adds every member of `other`.
    pub fn merge(&mut self, mut other: MemberSet) {
        if other.dense.len() > self.dense.len() {
            std::mem::swap(&mut self.dense, &mut other.dense);
        }
        for (mine, theirs) in self.dense.iter_mut().zip(&other.dense) {
            *mine |= theirs;
        }
        self.sparse |= other.sparse;
    }

    pub fn len(&self) -> u64 {
        let dense: u64 = self
            .dense
            .iter()
            .map(|bits| u64::from(bits.count_ones()))
            .sum();
        dense + self.sparse.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_treemap(self) -> RoaringTreemap {
        let bytes: Vec<u8> = self
            .dense
            .iter()
            .flat_map(|bits| bits.to_le_bytes())
            .collect();
        // The dense ids are all below 2^32: one partition of the treemap.
        let low = RoaringBitmap::from_lsb0_bytes(0, &bytes);
        let mut members = if low.is_empty() {
            RoaringTreemap::new()
        } else {
            RoaringTreemap::from_bitmaps([(0u32, low)])
        };
        members |= self.sparse;
        members
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Dense, sparse and merged sets hold exactly the ids inserted, as the treemap would.
    #[test]
    fn member_set_matches_a_treemap() {
        let ids = [
            0u64,
            1,
            63,
            64,
            65_535,
            65_536,
            DENSE_IDS_MAX - 1,
            DENSE_IDS_MAX,
            u64::MAX,
            40_000_000,
            7,
        ];
        let mut left = MemberSet::new();
        let mut right = MemberSet::new();
        let mut expected = RoaringTreemap::new();
        for (index, id) in ids.iter().copied().enumerate() {
            expected.insert(id);
            if index % 2 == 0 {
                left.insert(id);
            } else {
                right.insert(id);
            }
        }
        right.insert(1);
        left.merge(right);
        assert_eq!(left.len(), expected.len());
        assert_eq!(left.into_treemap(), expected);
        assert!(MemberSet::new().is_empty());
        assert_eq!(MemberSet::new().into_treemap(), RoaringTreemap::new());
    }
}
