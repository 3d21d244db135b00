//! The group-commit writer: one thread owns the backend's write connection; concurrent
//! `append` calls queue their events, the thread takes everything queued (up to a limit)
//! into one transaction, and answers each caller only after that transaction is durable.
//! One fsync then acknowledges many choices, which is how a rush of opt-outs before a
//! deadline is absorbed without losing any.
//!
//! Positions, hashes and `recorded_at` are assigned here, in one place, so the chain has
//! no gaps and time along it never goes backwards. After a failed commit the writer is
//! poisoned and refuses every later write: retrying an fsync and hoping is how data is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use optout_core::chain::seal;
use optout_core::event::validate_idempotency_key;
use optout_core::policy::{check_follows, PolicyDocument};
use optout_core::{
    ChainHead, Clock, Event, EventBody, EventHash, LedgerPosition, MemberId, PolicyVersion,
    SealedEvent, Timestamp,
};

use crate::error::StoreError;
use crate::ledger::{Appended, ChoiceTime, NewEvent};

/// What the writer needs to continue a ledger after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterState {
    pub head: Option<ChainHead>,
    pub last_recorded_at: Option<Timestamp>,
    pub last_policy: Option<(PolicyVersion, Timestamp)>,
}

/// The backend side of the writer: one connection, used by one thread.
pub trait CommitLog: Send + 'static {
    /// Reads the durable state to continue from.
    fn recover(&mut self) -> Result<WriterState, StoreError>;

    /// The event holding this member's idempotency key, if any.
    fn find_idempotent(
        &mut self,
        member: MemberId,
        key: &str,
    ) -> Result<Option<SealedEvent>, StoreError>;

    /// Writes the events in one transaction; returns only when it is durable.
    fn commit(&mut self, events: &[SealedEvent]) -> Result<(), StoreError>;
}

/// Bounds of the writer's queue and transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterLimits {
    /// Events per transaction; a single larger request still commits whole.
    pub batch_events_max: usize,
    /// Requests waiting for the writer before `append` blocks.
    pub queue_requests_max: usize,
    /// Events in one `append` call.
    pub request_events_max: usize,
}

impl Default for WriterLimits {
    fn default() -> Self {
        WriterLimits {
            batch_events_max: 100_000,
            queue_requests_max: 65_536,
            request_events_max: 1_000_000,
        }
    }
}

/// Counters the service exports as metrics.
#[derive(Debug, Default)]
pub struct WriterMetrics {
    pub commits: AtomicU64,
    pub events_committed: AtomicU64,
    pub requests: AtomicU64,
    pub last_batch_events: AtomicU64,
    pub largest_batch_events: AtomicU64,
    /// Set once a commit has failed: the writer refuses every later write, so the process
    /// is no longer ready and must be restarted (readiness checks read this).
    pub poisoned: AtomicBool,
}

type Reply = SyncSender<Result<Vec<Appended>, StoreError>>;

struct Request {
    events: Vec<NewEvent>,
    reply: Reply,
}

/// Handle to the writer thread; dropping it drains the queue and stops the thread.
pub struct GroupCommitWriter {
    sender: Mutex<Option<SyncSender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    limits: WriterLimits,
    metrics: Arc<WriterMetrics>,
}

impl GroupCommitWriter {
    /// Recovers the log's state and starts the writer thread.
    pub fn start(
        mut log: impl CommitLog,
        clock: Arc<dyn Clock>,
        limits: WriterLimits,
    ) -> Result<Self, StoreError> {
        let state = log.recover()?;
        let (sender, receiver) = sync_channel(limits.queue_requests_max.max(1));
        let metrics = Arc::new(WriterMetrics::default());
        let thread_metrics = Arc::clone(&metrics);
        let thread = std::thread::Builder::new()
            .name("optout-ledger-writer".into())
            .spawn(move || {
                WriterLoop {
                    log,
                    clock,
                    state,
                    limits,
                    metrics: thread_metrics,
                    poisoned: None,
                }
                .run(receiver)
            })
            .map_err(|error| {
                StoreError::Backend(format!("cannot start the writer thread: {error}"))
            })?;
        Ok(GroupCommitWriter {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            limits,
            metrics,
        })
    }

    pub fn metrics(&self) -> &WriterMetrics {
        &self.metrics
    }

