//! The storage conformance suite: every `Ledger` backend runs these checks in its tests
//! (SQLite always, PostgreSQL in CI), so backends cannot drift apart in behaviour.
//!
//! A backend provides `open(location, clock)`; opening the same location again must see
//! the same ledger (that is how durability across reopen is checked).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::sync::Arc;

use optout_core::event::Actor;
use optout_core::policy::DEFAULT_POLICY_TOML;
use optout_core::{
    ChoiceRecord, Clock, EventBody, LedgerPosition, ManualClock, MemberId, PolicyDocument,
    PolicyRecord, Purpose, Source, Timestamp,
};
use proptest::prelude::*;

use crate::ledger::{policy_history, ChoiceTime, Ledger, NewEvent};
use crate::verify::verify_ledger;
use crate::StoreError;

/// Opens the ledger at a location (a directory for file-based backends).
pub type OpenLedger<'a> = &'a dyn Fn(&Path, Arc<dyn Clock>) -> Box<dyn Ledger>;

/// 2024-01-01T00:00:00Z, when the suite's clock starts.
pub const SUITE_START: Timestamp = Timestamp::from_micros(1_704_067_200_000_000);

pub fn choice(member: u64, allowed: bool, at: Option<Timestamp>) -> NewEvent {
    NewEvent::Choice {
        choice: ChoiceRecord {
            member: MemberId(member),
            purpose: Purpose::new("ai_training").unwrap(),
            allowed,
            at: at.unwrap_or_default(),
            source: if at.is_some() {
                Source::Import
            } else {
                Source::Web
            },
            actor: Actor::member(),
            policy_version: Some(optout_core::PolicyVersion(1)),
            notice_version: Some("n1".into()),
            notice_language: Some("en".into()),
            jurisdiction: optout_core::Jurisdiction::parse("US").ok(),
            idempotency_key: None,
        },
        time: at.map_or(ChoiceTime::Now, ChoiceTime::At),
    }
}

pub fn keyed_choice(member: u64, allowed: bool, key: &str) -> NewEvent {
    let mut event = choice(member, allowed, None);
    if let NewEvent::Choice { choice, .. } = &mut event {
        choice.idempotency_key = Some(key.to_string());
    }
    event
}

pub fn default_policy_event() -> NewEvent {
    let document = PolicyDocument::default_policy();
    NewEvent::Policy(PolicyRecord {
        version: document.version,
        effective_from: document.effective_from,
        document: DEFAULT_POLICY_TOML.to_string(),
    })
}

/// Runs every check; each gets a fresh location under a temporary directory.
pub fn run_all(open: OpenLedger<'_>) {
    appends_are_gapless_chained_and_verify(open);
    live_choices_get_commit_time_and_imports_keep_theirs(open);
    recorded_time_never_goes_backwards(open);
    idempotency_key_writes_one_event(open);
    invalid_requests_write_nothing(open);
    member_choices_are_per_member_and_purpose(open);
    concurrent_appends_all_land_once(open);
    ledger_survives_reopen(open);
    scan_choices_matches_read_range(open);
    latest_choices_by_member_match_the_rule(open);
    index_checkpoints_are_found_by_cutoff_and_position(open);
    dataset_events_are_chained_and_listed(open);
    matches_a_simple_model(open);
}

fn fresh(open: OpenLedger<'_>) -> (tempfile::TempDir, Arc<ManualClock>, Box<dyn Ledger>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let ledger = open(dir.path(), clock.clone());
    (dir, clock, ledger)
}

pub fn appends_are_gapless_chained_and_verify(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    assert_eq!(ledger.head().unwrap(), None);
    assert_eq!(verify_ledger(ledger.as_ref(), |_| {}).unwrap(), None);
    let first = ledger.append(vec![default_policy_event()]).unwrap();
    let more = ledger
        .append(vec![
            choice(1, false, None),
            choice(u64::MAX, true, None),
            choice((1 << 32) + 1, false, None),
        ])
        .unwrap();
    let positions: Vec<u64> = first
        .iter()
        .chain(&more)
        .map(|a| a.event.position().get())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    for pair in more.windows(2) {
        assert_eq!(pair[1].event.prev_hash, pair[0].event.hash);
    }
    let head = ledger.head().unwrap().unwrap();
    assert_eq!(head.position, LedgerPosition(4));
    assert_eq!(head.hash, more[2].event.hash);
    let read = ledger.read_range(LedgerPosition(2), 10).unwrap();
    assert_eq!(
        read,
        more.iter().map(|a| a.event.clone()).collect::<Vec<_>>()
    );
    assert_eq!(verify_ledger(ledger.as_ref(), |_| {}).unwrap(), Some(head));
    assert_eq!(policy_history(ledger.as_ref()).unwrap().versions().len(), 1);
}

