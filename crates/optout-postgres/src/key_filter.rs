//! A Bloom filter of the ledger's idempotency keys, kept by the writer so that a new key
//! (nearly every key) costs no round trip to PostgreSQL. The group-commit writer asks the
//! log about each keyed choice one at a time; over a network each question is a round
//! trip that the embedded SQLite backend does not pay, and 10 000 of them took longer than
//! committing the 10 000 events.
//!
//! "Not in the filter" is certain, because the filter holds every key of the ledger: all
//! keys found when the writer starts (one streaming scan of the unique key index) and
//! every key the writer commits after that. No other process adds keys while the writer
//! holds the ledger's lock. "In the filter" may be wrong (about 1% at 6 million keys per
//! 8 MiB), and then the database answers, as it would without a filter.

use std::hash::{DefaultHasher, Hash, Hasher};

use optout_core::splitmix::mix64;
use optout_core::MemberId;

/// Probes per key.
const PROBES: u64 = 4;

pub(crate) struct KeyFilter {
    bits: Vec<u64>,
    bit_count: u64,
}

impl KeyFilter {
    /// A filter of `bytes` bytes (at least one word).
    pub(crate) fn new(bytes: usize) -> Self {
        let words = (bytes / 8).max(1);
        KeyFilter {
            bits: vec![0; words],
            bit_count: words as u64 * 64,
        }
    }

    pub(crate) fn insert(&mut self, member: MemberId, key: &str) {
        for bit in self.probes(member, key) {
            if let Some(word) = self.bits.get_mut(word_index(bit)) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    /// False only if the key was never inserted.
    pub(crate) fn may_contain(&self, member: MemberId, key: &str) -> bool {
        self.probes(member, key).all(|bit| {
            self.bits
                .get(word_index(bit))
                .is_none_or(|word| word & (1 << (bit % 64)) != 0)
        })
    }

    /// Double hashing: probe i is h1 + i * h2 (h2 odd), modulo the bit count.
    fn probes(&self, member: MemberId, key: &str) -> impl Iterator<Item = u64> {
        let mut hasher = DefaultHasher::new();
        member.get().hash(&mut hasher);
        key.hash(&mut hasher);
        let first = hasher.finish();
        let second = mix64(first) | 1;
        let bit_count = self.bit_count;
        (0..PROBES).map(move |probe| first.wrapping_add(probe.wrapping_mul(second)) % bit_count)
    }
}

fn word_index(bit: u64) -> usize {
    usize::try_from(bit / 64).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every inserted key is reported (no false negatives, which would write a second event
    // for a retried request), and few others are.
    #[test]
    fn inserted_keys_are_always_found_and_others_rarely() {
        let mut filter = KeyFilter::new(64 * 1024);
        for member in 0..40_000u64 {
            filter.insert(MemberId(member), &format!("key-{member}"));
        }
        for member in 0..40_000u64 {
            assert!(filter.may_contain(MemberId(member), &format!("key-{member}")));
        }
        let false_positives = (40_000..80_000u64)
            .filter(|member| filter.may_contain(MemberId(*member), &format!("key-{member}")))
            .count();
        // 524 288 bits for 40 000 keys, 4 probes: about 1.4% expected.
        assert!(false_positives < 1_200, "{false_positives} false positives");
    }

    #[test]
    fn a_tiny_filter_still_never_misses() {
        let mut filter = KeyFilter::new(0);
        for member in 0..1_000u64 {
            filter.insert(MemberId(member), "k");
        }
        assert!((0..1_000u64).all(|member| filter.may_contain(MemberId(member), "k")));
    }
}