    /// Appends the events contiguously, all or nothing; returns once they are durable.
    pub fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if events.len() > self.limits.request_events_max {
            return Err(StoreError::Rejected(format!(
                "{} events in one append; at most {} allowed",
                events.len(),
                self.limits.request_events_max
            )));
        }
        let sender = self
            .sender
            .lock()
            .map_err(|_| StoreError::WriterStopped)?
            .clone()
            .ok_or(StoreError::WriterStopped)?;
        let (reply, answer) = sync_channel(1);
        // A full queue blocks here: back-pressure instead of an unbounded queue.
        sender
            .send(Request { events, reply })
            .map_err(|_| StoreError::WriterStopped)?;
        answer.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Stops accepting writes, lets queued ones finish, and waits for the thread.
    pub fn shutdown(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut thread| thread.take()) {
            let _ = thread.join();
        }
    }
}

impl Drop for GroupCommitWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct WriterLoop<L: CommitLog> {
    log: L,
    clock: Arc<dyn Clock>,
    state: WriterState,
    limits: WriterLimits,
    metrics: Arc<WriterMetrics>,
    poisoned: Option<String>,
}

impl<L: CommitLog> WriterLoop<L> {
    fn run(mut self, receiver: Receiver<Request>) {
        while let Ok(first) = receiver.recv() {
            let mut queued = first.events.len();
            let mut batch = vec![first];
            while queued < self.limits.batch_events_max {
                match receiver.try_recv() {
                    Ok(request) => {
                        queued += request.events.len();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        self.metrics
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(reason) = &self.poisoned {
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(StoreError::Poisoned(reason.clone())));
            }
            return;
        }
        let now = self.clock.now();
        let mut pending = PendingBatch::new(self.state.clone());
        let outcomes: Vec<_> = batch
            .iter()
            .map(|request| pending.add(&mut self.log, &request.events, now))
            .collect();
        let result = if pending.sealed.is_empty() {
            Ok(())
        } else {
            self.log.commit(&pending.sealed)
        };
        match result {
            Ok(()) => {
                let events = pending.sealed.len() as u64;
                self.metrics
                    .commits
                    .fetch_add(u64::from(events > 0), Ordering::Relaxed);
                self.metrics
                    .events_committed
                    .fetch_add(events, Ordering::Relaxed);
                self.metrics
                    .last_batch_events
                    .store(events, Ordering::Relaxed);
                self.metrics
                    .largest_batch_events
                    .fetch_max(events, Ordering::Relaxed);
                self.state = pending.state;
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                let reason = error.to_string();
                self.poisoned = Some(reason.clone());
                self.metrics.poisoned.store(true, Ordering::Relaxed);
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Poisoned(reason.clone())));
                }
            }
        }
    }
}

/// The events of one transaction being assembled, and the state they lead to.
struct PendingBatch {
    state: WriterState,
    sealed: Vec<SealedEvent>,
    keys: HashMap<(MemberId, String), SealedEvent>,
}

impl PendingBatch {
    fn new(state: WriterState) -> Self {
        PendingBatch {
            state,
            sealed: Vec::new(),
            keys: HashMap::new(),
        }
    }

