//! The index agrees with the pure consent rule: random histories (live and backdated
//! imported choices, several purposes, ids above 2^32) are appended to a real SQLite
//! ledger, the index is built part-way and catches up on the rest, and every point check,
//! batch check and snapshot is compared with `decide_from_history` over the member's events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use optout_core::consent::decide_from_history;
use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Clock, Jurisdiction, LedgerPosition, ManualClock, MemberId, PolicyDocument,
    PolicyHistory, PolicyRecord, Purpose, Source, Timestamp,
};
use optout_index::{CheckpointUse, ConsentIndex, Snapshot, SnapshotSource};
use optout_sqlite::SqliteLedger;
use optout_store::{ChoiceTime, Ledger, NewEvent};
use proptest::prelude::*;

const DAY: i64 = 86_400_000_000;
/// 2023-10-30T00:00:00Z, the default policy's deadline.
const DEADLINE: i64 = 1_698_624_000_000_000;

const MEMBERS: [u64; 5] = [1, 2, (1 << 32) + 1, u64::MAX - 1, u64::MAX];

fn times() -> Vec<i64> {
    let mut times = Vec::new();
    for base in [
        DEADLINE - 3 * DAY,
        DEADLINE - 1,
        DEADLINE,
        DEADLINE + DAY,
        DEADLINE + 400 * DAY,
    ] {
        times.extend([base - 1, base, base + 1]);
    }
    times
}

/// Version 2 excludes France for ai_training from 2024-06-01.
fn policy_v2() -> String {
    optout_core::policy::DEFAULT_POLICY_TOML
        .replace("version = 1", "version = 2")
        .replace("effective_from = \"2023-10-16T00:00:00Z\"", "effective_from = \"2024-06-01T00:00:00Z\"")
        .replace(
            "[[purposes.ai_training.rules]]\njurisdictions = [\"EU\", \"EEA_EFTA\", \"CH\", \"GB\"]",
            "[[purposes.ai_training.rules]]\njurisdictions = [\"FR\"]\nmode = \"excluded\"\n\n[[purposes.ai_training.rules]]\njurisdictions = [\"AT\", \"BE\", \"BG\", \"HR\", \"CY\", \"CZ\", \"DK\", \"EE\", \"FI\", \"DE\", \"GR\", \"HU\", \"IE\", \"IT\", \"LV\", \"LT\", \"LU\", \"MT\", \"NL\", \"PL\", \"PT\", \"RO\", \"SK\", \"SI\", \"ES\", \"SE\", \"EEA_EFTA\", \"CH\", \"GB\"]",
        )
}

fn policy_event(text: &str) -> NewEvent {
    let document = PolicyDocument::parse(text, "test").unwrap();
    NewEvent::Policy(PolicyRecord {
        version: document.version,
        effective_from: document.effective_from,
        document: text.to_string(),
    })
}

#[derive(Clone, Debug)]
struct Choice {
    member: u64,
    personalization: bool,
    allowed: bool,
    /// None: a live choice at the clock's time.
    at: Option<i64>,
}

fn choice_strategy() -> impl Strategy<Value = Choice> {
    let times = times();
    (
        0..MEMBERS.len(),
        prop::bool::weighted(0.2),
        any::<bool>(),
        prop::option::weighted(0.6, prop::sample::select(times)),
    )
        .prop_map(|(member, personalization, allowed, at)| Choice {
            member: MEMBERS[member],
            personalization,
            allowed,
            at,
        })
}

fn to_event(choice: &Choice) -> NewEvent {
    let purpose = if choice.personalization {
        "ai_personalization"
    } else {
        "ai_training"
    };
    NewEvent::Choice {
        choice: ChoiceRecord {
            member: MemberId(choice.member),
            purpose: Purpose::new(purpose).unwrap(),
            allowed: choice.allowed,
            at: Timestamp::default(),
            source: Source::Import,
            actor: Actor::member(),
            policy_version: None,
            notice_version: None,
            notice_language: None,
            jurisdiction: None,
            idempotency_key: None,
        },
        time: choice.at.map_or(ChoiceTime::Now, |at| {
            ChoiceTime::At(Timestamp::from_micros(at))
        }),
    }
}

fn jurisdictions() -> Vec<Option<Jurisdiction>> {
    ["US", "DE", "FR", "XX"]
        .iter()
        .map(|code| Jurisdiction::parse(code).ok())
        .chain([None])
        .collect()
}

