//! splitmix64: a small, fast, deterministic stream of well-mixed 64-bit numbers, and its
//! finaliser on its own. Not for secrets; for generated workloads, demo data, test
//! schedules and hashing keys into filters, where the same seed must give the same
//! numbers everywhere.

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser of `x` (the stream's output for state `x`): a cheap
/// deterministic scramble, e.g. of a sequence number.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The splitmix64 stream from a seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let out = mix64(self.0);
        self.0 = self.0.wrapping_add(GAMMA);
        out
    }

    /// Uniform enough in `0..bound` (0 for a bound of 0 or 1).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    /// Uniform enough in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_stream() {
        // The first outputs of splitmix64 seeded with 0 (Vigna's reference code).
        let mut stream = SplitMix64(0);
        assert_eq!(stream.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(stream.next(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(stream.next(), 0x06C4_5D18_8009_454F);
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
        let mut bounded = SplitMix64(7);
        for _ in 0..100 {
            assert!((3..=5).contains(&bounded.between(3, 5)));
            assert_eq!(bounded.below(1), 0);
        }
    }
}