pub fn live_choices_get_commit_time_and_imports_keep_theirs(open: OpenLedger<'_>) {
    let (_dir, clock, ledger) = fresh(open);
    clock.set(SUITE_START.saturating_add_micros(5_000_000));
    let old = Timestamp::from_micros(1_000);
    let appended = ledger
        .append(vec![choice(7, true, None), choice(7, false, Some(old))])
        .unwrap();
    let live = appended[0].event.choice().unwrap();
    assert_eq!(live.at, clock.now());
    assert_eq!(appended[0].event.event.recorded_at, clock.now());
    assert_eq!(appended[1].event.choice().unwrap().at, old);
}

pub fn recorded_time_never_goes_backwards(open: OpenLedger<'_>) {
    let (_dir, clock, ledger) = fresh(open);
    let later = ledger.append(vec![choice(1, true, None)]).unwrap();
    clock.set(SUITE_START.saturating_add_micros(-60_000_000));
    let earlier_clock = ledger.append(vec![choice(1, false, None)]).unwrap();
    assert!(earlier_clock[0].event.event.recorded_at >= later[0].event.event.recorded_at);
    verify_ledger(ledger.as_ref(), |_| {}).unwrap();
}

pub fn idempotency_key_writes_one_event(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    let first = ledger.append(vec![keyed_choice(9, false, "k-1")]).unwrap();
    let again = ledger.append(vec![keyed_choice(9, false, "k-1")]).unwrap();
    assert!(!first[0].replayed);
    assert!(again[0].replayed);
    assert_eq!(again[0].event, first[0].event);
    // The same key in one request, and another member's identical key, are distinct cases.
    let mixed = ledger
        .append(vec![
            keyed_choice(10, true, "k-1"),
            keyed_choice(10, true, "k-1"),
        ])
        .unwrap();
    assert!(!mixed[0].replayed && mixed[1].replayed);
    assert_eq!(ledger.head().unwrap().unwrap().position, LedgerPosition(2));
    let conflict = ledger
        .append(vec![keyed_choice(9, true, "k-1")])
        .unwrap_err();
    assert!(
        matches!(conflict, StoreError::IdempotencyConflict { .. }),
        "{conflict}"
    );
    assert_eq!(ledger.head().unwrap().unwrap().position, LedgerPosition(2));
}

pub fn invalid_requests_write_nothing(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    ledger.append(vec![default_policy_event()]).unwrap();
    let head = ledger.head().unwrap();
    // Same version again: out of order. The valid choice before it must not land either.
    let error = ledger
        .append(vec![choice(1, true, None), default_policy_event()])
        .unwrap_err();
    assert!(matches!(error, StoreError::Rejected(_)), "{error}");
    let broken = NewEvent::Policy(PolicyRecord {
        version: optout_core::PolicyVersion(2),
        effective_from: SUITE_START,
        document: "version = 2\nnot toml".into(),
    });
    assert!(matches!(
        ledger.append(vec![broken]),
        Err(StoreError::Rejected(_))
    ));
    let mut bad_key = keyed_choice(1, true, "x");
    if let NewEvent::Choice { choice, .. } = &mut bad_key {
        choice.idempotency_key = Some("line\nbreak".into());
    }
    assert!(matches!(
        ledger.append(vec![bad_key]),
        Err(StoreError::Rejected(_))
    ));
    assert_eq!(ledger.head().unwrap(), head);
    // A later valid request still gets the next position.
    let next = ledger.append(vec![choice(1, true, None)]).unwrap();
    assert_eq!(next[0].event.position(), LedgerPosition(2));
}

pub fn member_choices_are_per_member_and_purpose(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    let big = u64::MAX;
    let mut other_purpose = choice(big, true, None);
    if let NewEvent::Choice { choice, .. } = &mut other_purpose {
        choice.purpose = Purpose::new("ai_personalization").unwrap();
    }
    ledger
        .append(vec![
            choice(big, false, None),
            choice(big - 1, true, None),
            other_purpose,
            choice(big, true, None),
        ])
        .unwrap();
    let training = Purpose::new("ai_training").unwrap();
    let mine = ledger.member_choices(MemberId(big), &training).unwrap();
    assert_eq!(
        mine.iter().map(|c| c.position.get()).collect::<Vec<_>>(),
        [1, 4]
    );
    assert!(mine.iter().all(|c| c.choice.member == MemberId(big)));
    assert!(ledger
        .member_choices(MemberId(3), &training)
        .unwrap()
        .is_empty());
}