/// The rule over the member's stored choices up to `position`.
fn expected(
    ledger: &dyn Ledger,
    policies: &PolicyHistory,
    member: u64,
    purpose: &Purpose,
    jurisdiction: Option<Jurisdiction>,
    at: Timestamp,
    position: LedgerPosition,
) -> bool {
    let choices: Vec<_> = ledger
        .member_choices(MemberId(member), purpose)
        .unwrap()
        .iter()
        .filter(|choice| choice.position <= position)
        .map(|choice| choice.explicit())
        .collect();
    decide_from_history(policies, purpose, jurisdiction, at, &choices).allowed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn index_checks_agree_with_the_rule(
        requests in prop::collection::vec(prop::collection::vec(choice_strategy(), 1..4), 1..10),
        build_after in 0usize..10,
        with_v2 in any::<bool>(),
        clock_offsets in prop::collection::vec(-2i64..3, 10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(DEADLINE - DAY)));
        let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock.clone()).unwrap();
        ledger.append(vec![policy_event(optout_core::policy::DEFAULT_POLICY_TOML)]).unwrap();
        if with_v2 {
            ledger.append(vec![policy_event(&policy_v2())]).unwrap();
        }
        let mut index = None;
        for (step, request) in requests.iter().enumerate() {
            if step == build_after {
                index = Some(ConsentIndex::build(&ledger).unwrap());
            }
            clock.advance_micros(clock_offsets[step] * DAY / 2);
            ledger.append(request.iter().map(to_event).collect()).unwrap();
        }
        let mut index = index.unwrap_or_else(|| ConsentIndex::build(&ledger).unwrap());
        index.catch_up(&ledger).unwrap();
        let head = ledger.head().unwrap().unwrap().position;
        prop_assert_eq!(index.applied_position(), head);
        let policies = optout_store::policy_history(&ledger).unwrap();
        let mut query_times = times();
        query_times.push(clock.now().as_micros());
        query_times.push(i64::MAX);
        for purpose in [Purpose::new("ai_training").unwrap(), Purpose::new("ai_personalization").unwrap()] {
            for &at in &query_times {
                let at = Timestamp::from_micros(at);
                let snapshot = Snapshot::build(&ledger, &purpose, at, None).unwrap();
                let mut batch_members = Vec::new();
                let mut batch_jurisdictions = Vec::new();
                let mut batch_expected = Vec::new();
                for &member in &MEMBERS {
                    for jurisdiction in jurisdictions() {
                        let want = expected(&ledger, &policies, member, &purpose, jurisdiction, at, head);
                        let got = index.check(MemberId(member), jurisdiction, &purpose, at, &ledger).unwrap();
                        prop_assert_eq!(got.allowed, want, "check member {} {:?} {} at {}", member, jurisdiction, purpose, at);
                        prop_assert_eq!(snapshot.check(MemberId(member), jurisdiction), want, "snapshot member {} {:?} at {}", member, jurisdiction, at);
                        batch_members.push(MemberId(member));
                        batch_jurisdictions.push(jurisdiction);
                        batch_expected.push(want);
                    }
                }
                let words = index.check_batch(&purpose, at, &batch_members, &batch_jurisdictions, &ledger).unwrap();
                for (i, want) in batch_expected.iter().enumerate() {
                    prop_assert_eq!((words[i / 64] >> (i % 64)) & 1 == 1, *want, "batch entry {} at {}", i, at);
                }
            }
        }
    }

    // A snapshot (purpose, T, S) is the same after any later appends, including imports
    // dated before T; taken at the head afterwards, it may differ.
    #[test]
    fn snapshot_is_deterministic_after_backdated_imports(
        before in prop::collection::vec(choice_strategy(), 1..12),
        after in prop::collection::vec(choice_strategy(), 1..12),
        cutoff in prop::sample::select(times()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(DEADLINE + 2 * DAY)));
        let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock).unwrap();
        ledger.append(vec![policy_event(optout_core::policy::DEFAULT_POLICY_TOML)]).unwrap();
        ledger.append(before.iter().map(to_event).collect()).unwrap();
        let purpose = Purpose::new("ai_training").unwrap();
        let cutoff = Timestamp::from_micros(cutoff);
        let first = Snapshot::build(&ledger, &purpose, cutoff, None).unwrap();
        let backdated: Vec<_> = after
            .iter()
            .map(|choice| Choice { at: Some(choice.at.unwrap_or(cutoff.as_micros()) .min(cutoff.as_micros())), ..choice.clone() })
            .collect();
        ledger.append(backdated.iter().map(to_event).collect()).unwrap();
        let again = Snapshot::build(&ledger, &purpose, cutoff, Some(first.position)).unwrap();
        prop_assert_eq!(&again.explicit, &first.explicit);
        prop_assert_eq!(again.head_hash, first.head_hash);
        prop_assert_eq!(again.policy_version, first.policy_version);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    // A snapshot started from a stored checkpoint equals one read from the whole ledger,
    // whatever was appended after the checkpoint (live choices, imports dated after it,
    // and imports dated before its cutoff that may or may not be a member's latest).
    #[test]
    fn snapshot_from_checkpoint_equals_full_scan(
        before in prop::collection::vec(choice_strategy(), 0..12),
        after in prop::collection::vec(choice_strategy(), 0..12),
        checkpoint_cutoff in prop::sample::select(times()),
        cutoffs in prop::collection::vec(prop::sample::select(times()), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(DEADLINE)));
        let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock.clone()).unwrap();
        ledger.append(vec![policy_event(optout_core::policy::DEFAULT_POLICY_TOML)]).unwrap();
        if !before.is_empty() {
            ledger.append(before.iter().map(to_event).collect()).unwrap();
        }
        let purpose = Purpose::new("ai_training").unwrap();
        let checkpoint = Snapshot::build(&ledger, &purpose, Timestamp::from_micros(checkpoint_cutoff), None).unwrap();
        checkpoint.save_checkpoint(&ledger, clock.now()).unwrap();
        clock.advance_micros(DAY);
        if !after.is_empty() {
            ledger.append(after.iter().map(to_event).collect()).unwrap();
        }
        for cutoff in cutoffs.into_iter().chain([checkpoint_cutoff, i64::MAX]) {
            let cutoff = Timestamp::from_micros(cutoff);
            let full = Snapshot::build_with(&ledger, &purpose, cutoff, None, CheckpointUse::Never).unwrap();
            let fast = Snapshot::build(&ledger, &purpose, cutoff, None).unwrap();
            prop_assert_eq!(&fast.explicit, &full.explicit, "cutoff {} source {:?}", cutoff, fast.source);
            let uses_checkpoint = matches!(fast.source, SnapshotSource::Checkpoint { .. });
            prop_assert_eq!(uses_checkpoint, cutoff >= checkpoint.cutoff, "source {:?}", fast.source);
        }
    }
}

