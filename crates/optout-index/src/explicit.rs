//! `ExplicitSet`: who made an explicit choice, and which.
//!
//! Stored as two 64-bit Roaring bitmaps: `chosen` (every member with an explicit choice)
//! and `allowed` (the subset whose latest choice allows). Most members checked have no
//! choice, so a check is usually one bitmap lookup (`chosen`), and a second only for the
//! few who chose. The denied set (`chosen - allowed`) is what exports write; it is
//! computed once, when first asked for, and forgotten on the next change.
//!
//! For large batch checks the set also keeps, once checks make it worthwhile, a
//! [`DenseStates`] layout (2 bits per id) built from the bitmaps and updated with them;
//! see `dense.rs` and [`DenseLimits`] for when.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use optout_core::MemberId;
use roaring::RoaringTreemap;

use crate::dense::{DenseLimits, DenseStates};

#[derive(Debug, Default)]
pub struct ExplicitSet {
    chosen: RoaringTreemap,
    allowed: RoaringTreemap,
    denied: OnceLock<RoaringTreemap>,
    /// Built on demand; `Some(None)`: the limits said no for the set as it was.
    dense: OnceLock<Option<DenseStates>>,
    dense_limits: DenseLimits,
    /// Ids checked through the bitmaps while no dense layout was built.
    bitmap_checked_ids: AtomicU64,
}

impl Clone for ExplicitSet {
    /// Clones the bitmaps; the copy builds its own dense layout if its checks call for one.
    fn clone(&self) -> Self {
        ExplicitSet {
            chosen: self.chosen.clone(),
            allowed: self.allowed.clone(),
            denied: self.denied.clone(),
            dense: OnceLock::new(),
            dense_limits: self.dense_limits,
            bitmap_checked_ids: AtomicU64::new(0),
        }
    }
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
            ..Self::default()
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
        self.update_dense(member.get(), Some(allowed));
    }

    pub fn remove(&mut self, member: MemberId) {
        self.chosen.remove(member.get());
        self.allowed.remove(member.get());
        self.denied = OnceLock::new();
        self.update_dense(member.get(), None);
    }

    /// Keeps the dense layout in step with a change of `id` already made to the bitmaps.
    fn update_dense(&mut self, id: u64, state: Option<bool>) {
        let chosen = &self.chosen;
        let keep = match self.dense.get_mut() {
            None => return,
            Some(Some(dense)) => dense.set(id, state, || chosen.len(), &self.dense_limits),
            // Refused for the set as it was; decide again for the set as it is.
            Some(None) => false,
        };
        if !keep {
            self.dense = OnceLock::new();
        }
    }

    /// The limits deciding whether a dense layout is built and kept.
    pub fn dense_limits(&self) -> DenseLimits {
        self.dense_limits
    }

    /// Changes the limits; a dense layout already built is dropped.
    pub fn set_dense_limits(&mut self, limits: DenseLimits) {
        self.dense_limits = limits;
        self.dense = OnceLock::new();
    }

    /// The dense layout, building it now if the limits allow (whatever the checks so far).
    pub fn prepare_dense(&self) -> Option<&DenseStates> {
        self.dense
            .get_or_init(|| DenseStates::build(&self.chosen, &self.allowed, &self.dense_limits))
            .as_ref()
    }

    /// The dense layout, if built.
    pub fn dense(&self) -> Option<&DenseStates> {
        self.dense.get().and_then(Option::as_ref)
    }

    /// Bytes of the dense layout (0 when none is built).
    pub fn dense_bytes(&self) -> usize {
        self.dense().map_or(0, DenseStates::bytes)
    }

    /// The dense layout for a batch of `ids` checks: built once the ids checked through
    /// the bitmaps make it worthwhile ([`DenseLimits::checked_ids_before_build_min`]).
    pub(crate) fn dense_for_batch(&self, ids: usize) -> Option<&DenseStates> {
        if let Some(built) = self.dense.get() {
            return built.as_ref();
        }
        let ids = ids as u64;
        let checked = self.bitmap_checked_ids.fetch_add(ids, Ordering::Relaxed) + ids;
        if checked < self.dense_limits.checked_ids_before_build(self.len()) {
            return None;
        }
        self.prepare_dense()
    }

    /// The member's state code through the bitmaps: 0 no choice, 1 allowed, 2 denied.
    #[inline]
    pub(crate) fn bitmap_state_code(&self, id: u64) -> u64 {
        if !self.chosen.contains(id) {
            0
        } else if self.allowed.contains(id) {
            1
        } else {
            2
        }
    }

    /// The member's latest explicit choice, if any: one read of the dense layout when it
    /// is built, else the bitmaps.
    #[inline]
    pub fn get(&self, member: MemberId) -> Option<bool> {
        let code = match self.dense() {
            Some(dense) => dense.state_code(member.get()),
            None => self.bitmap_state_code(member.get()),
        };
        match code {
            0 => None,
            code => Some(code == 1),
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