pub fn concurrent_appends_all_land_once(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    let ledger: Arc<dyn Ledger> = Arc::from(ledger);
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                (0..100u64)
                    .map(|index| {
                        ledger
                            .append(vec![choice(thread * 1000 + index, index % 2 == 0, None)])
                            .unwrap()
                    })
                    .flat_map(|appended| appended.into_iter().map(|a| a.event))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acknowledged: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acknowledged.sort_by_key(|event| event.position());
    let stored = ledger.read_range(LedgerPosition::FIRST, 10_000).unwrap();
    assert_eq!(stored, acknowledged);
    assert_eq!(stored.len(), 800);
    verify_ledger(ledger.as_ref(), |_| {}).unwrap();
}

pub fn ledger_survives_reopen(open: OpenLedger<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SUITE_START));
    let written = {
        let ledger = open(dir.path(), clock.clone());
        ledger
            .append(vec![default_policy_event(), choice(5, false, None)])
            .unwrap()
    };
    let ledger = open(dir.path(), clock);
    let stored = ledger.read_range(LedgerPosition::FIRST, 10).unwrap();
    assert_eq!(
        stored,
        written.into_iter().map(|a| a.event).collect::<Vec<_>>()
    );
    let next = ledger.append(vec![choice(5, true, None)]).unwrap();
    assert_eq!(next[0].event.position(), LedgerPosition(3));
    verify_ledger(ledger.as_ref(), |_| {}).unwrap();
}

/// (member, allowed, idempotency key as (member, key number)) of each stored event.
type ModelEvent = (u64, bool, Option<(u64, u8)>);

pub fn scan_choices_matches_read_range(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    ledger.append(vec![default_policy_event()]).unwrap();
    let mut other = choice(u64::MAX, true, Some(Timestamp::from_micros(-7)));
    if let NewEvent::Choice { choice, .. } = &mut other {
        choice.purpose = Purpose::new("ai_personalization").unwrap();
    }
    ledger
        .append(vec![
            choice(1, false, None),
            other,
            choice(1 << 40, true, Some(Timestamp::from_micros(3))),
        ])
        .unwrap();
    ledger.append(vec![choice(2, true, None)]).unwrap();
    let expected: Vec<_> = ledger
        .read_range(LedgerPosition::FIRST, 100)
        .unwrap()
        .into_iter()
        .filter(|event| event.position() <= LedgerPosition(4))
        .filter_map(|event| {
            let position = event.position();
            event
                .choice()
                .map(|c| (position, c.member, c.purpose.clone(), c.allowed, c.at))
        })
        .collect();
    let mut scanned = Vec::new();
    ledger
        .scan_choices(LedgerPosition(4), &mut |facts| {
            scanned.push((
                facts.position,
                facts.member,
                facts.purpose.clone(),
                facts.allowed,
                facts.at,
            ))
        })
        .unwrap();
    assert_eq!(scanned.len(), 3);
    assert_eq!(scanned, expected);
}