// Edges by example: a choice exactly at the cutoff counts, one microsecond later does not;
// an equal-time pair is decided by ledger position; ids at u64::MAX work.
#[test]
fn cutoff_edges_and_ties() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
        DEADLINE + 10 * DAY,
    )));
    let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock).unwrap();
    ledger
        .append(vec![policy_event(optout_core::policy::DEFAULT_POLICY_TOML)])
        .unwrap();
    let t = DEADLINE + DAY;
    let big = u64::MAX;
    let events = [
        Choice {
            member: big,
            personalization: false,
            allowed: false,
            at: Some(t),
        },
        Choice {
            member: big,
            personalization: false,
            allowed: true,
            at: Some(t + 1),
        },
        Choice {
            member: 7,
            personalization: false,
            allowed: false,
            at: Some(t),
        },
        Choice {
            member: 7,
            personalization: false,
            allowed: true,
            at: Some(t),
        },
        Choice {
            member: 7,
            personalization: false,
            allowed: false,
            at: Some(t),
        },
    ];
    ledger
        .append(events.iter().map(to_event).collect())
        .unwrap();
    let index = ConsentIndex::build(&ledger).unwrap();
    let purpose = Purpose::new("ai_training").unwrap();
    let us = Jurisdiction::parse("US").ok();
    let at = |micros| Timestamp::from_micros(micros);
    assert!(
        !index
            .check(MemberId(big), us, &purpose, at(t), &ledger)
            .unwrap()
            .allowed
    );
    assert!(
        index
            .check(MemberId(big), us, &purpose, at(t + 1), &ledger)
            .unwrap()
            .allowed
    );
    assert!(
        index
            .check(MemberId(big), us, &purpose, at(t - 1), &ledger)
            .unwrap()
            .allowed,
        "default before any choice"
    );
    assert!(
        !index
            .check(MemberId(7), us, &purpose, at(t), &ledger)
            .unwrap()
            .allowed,
        "last of three equal times wins"
    );
    let snapshot = Snapshot::build(&ledger, &purpose, at(t), None).unwrap();
    assert_eq!(snapshot.explicit.get(MemberId(big)), Some(false));
    assert_eq!(snapshot.explicit.get(MemberId(7)), Some(false));
    let earlier = Snapshot::build(&ledger, &purpose, at(t), Some(LedgerPosition(5))).unwrap();
    assert_eq!(
        earlier.explicit.get(MemberId(7)),
        Some(true),
        "as recorded up to position 5"
    );
}
