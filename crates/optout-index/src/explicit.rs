//! `ExplicitSet`: who made an explicit choice, and which.
//!
//! Held in one of two layouts:
//!
//! - **Bitmaps**: two 64-bit Roaring bitmaps, `chosen` (every member with an explicit
//!   choice) and `allowed` (the subset whose latest choice allows). Compact at any
//!   density and for ids spread over the whole `u64` space, but a lookup is a chain of
//!   dependent searches. For large batch checks a [`DenseStates`] layout (2 bits per id)
//!   is built beside them on first need, when [`DenseLimits`] allow.
//! - **Dense**: the [`DenseStates`] layout alone. A set that has a dense layout switches
//!   to it at its next change (or at [`ExplicitSet::switch_to_dense`]) and drops the
//!   bitmaps, so a live index holds one copy: 2 bits per id of its range (at most
//!   `span_ids_per_member_max / 4` bytes per member with a choice). Snapshots, exports
//!   and checkpoints ask for bitmaps; they are built from the dense layout for that one
//!   use. A change the limits refuse (an id far outside the range) switches back.
//!
//! The denied set (`chosen - allowed`) is what exports write; for the bitmap layout it is
//! computed once, when first asked for, and forgotten on the next change.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use optout_core::MemberId;
use roaring::RoaringTreemap;

use crate::dense::{DenseLimits, DenseStates, STATE_ALLOWED, STATE_DENIED};

#[derive(Debug, Default)]
pub struct ExplicitSet {
    layout: Layout,
    dense_limits: DenseLimits,
}

#[derive(Debug)]
enum Layout {
    Bitmaps(Bitmaps),
    Dense(DenseStates),
}

impl Default for Layout {
    fn default() -> Self {
        Layout::Bitmaps(Bitmaps::default())
    }
}

#[derive(Debug, Default)]
struct Bitmaps {
    chosen: RoaringTreemap,
    allowed: RoaringTreemap,
    denied: OnceLock<RoaringTreemap>,
    /// Built on demand; `Some(None)`: the limits said no for the set as it was.
    dense: OnceLock<Option<DenseStates>>,
    /// Ids checked through the bitmaps while no dense layout was built.
    checked_ids: AtomicU64,
}

impl Bitmaps {
    fn new(chosen: RoaringTreemap, allowed: RoaringTreemap) -> Self {
        Bitmaps {
            chosen,
            allowed,
            ..Bitmaps::default()
        }
    }

    fn built_dense(&self) -> Option<&DenseStates> {
        self.dense.get().and_then(Option::as_ref)
    }

    /// Forgets what was derived from the bitmaps, after a change to them.
    fn changed(&mut self) {
        self.denied = OnceLock::new();
        self.dense = OnceLock::new();
    }
}

impl Clone for ExplicitSet {
    /// Clones the layout in use; a bitmap copy builds its own dense layout if its checks
    /// call for one.
    fn clone(&self) -> Self {
        let layout = match &self.layout {
            Layout::Bitmaps(bitmaps) => Layout::Bitmaps(Bitmaps {
                denied: bitmaps.denied.clone(),
                ..Bitmaps::new(bitmaps.chosen.clone(), bitmaps.allowed.clone())
            }),
            Layout::Dense(dense) => Layout::Dense(dense.clone()),
        };
        ExplicitSet {
            layout,
            dense_limits: self.dense_limits,
        }
    }
}

impl PartialEq for ExplicitSet {
    /// The same members with the same choices, whatever the layouts.
    fn eq(&self, other: &Self) -> bool {
        match (&self.layout, &other.layout) {
            (Layout::Dense(left), Layout::Dense(right)) if left.range() == right.range() => {
                left == right
            }
            _ => {
                self.len() == other.len()
                    && self.chosen() == other.chosen()
                    && self.allowed() == other.allowed()
            }
        }
    }
}