    /// Adds one request's events, or none of them if any is invalid.
    fn add(
        &mut self,
        log: &mut impl CommitLog,
        events: &[NewEvent],
        now: Timestamp,
    ) -> Result<Vec<Appended>, StoreError> {
        let mut state = self.state.clone();
        let mut sealed = Vec::new();
        let mut keys: HashMap<(MemberId, String), SealedEvent> = HashMap::new();
        let mut appended = Vec::with_capacity(events.len());
        for new in events {
            let recorded_at = state.last_recorded_at.map_or(now, |last| last.max(now));
            let body = match new {
                NewEvent::Choice { choice, time } => {
                    validate_notice_fields(choice)?;
                    if let Some(key) = &choice.idempotency_key {
                        validate_idempotency_key(key)?;
                        let map_key = (choice.member, key.clone());
                        let earlier = match keys.get(&map_key) {
                            Some(event) => Some(event.clone()),
                            None => match self.keys.get(&map_key) {
                                Some(event) => Some(event.clone()),
                                None => log.find_idempotent(choice.member, key)?,
                            },
                        };
                        if let Some(earlier) = earlier {
                            check_same_choice(&earlier, choice)?;
                            appended.push(Appended {
                                event: earlier,
                                replayed: true,
                            });
                            continue;
                        }
                    }
                    let mut choice = choice.clone();
                    choice.at = match time {
                        ChoiceTime::Now => recorded_at,
                        ChoiceTime::At(at) => *at,
                    };
                    EventBody::Choice(choice)
                }
                NewEvent::Policy(record) => {
                    let document = PolicyDocument::parse(&record.document, "policy document")?;
                    if document.version != record.version
                        || document.effective_from != record.effective_from
                    {
                        return Err(StoreError::Rejected(
                            "policy record's version or effective_from differs from its document"
                                .into(),
                        ));
                    }
                    check_follows(state.last_policy, record.version, record.effective_from)?;
                    state.last_policy = Some((record.version, record.effective_from));
                    EventBody::Policy(record.clone())
                }
                NewEvent::Dataset(record) => {
                    record.validate()?;
                    let head = state.head.map_or(0, |head| head.position.get());
                    if record.snapshot_position.get() > head {
                        return Err(StoreError::Rejected(format!(
                            "dataset {} names snapshot position {}, beyond the ledger head {head}",
                            record.dataset_id, record.snapshot_position
                        )));
                    }
                    EventBody::Dataset(record.clone())
                }
            };
            let (position, prev) = match state.head {
                Some(head) => (head.position.next(), head.hash),
                None => (LedgerPosition::FIRST, EventHash::GENESIS),
            };
            let event = seal(
                Event {
                    position,
                    recorded_at,
                    body,
                },
                prev,
            );
            state.head = Some(ChainHead {
                position,
                hash: event.hash,
            });
            state.last_recorded_at = Some(recorded_at);
            if let Some(choice) = event.choice() {
                if let Some(key) = &choice.idempotency_key {
                    keys.insert((choice.member, key.clone()), event.clone());
                }
            }
            appended.push(Appended {
                event: event.clone(),
                replayed: false,
            });
            sealed.push(event);
        }
        self.state = state;
        self.sealed.extend(sealed);
        self.keys.extend(keys);
        Ok(appended)
    }
}

/// Notice version and language come from policy files or callers: bounded, printable.
fn validate_notice_fields(choice: &optout_core::ChoiceRecord) -> Result<(), StoreError> {
    for (what, value) in [
        ("notice version", &choice.notice_version),
        ("notice language", &choice.notice_language),
    ] {
        if let Some(value) = value {
            if value.is_empty()
                || value.len() > NOTICE_FIELD_BYTES_MAX
                || value.chars().any(char::is_control)
            {
                return Err(StoreError::Rejected(format!(
                    "invalid {what}: expected 1-{NOTICE_FIELD_BYTES_MAX} bytes without control characters"
                )));
            }
        }
    }
    Ok(())
}

/// Longest notice version or language recorded with a choice.
pub const NOTICE_FIELD_BYTES_MAX: usize = 256;

