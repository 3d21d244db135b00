//! `ExplicitSet`: who made an explicit choice, and which, as two disjoint 64-bit Roaring
//! bitmaps. The bitmaps are what is exported (portable Roaring) and what batch checks read.

use optout_core::MemberId;
use roaring::RoaringTreemap;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExplicitSet {
    allowed: RoaringTreemap,
    denied: RoaringTreemap,
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
            let target = if allowed {
                &mut set.allowed
            } else {
                &mut set.denied
            };
            if target.try_push(member.get()).is_ok() {
                continue;
            }
            target.insert(member.get());
        }
        set
    }

    pub fn set(&mut self, member: MemberId, allowed: bool) {
        let (add, remove) = if allowed {
            (&mut self.allowed, &mut self.denied)
        } else {
            (&mut self.denied, &mut self.allowed)
        };
        add.insert(member.get());
        remove.remove(member.get());
    }

    pub fn remove(&mut self, member: MemberId) {
        self.allowed.remove(member.get());
        self.denied.remove(member.get());
    }

    /// The member's latest explicit choice, if any.
    #[inline]
    pub fn get(&self, member: MemberId) -> Option<bool> {
        if self.allowed.contains(member.get()) {
            Some(true)
        } else if self.denied.contains(member.get()) {
            Some(false)
        } else {
            None
        }
    }

    pub fn allowed(&self) -> &RoaringTreemap {
        &self.allowed
    }

    pub fn denied(&self) -> &RoaringTreemap {
        &self.denied
    }

    pub fn from_bitmaps(allowed: RoaringTreemap, denied: RoaringTreemap) -> Self {
        ExplicitSet { allowed, denied }
    }

    /// Members with an explicit choice.
    pub fn len(&self) -> u64 {
        self.allowed.len() + self.denied.len()
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty() && self.denied.is_empty()
    }

    /// Bytes of the two bitmaps in their serialized (portable) form: a close measure of
    /// their size in memory.
    pub fn serialized_bytes(&self) -> usize {
        self.allowed.serialized_size() + self.denied.serialized_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_moves_a_member_between_bitmaps() {
        let mut set = ExplicitSet::new();
        let big = MemberId(u64::MAX);
        set.set(big, false);
        assert_eq!(set.get(big), Some(false));
        set.set(big, true);
        assert_eq!(set.get(big), Some(true));
        assert_eq!(set.len(), 1);
        assert_eq!(set.get(MemberId((1 << 32) + 1)), None);
        set.remove(big);
        assert!(set.is_empty());
    }

    #[test]
    fn from_sorted_matches_inserts() {
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
    }
}
