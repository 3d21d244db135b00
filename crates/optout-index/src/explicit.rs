//! `ExplicitSet`: who made an explicit choice, and which.
//!
//! Stored as two 64-bit Roaring bitmaps: `chosen` (every member with an explicit choice)
//! and `allowed` (the subset whose latest choice allows). Most members checked have no
//! choice, so a check is usually one bitmap lookup (`chosen`), and a second only for the
//! few who chose. The denied set (`chosen - allowed`) is what exports write; it is
//! computed once, when first asked for, and forgotten on the next change.

use std::sync::OnceLock;

use optout_core::MemberId;
use roaring::RoaringTreemap;

#[derive(Clone, Debug, Default)]
pub struct ExplicitSet {
    chosen: RoaringTreemap,
    allowed: RoaringTreemap,
    denied: OnceLock<RoaringTreemap>,
}

impl PartialEq for ExplicitSet {
    fn eq(&self, other: &Self) -> bool {
        self.chosen == other.chosen && self.allowed == other.allowed
    }
}

impl ExplicitSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from members in ascending order with their latest choice.
    pub fn from_sorted(latest: impl IntoIterator<Item = (MemberId, bool)>) -> Self {
        let mut set = Self::new();
        for (member, allowed) in latest {
            // Appending in order is the fast path of the bitmap; out of order falls back.
            push_or_insert(&mut set.chosen, member.get());
            if allowed {
                push_or_insert(&mut set.allowed, member.get());
            }
        }
        set
    }

    pub fn from_bitmaps(allowed: RoaringTreemap, denied: RoaringTreemap) -> Self {
        ExplicitSet {
            chosen: &allowed | &denied,
            allowed,
            denied: OnceLock::new(),
        }
    }

    pub fn set(&mut self, member: MemberId, allowed: bool) {
        self.chosen.insert(member.get());
        if allowed {
            self.allowed.insert(member.get());
        } else {
            self.allowed.remove(member.get());
        }
        self.denied = OnceLock::new();
    }

    pub fn remove(&mut self, member: MemberId) {
        self.chosen.remove(member.get());
        self.allowed.remove(member.get());
        self.denied = OnceLock::new();
    }

    /// The member's latest explicit choice, if any.
    #[inline]
    pub fn get(&self, member: MemberId) -> Option<bool> {
        if self.chosen.contains(member.get()) {
            Some(self.allowed.contains(member.get()))
        } else {
            None
        }
    }

    /// Members whose latest explicit choice allows.
    pub fn allowed(&self) -> &RoaringTreemap {
        &self.allowed
    }

    /// Members whose latest explicit choice denies.
    pub fn denied(&self) -> &RoaringTreemap {
        self.denied.get_or_init(|| &self.chosen - &self.allowed)
    }

    /// Members with an explicit choice.
    pub fn chosen(&self) -> &RoaringTreemap {
        &self.chosen
    }

    pub fn len(&self) -> u64 {
        self.chosen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chosen.is_empty()
    }

    /// Bytes of the stored bitmaps in their serialized (portable) form: a close measure of
    /// their size in memory.
    pub fn serialized_bytes(&self) -> usize {
        self.chosen.serialized_size() + self.allowed.serialized_size()
    }
}

fn push_or_insert(bitmap: &mut RoaringTreemap, value: u64) {
    if bitmap.try_push(value).is_err() {
        bitmap.insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_moves_a_member_between_allowed_and_denied() {
        let mut set = ExplicitSet::new();
        let big = MemberId(u64::MAX);
        set.set(big, false);
        assert_eq!(set.get(big), Some(false));
        assert!(set.denied().contains(big.get()));
        set.set(big, true);
        assert_eq!(set.get(big), Some(true));
        assert!(
            !set.denied().contains(big.get()),
            "the cached denied set is refreshed"
        );
        assert_eq!(set.len(), 1);
        assert_eq!(set.get(MemberId((1 << 32) + 1)), None);
        set.remove(big);
        assert!(set.is_empty());
    }

    #[test]
    fn from_sorted_and_from_bitmaps_match_inserts() {
        let pairs = [
            (MemberId(1), true),
            (MemberId(5), false),
            (MemberId(1 << 33), true),
            (MemberId(u64::MAX), false),
        ];
        let built = ExplicitSet::from_sorted(pairs);
        let mut inserted = ExplicitSet::new();
        for (member, allowed) in pairs {
            inserted.set(member, allowed);
        }
        assert_eq!(built, inserted);
        let rebuilt = ExplicitSet::from_bitmaps(built.allowed().clone(), built.denied().clone());
        assert_eq!(rebuilt, built);
        assert_eq!(rebuilt.denied().iter().collect::<Vec<_>>(), [5, u64::MAX]);
    }
}
