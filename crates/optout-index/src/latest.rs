//! `LatestChoices`: each member's latest choice (by time, then ledger position), kept while
//! the ledger streams past, in about 17 bytes per member instead of 32 per event.
//!
//! The index build and a snapshot's full scan read every choice event in position order.
//! Keeping all of them and sorting at the end costs 32 bytes per event (50 at the `Vec`'s
//! peak): 4.9 GB for 100M events. Here events go into a small buffer; when it fills, the
//! buffer is sorted, reduced to each member's latest, and merged in place into one sorted
//! array of (member, time, allowed). Events come in position order, so a member's entry
//! from the buffer is later in the ledger than the one in the array: it wins unless its
//! time is earlier (a backdated import). The buffer grows with the array (1/8 of it), so
//! merges cost a constant number of passes over the array in total.

use optout_core::MemberId;

use crate::explicit::ExplicitSet;

/// The buffer holds at least this many events before a merge.
const BUFFER_EVENTS_MIN: usize = 1 << 16;

#[derive(Debug, Default)]
pub(crate) struct LatestChoices {
    /// Sorted, one entry per member: the member's latest choice among merged events.
    members: Vec<u64>,
    ats: Vec<i64>,
    allowed: Vec<bool>,
    /// Events not merged yet: (member, at, position, allowed), in position order.
    buffer: Vec<(u64, i64, u64, bool)>,
    buffer_events_min: usize,
    /// The last position pushed: `Ledger::scan_choices` promises ledger order, and the
    /// merge rule relies on it.
    last_position: u64,
}

impl LatestChoices {
    pub(crate) fn new() -> Self {
        Self::with_buffer_events_min(BUFFER_EVENTS_MIN)
    }

    /// A smaller buffer makes merges happen in tests.
    pub(crate) fn with_buffer_events_min(buffer_events_min: usize) -> Self {
        LatestChoices {
            buffer_events_min: buffer_events_min.max(1),
            ..Self::default()
        }
    }

    /// Adds a choice; calls must come in ledger position order.
    pub(crate) fn push(&mut self, member: u64, at: i64, position: u64, allowed: bool) {
        debug_assert!(position > self.last_position, "choices in ledger order");
        self.last_position = position;
        self.buffer.push((member, at, position, allowed));
        if self.buffer.len() >= self.buffer_events_min.max(self.members.len() / 8) {
            self.merge_buffer();
        }
    }

    /// Each member's latest choice, as an explicit set.
    pub(crate) fn into_explicit(mut self) -> ExplicitSet {
        self.merge_buffer();
        let LatestChoices {
            members,
            ats,
            allowed,
            buffer,
            ..
        } = self;
        // Freed before the bitmaps are built, so the peak is the array alone.
        drop((ats, buffer));
        ExplicitSet::from_sorted(
            members
                .into_iter()
                .zip(allowed)
                .map(|(member, allowed)| (MemberId(member), allowed)),
        )
    }

    fn merge_buffer(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut chunk = std::mem::take(&mut self.buffer);
        latest_of_each_member(&mut chunk);
        let old_len = self.members.len();
        let added = count_not_in(&chunk, &self.members);
        let new_len = old_len + added;
        // Exact growth: doubling capacity would cost up to 17 bytes per member more at peak.
        self.members.reserve_exact(added);
        self.ats.reserve_exact(added);
        self.allowed.reserve_exact(added);
        self.members.resize(new_len, 0);
        self.ats.resize(new_len, 0);
        self.allowed.resize(new_len, false);
        // Merge from the back: the write place `to` never overtakes the next unread old
        // entry, because `to - old` counts the chunk's members still to place that are new.
        let mut old = old_len;
        let mut to = new_len;
        for &(member, at, _, allowed) in chunk.iter().rev() {
            while old > 0 && self.member(old - 1) > member {
                old -= 1;
                to -= 1;
                self.move_entry(old, to);
            }
            if old > 0 && self.member(old - 1) == member {
                old -= 1;
                to -= 1;
                // The chunk's event is later in the ledger: it wins unless it is dated
                // before the merged one.
                if at >= self.at(old) {
                    self.write(to, member, at, allowed);
                } else {
                    self.move_entry(old, to);
                }
            } else {
                to -= 1;
                self.write(to, member, at, allowed);
            }
        }
        debug_assert_eq!(old, to, "every new member placed");
        chunk.clear();
        self.buffer = chunk;
    }

    #[inline]
    fn member(&self, place: usize) -> u64 {
        self.members.get(place).copied().unwrap_or(0)
    }

    #[inline]
    fn at(&self, place: usize) -> i64 {
        self.ats.get(place).copied().unwrap_or(i64::MIN)
    }

    #[inline]
    fn move_entry(&mut self, from: usize, to: usize) {
        if from == to {
            return;
        }
        let at = self.at(from);
        let allowed = self.allowed.get(from).copied().unwrap_or(false);
        self.write(to, self.member(from), at, allowed);
    }

    #[inline]
    fn write(&mut self, place: usize, member: u64, at: i64, allowed: bool) {
        if let (Some(slot_member), Some(slot_at), Some(slot_allowed)) = (
            self.members.get_mut(place),
            self.ats.get_mut(place),
            self.allowed.get_mut(place),
        ) {
            *slot_member = member;
            *slot_at = at;
            *slot_allowed = allowed;
        }
    }
}

/// Sorts (member, at, position, allowed) and keeps each member's last (latest) entry.
fn latest_of_each_member(events: &mut Vec<(u64, i64, u64, bool)>) {
    events.sort_unstable_by_key(|&(member, at, position, _)| (member, at, position));
    // Keep the last of each run of equal members: walk back to front, dedup keeps firsts.
    events.reverse();
    events.dedup_by_key(|event| event.0);
    events.reverse();
}

/// How many members of the sorted `chunk` are not in the sorted `members`.
fn count_not_in(chunk: &[(u64, i64, u64, bool)], members: &[u64]) -> usize {
    let mut existing = members.iter().peekable();
    let mut added = 0;
    for &(member, ..) in chunk {
        while existing.next_if(|&&known| known < member).is_some() {}
        if existing.next_if(|&&known| known == member).is_none() {
            added += 1;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::snapshot::latest_per_member;
    use proptest::prelude::*;

    proptest! {
        // Streaming with merges of every size gives the same latest choices as keeping
        // every event and sorting once (the previous implementation, kept as the model).
        #[test]
        fn streaming_equals_sort_of_all_events(
            events in prop::collection::vec((0u64..40, -5i64..5, any::<bool>()), 0..300),
            buffer in 1usize..20,
            far in any::<bool>(),
        ) {
            let events: Vec<(u64, i64, u64, bool)> = events
                .into_iter()
                .enumerate()
                .map(|(position, (member, at, allowed))| {
                    let member = if far && member % 3 == 0 { u64::MAX - member } else { member };
                    (member, at, position as u64 + 1, allowed)
                })
                .collect();
            let mut latest = LatestChoices::with_buffer_events_min(buffer);
            for &(member, at, position, allowed) in &events {
                latest.push(member, at, position, allowed);
            }
            prop_assert_eq!(latest.into_explicit(), latest_per_member(events));
        }
    }
}
