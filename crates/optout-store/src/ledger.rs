//! The `Ledger` trait: what the rest of optout needs from storage, whatever the backend.

use optout_core::policy::PolicyDocument;
use optout_core::{
    ChainHead, ChoiceRecord, LedgerPosition, MemberId, PolicyHistory, PolicyRecord, Purpose,
    SealedEvent, Timestamp,
};

use crate::error::StoreError;

/// When a new choice happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChoiceTime {
    /// Now: the writer stamps the commit time, so live choices are in time order along the
    /// ledger and "latest by time" equals "latest by position" for them.
    Now,
    /// A given time (imports keep their original times).
    At(Timestamp),
}

/// An event to append.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NewEvent {
    /// A choice; its `at` is set from `time` (`choice.at` is ignored).
    Choice {
        choice: ChoiceRecord,
        time: ChoiceTime,
    },
    /// A policy version; its document must parse and follow the latest version in time.
    Policy(PolicyRecord),
    /// A dataset the gate built; its snapshot position must already be in the ledger.
    Dataset(optout_core::DatasetRecord),
}

/// The outcome of one appended event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Appended {
    pub event: SealedEvent,
    /// True when an idempotency key matched an earlier event, which is returned instead
    /// of writing a new one.
    pub replayed: bool,
}

/// A stored choice and its position.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChoiceAt {
    pub position: LedgerPosition,
    pub choice: ChoiceRecord,
}

impl ChoiceAt {
    pub fn explicit(&self) -> optout_core::ExplicitChoice {
        optout_core::ExplicitChoice {
            allowed: self.choice.allowed,
            at: self.choice.at,
            position: self.position,
        }
    }
}

/// An append-only, hash-chained, totally ordered event log.
///
/// `append` returns only after the events are durable (committed and synced); the events
/// of one call are appended contiguously and all-or-nothing.
pub trait Ledger: Send + Sync {
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError>;

    /// The last event's position and hash; None when the ledger is empty.
    fn head(&self) -> Result<Option<ChainHead>, StoreError>;

    /// Up to `limit` events from position `from` on, in order.
    fn read_range(
        &self,
        from: LedgerPosition,
        limit: usize,
    ) -> Result<Vec<SealedEvent>, StoreError>;

    /// A member's choices for a purpose, in ledger order.
    fn member_choices(
        &self,
        member: MemberId,
        purpose: &Purpose,
    ) -> Result<Vec<ChoiceAt>, StoreError>;

    /// Every policy version, in ledger order.
    fn policy_records(&self) -> Result<Vec<(LedgerPosition, PolicyRecord)>, StoreError>;

    /// Every dataset event, in ledger order.
    fn dataset_records(
        &self,
    ) -> Result<Vec<(LedgerPosition, optout_core::DatasetRecord)>, StoreError>;

    /// Calls `visit` for every choice event at or before position `up_to`, in ledger
    /// order, with only what the consent index needs. Backends override this with a lean
    /// query; the default decodes whole events.
    fn scan_choices(
        &self,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        let mut next = LedgerPosition::FIRST;
        while next <= up_to {
            let page = self.read_range(next, 10_000)?;
            let Some(last) = page.last() else { break };
            next = last.position().next();
            for sealed in page.iter().filter(|sealed| sealed.position() <= up_to) {
                if let Some(choice) = sealed.choice() {
                    visit(ChoiceFacts {
                        position: sealed.position(),
                        member: choice.member,
                        purpose: &choice.purpose,
                        allowed: choice.allowed,
                        at: choice.at,
                    });
                }
            }
        }
        Ok(())
    }

    /// Calls `visit` for the choices of `purpose` with position <= `up_to` and time <=
    /// `cutoff` that a checkpoint (`since_cutoff`, `since_position`) does not reflect:
    /// those with time > `since_cutoff` or position > `since_position`. Order unspecified.
    fn scan_choices_since(
        &self,
        purpose: &Purpose,
        since_cutoff: Timestamp,
        since_position: LedgerPosition,
        cutoff: Timestamp,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        self.scan_choices(up_to, &mut |facts| {
            let unreflected = facts.at > since_cutoff || facts.position > since_position;
            if facts.purpose == purpose && facts.at <= cutoff && unreflected {
                visit(facts);
            }
        })
    }