impl ExplicitSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from members in ascending order with their latest choice.
    pub fn from_sorted(latest: impl IntoIterator<Item = (MemberId, bool)>) -> Self {
        let mut builder = SortedExplicitBuilder::default();
        for (member, allowed) in latest {
            builder.push(member, allowed);
        }
        builder.build()
    }

    pub fn from_bitmaps(allowed: RoaringTreemap, denied: RoaringTreemap) -> Self {
        let chosen = &allowed | &denied;
        Self::with_layout(Layout::Bitmaps(Bitmaps::new(chosen, allowed)))
    }

    fn with_layout(layout: Layout) -> Self {
        ExplicitSet {
            layout,
            dense_limits: DenseLimits::default(),
        }
    }

    pub fn set(&mut self, member: MemberId, allowed: bool) {
        self.change(member.get(), Some(allowed));
    }

    pub fn remove(&mut self, member: MemberId) {
        self.change(member.get(), None);
    }

    fn change(&mut self, id: u64, state: Option<bool>) {
        // A dense layout built beside the bitmaps becomes the only copy now.
        self.switch_to_built_dense();
        if let Layout::Dense(dense) = &mut self.layout {
            if dense.set(id, state, &self.dense_limits) {
                return;
            }
            // Beyond the limits: back to bitmaps, which take any id.
            self.layout = Layout::Bitmaps(bitmaps_of(dense));
        }
        let Layout::Bitmaps(bitmaps) = &mut self.layout else {
            return;
        };
        match state {
            Some(allowed) => {
                bitmaps.chosen.insert(id);
                if allowed {
                    bitmaps.allowed.insert(id);
                } else {
                    bitmaps.allowed.remove(id);
                }
            }
            None => {
                bitmaps.chosen.remove(id);
                bitmaps.allowed.remove(id);
            }
        }
        bitmaps.changed();
    }

    /// If a dense layout was built beside the bitmaps, keeps it alone.
    fn switch_to_built_dense(&mut self) {
        if let Layout::Bitmaps(bitmaps) = &mut self.layout {
            if let Some(Some(dense)) = bitmaps.dense.take() {
                self.layout = Layout::Dense(dense);
            }
        }
    }

    /// Builds the dense layout if the limits allow and keeps it as the only copy (the
    /// bitmaps are dropped). False when the limits do not allow one; the bitmaps stay.
    pub fn switch_to_dense(&mut self) -> bool {
        self.prepare_dense();
        self.switch_to_built_dense();
        matches!(self.layout, Layout::Dense(_))
    }

    /// The limits deciding whether a dense layout is built and kept.
    pub fn dense_limits(&self) -> DenseLimits {
        self.dense_limits
    }

    /// Changes the limits; the set goes back to bitmaps (a dense layout is built again on
    /// demand, under the new limits).
    pub fn set_dense_limits(&mut self, limits: DenseLimits) {
        self.dense_limits = limits;
        match &mut self.layout {
            Layout::Dense(dense) => self.layout = Layout::Bitmaps(bitmaps_of(dense)),
            Layout::Bitmaps(bitmaps) => bitmaps.dense = OnceLock::new(),
        }
    }

    /// The dense layout, building it now if the limits allow (whatever the checks so far).
    pub fn prepare_dense(&self) -> Option<&DenseStates> {
        match &self.layout {
            Layout::Dense(dense) => Some(dense),
            Layout::Bitmaps(bitmaps) => bitmaps
                .dense
                .get_or_init(|| {
                    DenseStates::build(&bitmaps.chosen, &bitmaps.allowed, &self.dense_limits)
                })
                .as_ref(),
        }
    }

    /// The dense layout, if built.
    pub fn dense(&self) -> Option<&DenseStates> {
        match &self.layout {
            Layout::Dense(dense) => Some(dense),
            Layout::Bitmaps(bitmaps) => bitmaps.built_dense(),
        }
    }

    /// Whether the dense layout is the only copy held (no bitmaps in memory).
    pub fn is_dense_only(&self) -> bool {
        matches!(self.layout, Layout::Dense(_))
    }

    /// Bytes of the dense layout (0 when none is built).
    pub fn dense_bytes(&self) -> usize {
        self.dense().map_or(0, DenseStates::bytes)
    }

    /// The dense layout for a batch of `ids` checks: built once the ids checked through
    /// the bitmaps make it worthwhile ([`DenseLimits::checked_ids_before_build_min`]).
    pub(crate) fn dense_for_batch(&self, ids: usize) -> Option<&DenseStates> {
        let bitmaps = match &self.layout {
            Layout::Dense(dense) => return Some(dense),
            Layout::Bitmaps(bitmaps) => bitmaps,
        };
        if let Some(built) = bitmaps.dense.get() {
            return built.as_ref();
        }
        let ids = ids as u64;
        let checked = bitmaps.checked_ids.fetch_add(ids, Ordering::Relaxed) + ids;
        if checked < self.dense_limits.checked_ids_before_build(self.len()) {
            return None;
        }
        self.prepare_dense()
    }

    /// The member's state code: 0 no choice, 1 allowed, 2 denied. Searches the bitmaps
    /// even when a dense layout is built beside them (the batch path without one).
    #[inline]
    pub(crate) fn bitmap_state_code(&self, id: u64) -> u64 {
        let bitmaps = match &self.layout {
            Layout::Dense(dense) => return dense.state_code(id),
            Layout::Bitmaps(bitmaps) => bitmaps,
        };
        if !bitmaps.chosen.contains(id) {
            0
        } else if bitmaps.allowed.contains(id) {
            STATE_ALLOWED
        } else {
            STATE_DENIED
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
            code => Some(code == STATE_ALLOWED),
        }
    }

    /// Members whose latest explicit choice allows (built from the dense layout when that
    /// is the only copy).
    pub fn allowed(&self) -> Cow<'_, RoaringTreemap> {
        match &self.layout {
            Layout::Bitmaps(bitmaps) => Cow::Borrowed(&bitmaps.allowed),
            Layout::Dense(dense) => Cow::Owned(dense.ids_in_state(|code| code == STATE_ALLOWED)),
        }
    }

    /// Members whose latest explicit choice denies.
    pub fn denied(&self) -> Cow<'_, RoaringTreemap> {
        match &self.layout {
            Layout::Bitmaps(bitmaps) => Cow::Borrowed(
                bitmaps
                    .denied
                    .get_or_init(|| &bitmaps.chosen - &bitmaps.allowed),
            ),
            Layout::Dense(dense) => Cow::Owned(dense.ids_in_state(|code| code == STATE_DENIED)),
        }
    }

    /// Members with an explicit choice.
    pub fn chosen(&self) -> Cow<'_, RoaringTreemap> {
        match &self.layout {
            Layout::Bitmaps(bitmaps) => Cow::Borrowed(&bitmaps.chosen),
            Layout::Dense(dense) => Cow::Owned(dense.ids_in_state(|code| code != 0)),
        }
    }

    pub fn len(&self) -> u64 {
        match &self.layout {
            Layout::Bitmaps(bitmaps) => bitmaps.chosen.len(),
            Layout::Dense(dense) => dense.members(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the bitmaps held, in their serialized (portable) form: a close measure of
    /// their size in memory (0 when the dense layout is the only copy).
    pub fn serialized_bytes(&self) -> usize {
        match &self.layout {
            Layout::Bitmaps(bitmaps) => {
                bitmaps.chosen.serialized_size() + bitmaps.allowed.serialized_size()
            }
            Layout::Dense(_) => 0,
        }
    }

    /// Bytes held for the set: the bitmaps (serialized size) and any dense layout.
    pub fn memory_bytes(&self) -> usize {
        self.serialized_bytes() + self.dense_bytes()
    }
}

/// The bitmap layout of what a dense layout holds.
fn bitmaps_of(dense: &DenseStates) -> Bitmaps {
    Bitmaps::new(
        dense.ids_in_state(|code| code != 0),
        dense.ids_in_state(|code| code == STATE_ALLOWED),
    )
}

/// Appends `value` when it is above the maximum (the bitmap's fast path), else inserts.
/// Builds an [`ExplicitSet`] from members pushed in ascending order, each once with its
/// latest choice (out of order still works, more slowly).
#[derive(Debug, Default)]
pub(crate) struct SortedExplicitBuilder {
    chosen: RoaringTreemap,
    allowed: RoaringTreemap,
}

impl SortedExplicitBuilder {
    pub(crate) fn push(&mut self, member: MemberId, allowed: bool) {
        // Appending in order is the fast path of the bitmap; out of order falls back.
        push_or_insert(&mut self.chosen, member.get());
        if allowed {
            push_or_insert(&mut self.allowed, member.get());
        }
    }

    pub(crate) fn build(self) -> ExplicitSet {
        ExplicitSet::with_layout(Layout::Bitmaps(Bitmaps::new(self.chosen, self.allowed)))
    }
}

pub(crate) fn push_or_insert(bitmap: &mut RoaringTreemap, value: u64) {
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
        let rebuilt =
            ExplicitSet::from_bitmaps(built.allowed().into_owned(), built.denied().into_owned());
        assert_eq!(rebuilt, built);
        assert_eq!(rebuilt.denied().iter().collect::<Vec<_>>(), [5, u64::MAX]);
    }

    #[test]
    fn a_dense_set_holds_no_bitmaps_and_goes_back_to_them_for_a_far_id() {
        let base = 3 << 32;
        let pairs: Vec<_> = (0..100)
            .map(|i| (MemberId(base + i * 4), i % 3 == 0))
            .collect();
        let mut set = ExplicitSet::from_sorted(pairs.iter().copied());
        let bitmaps = (set.allowed().into_owned(), set.denied().into_owned());
        assert!(set.switch_to_dense());
        assert!(set.is_dense_only());
        assert_eq!(set.serialized_bytes(), 0);
        assert_eq!(set.memory_bytes(), set.dense_bytes());
        assert_eq!(set.len(), 100);
        assert_eq!(
            *set.allowed(),
            bitmaps.0,
            "built back from the dense layout"
        );
        assert_eq!(*set.denied(), bitmaps.1);
        set.set(MemberId(base + 1), true);
        set.remove(MemberId(base));
        assert!(set.is_dense_only(), "changes within the limits stay dense");
        assert_eq!(set.get(MemberId(base + 1)), Some(true));
        assert_eq!(set.get(MemberId(base)), None);
        set.set(MemberId(7), false);
        assert!(!set.is_dense_only(), "an id far below: back to bitmaps");
        assert_eq!(set.get(MemberId(7)), Some(false));
        assert_eq!(set.get(MemberId(base + 1)), Some(true));
        assert_eq!(set.len(), 101);
        // A dense layout built beside the bitmaps (by a check) becomes the only copy at
        // the next change.
        let mut set = ExplicitSet::from_sorted(pairs);
        assert!(set.prepare_dense().is_some());
        assert!(!set.is_dense_only());
        set.set(MemberId(base + 2), false);
        assert!(set.is_dense_only());
        assert_eq!(set.get(MemberId(base + 2)), Some(false));
    }
}