/// A replayed idempotency key must carry the same choice.
fn check_same_choice(
    earlier: &SealedEvent,
    new: &optout_core::ChoiceRecord,
) -> Result<(), StoreError> {
    match earlier.choice() {
        Some(old) if old.purpose == new.purpose && old.allowed == new.allowed => Ok(()),
        _ => Err(StoreError::IdempotencyConflict {
            member: new.member,
            key: new.idempotency_key.clone().unwrap_or_default(),
            position: earlier.position(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optout_core::event::Actor;
    use optout_core::{ChoiceRecord, ManualClock, Purpose, Source};
    use std::sync::atomic::AtomicBool;

    /// An in-memory commit log whose commits can be made to fail, standing in for a disk
    /// that returns EIO on fsync.
    #[derive(Clone, Default)]
    struct FlakyLog {
        committed: Arc<Mutex<Vec<SealedEvent>>>,
        fail: Arc<AtomicBool>,
    }

    impl CommitLog for FlakyLog {
        fn recover(&mut self) -> Result<WriterState, StoreError> {
            Ok(WriterState::default())
        }

        fn find_idempotent(
            &mut self,
            _: MemberId,
            _: &str,
        ) -> Result<Option<SealedEvent>, StoreError> {
            Ok(None)
        }

        fn commit(&mut self, events: &[SealedEvent]) -> Result<(), StoreError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("disk I/O error".into()));
            }
            self.committed.lock().unwrap().extend_from_slice(events);
            Ok(())
        }
    }

    fn live_choice(member: u64) -> NewEvent {
        NewEvent::Choice {
            choice: ChoiceRecord {
                member: MemberId(member),
                purpose: Purpose::new("ai_training").unwrap(),
                allowed: false,
                at: Timestamp::default(),
                source: Source::Web,
                actor: Actor::member(),
                policy_version: None,
                notice_version: None,
                notice_language: None,
                jurisdiction: None,
                idempotency_key: None,
            },
            time: ChoiceTime::Now,
        }
    }

    // A failed commit poisons the writer: the failing request and every later one get an
    // error, even after the disk recovers, and nothing after the failure is committed.
    #[test]
    fn failed_commit_poisons_the_writer() {
        let log = FlakyLog::default();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1)));
        let writer = GroupCommitWriter::start(log.clone(), clock, WriterLimits::default()).unwrap();
        writer.append(vec![live_choice(1)]).unwrap();
        assert!(!writer.metrics().poisoned.load(Ordering::SeqCst));
        log.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            writer.append(vec![live_choice(2)]),
            Err(StoreError::Poisoned(_))
        ));
        assert!(writer.metrics().poisoned.load(Ordering::SeqCst));
        log.fail.store(false, Ordering::SeqCst);
        assert!(matches!(
            writer.append(vec![live_choice(3)]),
            Err(StoreError::Poisoned(_))
        ));
        let committed = log.committed.lock().unwrap();
        assert_eq!(committed.len(), 1);
        assert_eq!(committed[0].position(), LedgerPosition(1));
    }

    // Requests that queue while the writer is busy share one transaction: five requests
    // already queued when the loop runs are committed by a single commit, in order.
    #[test]
    fn queued_requests_share_one_commit() {
        let log = FlakyLog::default();
        let commits = Arc::new(AtomicU64::new(0));
        let counting = CountingLog {
            inner: log.clone(),
            commits: Arc::clone(&commits),
        };
        let (sender, receiver) = sync_channel(16);
        let mut answers = Vec::new();
        for member in 0..5u64 {
            let (reply, answer) = sync_channel(1);
            sender
                .send(Request {
                    events: vec![live_choice(member)],
                    reply,
                })
                .unwrap();
            answers.push(answer);
        }
        drop(sender);
        WriterLoop {
            log: counting,
            clock: Arc::new(ManualClock::new(Timestamp::from_micros(1))),
            state: WriterState::default(),
            limits: WriterLimits::default(),
            metrics: Arc::new(WriterMetrics::default()),
            poisoned: None,
        }
        .run(receiver);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        for (index, answer) in answers.into_iter().enumerate() {
            let appended = answer.recv().unwrap().unwrap();
            assert_eq!(
                appended[0].event.position(),
                LedgerPosition(index as u64 + 1)
            );
        }
    }

    struct CountingLog {
        inner: FlakyLog,
        commits: Arc<AtomicU64>,
    }

    impl CommitLog for CountingLog {
        fn recover(&mut self) -> Result<WriterState, StoreError> {
            self.inner.recover()
        }

        fn find_idempotent(
            &mut self,
            member: MemberId,
            key: &str,
        ) -> Result<Option<SealedEvent>, StoreError> {
            self.inner.find_idempotent(member, key)
        }

        fn commit(&mut self, events: &[SealedEvent]) -> Result<(), StoreError> {
            self.commits.fetch_add(1, Ordering::SeqCst);
            self.inner.commit(events)
        }
    }

    // Limits are enforced before anything is queued.
    #[test]
    fn oversized_request_is_rejected() {
        let limits = WriterLimits {
            request_events_max: 2,
            ..WriterLimits::default()
        };
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1)));
        let writer = GroupCommitWriter::start(FlakyLog::default(), clock, limits).unwrap();
        let error = writer
            .append(vec![live_choice(1), live_choice(2), live_choice(3)])
            .unwrap_err();
        assert!(matches!(error, StoreError::Rejected(_)), "{error}");
    }
}