    /// Calls `visit` once for each member with a choice for `purpose` at a position <=
    /// `up_to` and a time <= `cutoff`, with that member's latest such choice (by time, then
    /// position), in ascending member order; returns true. A backend that keeps choices
    /// ordered by (purpose, member, time, position) answers from that order without reading
    /// or sorting whole events; the others return false without calling `visit`, and the
    /// caller reads the ledger with [`Ledger::scan_choices`] instead.
    fn latest_choices_by_member(
        &self,
        _purpose: &Purpose,
        _cutoff: Timestamp,
        _up_to: LedgerPosition,
        _visit: &mut dyn FnMut(MemberId, bool),
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Stores an index checkpoint durably (replacing one with the same key).
    fn save_index_checkpoint(&self, checkpoint: &IndexCheckpoint) -> Result<(), StoreError>;

    /// The most useful checkpoint for a snapshot at (`cutoff`, `up_to`): the one with the
    /// greatest position, then cutoff, among those with cutoff <= `cutoff` and position
    /// <= `up_to`.
    fn find_index_checkpoint(
        &self,
        purpose: &Purpose,
        cutoff: Timestamp,
        up_to: LedgerPosition,
    ) -> Result<Option<IndexCheckpoint>, StoreError>;
}

/// A persisted state of the consent index: for `purpose`, each member's latest explicit
/// choice among the events at positions <= `position` with time <= `cutoff`, as two
/// portable 64-bit Roaring bitmaps. Derived data: it speeds up snapshots and can always be
/// rebuilt from the ledger. `ledger_hash` (the hash at `position`) ties it to one ledger.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IndexCheckpoint {
    pub purpose: Purpose,
    pub cutoff: Timestamp,
    pub position: LedgerPosition,
    pub ledger_hash: optout_core::EventHash,
    pub allowed: Vec<u8>,
    pub denied: Vec<u8>,
    pub created_at: Timestamp,
}

/// The parts of a choice event the consent index uses.
#[derive(Clone, Copy, Debug)]
pub struct ChoiceFacts<'a> {
    pub position: LedgerPosition,
    pub member: MemberId,
    pub purpose: &'a Purpose,
    pub allowed: bool,
    pub at: Timestamp,
}

/// A member's explicit choices for a purpose at positions <= `up_to`, as the rule needs them.
pub fn member_history(
    ledger: &dyn Ledger,
    member: MemberId,
    purpose: &Purpose,
    up_to: LedgerPosition,
) -> Result<Vec<optout_core::ExplicitChoice>, StoreError> {
    Ok(ledger
        .member_choices(member, purpose)?
        .iter()
        .filter(|stored| stored.position <= up_to)
        .map(ChoiceAt::explicit)
        .collect())
}

/// The policy history recorded in a ledger.
pub fn policy_history(ledger: &dyn Ledger) -> Result<PolicyHistory, StoreError> {
    policy_history_up_to(ledger, LedgerPosition(u64::MAX))
}

/// The policy versions recorded at or before position `up_to`.
pub fn policy_history_up_to(
    ledger: &dyn Ledger,
    up_to: LedgerPosition,
) -> Result<PolicyHistory, StoreError> {
    let mut history = PolicyHistory::new();
    for (position, record) in ledger.policy_records()? {
        if position > up_to {
            break;
        }
        let document =
            PolicyDocument::parse(&record.document, &format!("ledger position {position}"))
                .map_err(|error| StoreError::Corrupt {
                    position,
                    problem: error.to_string(),
                })?;
        history
            .push(document)
            .map_err(|error| StoreError::Corrupt {
                position,
                problem: error.to_string(),
            })?;
    }
    Ok(history)
}