/// A backend's `latest_choices_by_member`, if it has one, gives each member's latest
/// choice by (time, position) among the purpose's choices up to the cutoff and position,
/// in ascending u64 order (ids from 2^63 up included), exactly as a model computes it from
/// `scan_choices`; a backend without one visits nothing.
pub fn latest_choices_by_member_match_the_rule(open: OpenLedger<'_>) {
    let member = prop_oneof![
        0u64..3,
        Just((1u64 << 32) + 7),
        Just((1u64 << 63) - 1),
        Just(1u64 << 63),
        Just(u64::MAX),
    ];
    // (member, allowed, time, other purpose): times collide often, so ties are common.
    let event = (member, any::<bool>(), -3i64..3, prop::bool::weighted(0.2));
    let case = (
        proptest::collection::vec(proptest::collection::vec(event, 1..6), 1..5),
        proptest::collection::vec((-4i64..4, 0u64..24), 1..4),
    );
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let purpose = Purpose::new("ai_training").unwrap();
    let result = runner.run(&case, |(batches, queries)| {
        let (_dir, _clock, ledger) = fresh(open);
        ledger.append(vec![default_policy_event()]).unwrap();
        for batch in batches {
            let events = batch
                .into_iter()
                .map(|(member, allowed, at, other_purpose)| {
                    let mut event = choice(member, allowed, Some(Timestamp::from_micros(at)));
                    if let (true, NewEvent::Choice { choice, .. }) = (other_purpose, &mut event) {
                        choice.purpose = Purpose::new("ai_personalization").unwrap();
                    }
                    event
                })
                .collect();
            ledger.append(events).unwrap();
        }
        for (cutoff, up_to) in queries {
            let (cutoff, up_to) = (Timestamp::from_micros(cutoff), LedgerPosition(up_to));
            let mut model = std::collections::BTreeMap::new();
            ledger
                .scan_choices(up_to, &mut |facts| {
                    if facts.purpose == &purpose && facts.at <= cutoff {
                        let candidate = (facts.at, facts.position, facts.allowed);
                        let latest = model.entry(facts.member.get()).or_insert(candidate);
                        *latest = (*latest).max(candidate);
                    }
                })
                .unwrap();
            let expected: Vec<(u64, bool)> = model
                .into_iter()
                .map(|(member, (_, _, allowed))| (member, allowed))
                .collect();
            let mut visited = Vec::new();
            let answered = ledger
                .latest_choices_by_member(&purpose, cutoff, up_to, &mut |member, allowed| {
                    visited.push((member.get(), allowed))
                })
                .unwrap();
            if answered {
                prop_assert_eq!(&visited, &expected, "cutoff {:?} up to {:?}", cutoff, up_to);
            } else {
                prop_assert!(visited.is_empty());
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

pub fn index_checkpoints_are_found_by_cutoff_and_position(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    let purpose = Purpose::new("ai_training").unwrap();
    let checkpoint = |cutoff: i64, position: u64, tag: u8| crate::IndexCheckpoint {
        purpose: purpose.clone(),
        cutoff: Timestamp::from_micros(cutoff),
        position: LedgerPosition(position),
        ledger_hash: optout_core::EventHash([tag; 32]),
        allowed: vec![tag],
        denied: vec![tag, tag],
        created_at: SUITE_START,
    };
    assert_eq!(
        ledger
            .find_index_checkpoint(&purpose, Timestamp::MAX, LedgerPosition(u64::MAX >> 1))
            .unwrap(),
        None
    );
    for (cutoff, position, tag) in [(100, 10, 1), (200, 10, 2), (50, 20, 3), (300, 30, 4)] {
        ledger
            .save_index_checkpoint(&checkpoint(cutoff, position, tag))
            .unwrap();
    }
    let find = |cutoff: i64, position: u64| {
        ledger
            .find_index_checkpoint(
                &purpose,
                Timestamp::from_micros(cutoff),
                LedgerPosition(position),
            )
            .unwrap()
            .map(|found| found.allowed[0])
    };
    assert_eq!(find(250, 25), Some(3), "greatest position first");
    assert_eq!(find(250, 15), Some(2), "then greatest cutoff");
    assert_eq!(find(150, 15), Some(1));
    assert_eq!(find(40, 100), None, "no checkpoint at or before cutoff 40");
    assert_eq!(find(1_000, 9), None, "none at or before position 9");
    let other = Purpose::new("ai_personalization").unwrap();
    assert_eq!(
        ledger
            .find_index_checkpoint(&other, Timestamp::MAX, LedgerPosition(100))
            .unwrap(),
        None
    );
    ledger
        .save_index_checkpoint(&checkpoint(100, 10, 9))
        .unwrap();
    assert_eq!(find(150, 15), Some(9), "saving the same key replaces it");
}

pub fn dataset_events_are_chained_and_listed(open: OpenLedger<'_>) {
    let (_dir, _clock, ledger) = fresh(open);
    ledger
        .append(vec![default_policy_event(), choice(1, false, None)])
        .unwrap();
    let dataset = |position: u64, digest: &str| {
        NewEvent::Dataset(optout_core::DatasetRecord {
            dataset_id: "ds-1".into(),
            purpose: Purpose::new("ai_training").unwrap(),
            cutoff: SUITE_START,
            snapshot_position: LedgerPosition(position),
            manifest_sha256: digest.into(),
            rows_written: 10,
            members_included: 9,
        })
    };
    let digest = "0f".repeat(32);
    assert!(
        matches!(
            ledger.append(vec![dataset(3, &digest)]),
            Err(StoreError::Rejected(_))
        ),
        "snapshot beyond the head"
    );
    assert!(
        matches!(
            ledger.append(vec![dataset(2, "XYZ")]),
            Err(StoreError::Rejected(_))
        ),
        "not a digest"
    );
    let appended = ledger.append(vec![dataset(2, &digest)]).unwrap();
    assert_eq!(appended[0].event.position(), LedgerPosition(3));
    let listed = ledger.dataset_records().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, LedgerPosition(3));
    assert_eq!(listed[0].1.manifest_sha256, digest);
    assert_eq!(
        EventBody::Dataset(listed[0].1.clone()),
        appended[0].event.event.body
    );
    assert_eq!(
        ledger.read_range(LedgerPosition(3), 1).unwrap()[0],
        appended[0].event
    );
    verify_ledger(ledger.as_ref(), |_| {}).unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Live { member: u64, allowed: bool },
    Imported { member: u64, allowed: bool, at: i64 },
    Keyed { member: u64, allowed: bool, key: u8 },
    Tick(i64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let member = prop_oneof![0u64..4, Just(u64::MAX), Just((1u64 << 32) + 7)];
    prop_oneof![
        (member.clone(), any::<bool>()).prop_map(|(member, allowed)| Op::Live { member, allowed }),
        (member.clone(), any::<bool>(), -5i64..5).prop_map(|(member, allowed, at)| Op::Imported {
            member,
            allowed,
            at
        }),
        (member, any::<bool>(), 0u8..3).prop_map(|(member, allowed, key)| Op::Keyed {
            member,
            allowed,
            key
        }),
        (-3i64..3).prop_map(Op::Tick),
    ]
}

/// Model-based: the ledger behaves like a Vec of events with gapless positions, where a
/// repeated (member, key) returns the first event (or conflicts) and writes nothing.
pub fn matches_a_simple_model(open: OpenLedger<'_>) {
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(
        &proptest::collection::vec(proptest::collection::vec(op_strategy(), 1..4), 1..12),
        |requests| {
            let (_dir, clock, ledger) = fresh(open);
            let mut model: Vec<ModelEvent> = Vec::new();
            for request in requests {
                let mut events = Vec::new();
                let mut expected = Vec::new();
                let mut conflict = false;
                let mut batch_model = model.clone();
                for op in &request {
                    match op {
                        Op::Tick(delta) => clock.advance_micros(*delta),
                        Op::Live { member, allowed } => {
                            events.push(choice(*member, *allowed, None));
                            batch_model.push((*member, *allowed, None));
                            expected.push(batch_model.len());
                        }
                        Op::Imported {
                            member,
                            allowed,
                            at,
                        } => {
                            events.push(choice(
                                *member,
                                *allowed,
                                Some(Timestamp::from_micros(*at)),
                            ));
                            batch_model.push((*member, *allowed, None));
                            expected.push(batch_model.len());
                        }
                        Op::Keyed {
                            member,
                            allowed,
                            key,
                        } => {
                            events.push(keyed_choice(*member, *allowed, &format!("key-{key}")));
                            let earlier = batch_model
                                .iter()
                                .position(|(m, _, k)| *m == *member && *k == Some((*member, *key)));
                            match earlier {
                                Some(index) if batch_model[index].1 == *allowed => {
                                    expected.push(index + 1)
                                }
                                Some(_) => conflict = true,
                                None => {
                                    batch_model.push((*member, *allowed, Some((*member, *key))));
                                    expected.push(batch_model.len());
                                }
                            }
                        }
                    }
                }
                if events.is_empty() {
                    continue;
                }
                match ledger.append(events) {
                    Ok(appended) => {
                        prop_assert!(!conflict, "a conflicting key was accepted");
                        let got: Vec<usize> = appended
                            .iter()
                            .map(|a| a.event.position().get() as usize)
                            .collect();
                        prop_assert_eq!(got, expected);
                        model = batch_model;
                    }
                    Err(StoreError::IdempotencyConflict { .. }) => prop_assert!(conflict),
                    Err(other) => prop_assert!(false, "unexpected error {}", other),
                }
            }
            let stored = ledger.read_range(LedgerPosition::FIRST, 1_000).unwrap();
            prop_assert_eq!(stored.len(), model.len());
            for (event, (member, allowed, _)) in stored.iter().zip(&model) {
                let EventBody::Choice(choice) = &event.event.body else {
                    panic!("not a choice")
                };
                prop_assert_eq!(choice.member.get(), *member);
                prop_assert_eq!(choice.allowed, *allowed);
            }
            let verified = verify_ledger(ledger.as_ref(), |_| ()).is_ok();
            prop_assert!(verified, "the chain does not verify");
            Ok(())
        },
    );
    if let Err(error) = result {
        panic!("ledger model test failed: {error}");
    }
}
