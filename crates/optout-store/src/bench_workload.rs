//! The synthetic choices the durable-append benchmarks of every backend write, so their
//! figures compare like with like (feature `conformance`).

use std::sync::atomic::{AtomicU64, Ordering};

use optout_core::{Actor, Jurisdiction, Source, Timestamp};

use crate::conformance::choice;
use crate::NewEvent;
use optout_core::splitmix::mix64;

/// Member ids are drawn from 1..=4 000 000, like the shared workload for a million members,
/// in pseudo-random order so the (member, purpose) index is updated at random places.
pub const MEMBER_ID_SPACE: u64 = 4_000_000;
const JURISDICTIONS: [&str; 8] = ["US", "IN", "BR", "DE", "GB", "FR", "CA", "NL"];
const LIVE_SOURCES: [Source; 3] = [Source::Web, Source::Mobile, Source::Gpc];
/// The default policy's notice for `ai_training`.
const NOTICE_VERSION: &str = "ai_training-2023-10-16";
/// 2023-01-01T00:00:00Z .. 2025-06-30T00:00:00Z: when imported choices were made.
const IMPORT_FROM_US: i64 = 1_672_531_200_000_000;
const IMPORT_SPAN_US: u64 = 78_796_800_000_000;

fn pick<T: Copy>(items: &[T], random: u64) -> Option<T> {
    let len = u64::try_from(items.len()).ok()?.max(1);
    items.get(usize::try_from(random % len).ok()?).copied()
}

/// Makes distinct, realistic events; shared by all threads of a benchmark.
#[derive(Default)]
pub struct EventSource {
    sequence: AtomicU64,
}

impl EventSource {
    /// A source whose sequence starts at `first` (a benchmark on a persisted ledger starts
    /// from the clock, so a rerun never repeats an idempotency key).
    pub fn starting_at(first: u64) -> Self {
        EventSource {
            sequence: AtomicU64::new(first),
        }
    }

    fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// A choice a member just made on a page or in the app.
    pub fn live(&self, keyed: bool) -> NewEvent {
        let sequence = self.next_sequence();
        let random = mix64(sequence);
        let member = 1 + random % MEMBER_ID_SPACE;
        let source = pick(&LIVE_SOURCES, random >> 24).unwrap_or(Source::Web);
        // Mostly opt-outs, as in the rush before a deadline; GPC only ever opts out.
        let allowed = source != Source::Gpc && (random >> 32).is_multiple_of(5);
        let mut event = choice(member, allowed, None);
        if let NewEvent::Choice { choice, .. } = &mut event {
            choice.source = source;
            choice.notice_version = Some(NOTICE_VERSION.into());
            choice.jurisdiction =
                pick(&JURISDICTIONS, random >> 40).and_then(|code| Jurisdiction::parse(code).ok());
            if keyed {
                // The shape of a client-made UUID.
                choice.idempotency_key = Some(format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    random >> 32,
                    (random >> 16) & 0xffff,
                    random & 0xfff,
                    (sequence >> 48) & 0xfff,
                    sequence & 0xffff_ffff_ffff
                ));
            }
        }
        event
    }

    /// A choice recorded elsewhere earlier, brought in by `optout import`.
    pub fn imported(&self, actor: &Actor) -> NewEvent {
        let random = mix64(self.next_sequence());
        let member = 1 + random % MEMBER_ID_SPACE;
        let offset = i64::try_from((random >> 8) % IMPORT_SPAN_US).unwrap_or(0);
        let mut event = choice(
            member,
            (random >> 4).is_multiple_of(3),
            Some(Timestamp::from_micros(IMPORT_FROM_US + offset)),
        );
        if let NewEvent::Choice { choice, .. } = &mut event {
            // An import knows the policy in force then, not which notice the member saw.
            choice.actor = actor.clone();
            choice.notice_version = None;
            choice.notice_language = None;
            choice.jurisdiction = None;
        }
        event
    }

    /// Half live, half imported, interleaved.
    pub fn mixed(&self, count: usize, actor: &Actor) -> Vec<NewEvent> {
        (0..count)
            .map(|index| {
                if index % 2 == 0 {
                    self.live(false)
                } else {
                    self.imported(actor)
                }
            })
            .collect()
    }

    /// Live choices, each with its own idempotency key.
    pub fn keyed(&self, count: usize) -> Vec<NewEvent> {
        (0..count).map(|_| self.live(true)).collect()
    }
}
