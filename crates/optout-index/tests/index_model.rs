//! The index agrees with the pure consent rule: random histories (live and backdated
//! imported choices, several purposes, ids above 2^32) are appended to a real SQLite
//! ledger, the index is built part-way and catches up on the rest, and every point check,
//! batch check and snapshot is compared with `decide_from_history` over the member's events.
//! The same runs with members clustered above 2^32 exercise the dense batch layout (built
//! lazily by a check or up front, then kept in step by catch-up), and a model test drives
//! `ExplicitSet` directly through layouts that grow, are refused and fall back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use optout_core::consent::decide_from_history;
use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Clock, Jurisdiction, LedgerPosition, ManualClock, MemberId, PolicyDocument,
    PolicyHistory, PolicyRecord, Purpose, Source, Timestamp,
};
use std::collections::HashMap;

use optout_core::consent::decide;
use optout_core::ExplicitChoice;
use optout_index::decision_table::ExplicitState;
use optout_index::index::check_batch_with;
use optout_index::{
    CheckpointUse, ConsentIndex, DecisionTable, DenseLimits, ExplicitSet, Snapshot, SnapshotSource,
};
use optout_sqlite::SqliteLedger;
use optout_store::{ChoiceTime, Ledger, NewEvent};
use proptest::prelude::*;

const DAY: i64 = 86_400_000_000;
/// 2023-10-30T00:00:00Z, the default policy's deadline.
const DEADLINE: i64 = 1_698_624_000_000_000;

const MEMBERS: [u64; 5] = [1, 2, (1 << 32) + 1, u64::MAX - 1, u64::MAX];
/// Members close together above 2^32, so a dense layout covers them.
const CLUSTER_BASE: u64 = 3 << 32;
const CLUSTER: [u64; 5] = [
    CLUSTER_BASE + 1,
    CLUSTER_BASE + 2,
    CLUSTER_BASE + 37,
    CLUSTER_BASE + 100,
    CLUSTER_BASE + 2000,
];
/// Ids without choices around and far from the cluster: below and beyond a dense range.
const CLUSTER_PROBES: [u64; 4] = [CLUSTER_BASE - 64, CLUSTER_BASE + 5000, 1, u64::MAX];

/// Limits under which the cluster always gets a dense layout, built on the first check.
fn eager_dense_limits() -> DenseLimits {
    DenseLimits {
        span_ids_per_member_max: 1 << 16,
        checked_ids_before_build_min: 0,
        ..DenseLimits::default()
    }
}

/// The same choice for the member at the same place in `pool`.
fn in_pool(choice: &Choice, pool: &[u64; 5]) -> Choice {
    let place = MEMBERS
        .iter()
        .position(|&member| member == choice.member)
        .unwrap_or(0);
    Choice {
        member: pool[place],
        ..choice.clone()
    }
}

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
        clustered in any::<bool>(),
        dense_up_front in any::<bool>(),
    ) {
        // Clustered: members above 2^32 within 2 000 ids, dense layouts allowed and built
        // by the first check (or right after the build, before catching up).
        let (pool, probes): (&[u64; 5], &[u64]) = if clustered { (&CLUSTER, &CLUSTER_PROBES) } else { (&MEMBERS, &[]) };
        let requests: Vec<Vec<Choice>> = requests
            .iter()
            .map(|request| request.iter().map(|choice| in_pool(choice, pool)).collect())
            .collect();
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
                let mut built = ConsentIndex::build(&ledger).unwrap();
                if clustered {
                    built.set_dense_limits(eager_dense_limits());
                    if dense_up_front {
                        built.prepare_dense(&Purpose::new("ai_training").unwrap());
                    }
                }
                index = Some(built);
            }
            clock.advance_micros(clock_offsets[step] * DAY / 2);
            ledger.append(request.iter().map(to_event).collect()).unwrap();
        }
        let mut index = index.unwrap_or_else(|| {
            let mut built = ConsentIndex::build(&ledger).unwrap();
            if clustered {
                built.set_dense_limits(eager_dense_limits());
            }
            built
        });
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
                let mut snapshot = Snapshot::build(&ledger, &purpose, at, None).unwrap();
                if clustered {
                    snapshot.explicit.set_dense_limits(eager_dense_limits());
                }
                let mut batch_members = Vec::new();
                let mut batch_jurisdictions = Vec::new();
                let mut batch_expected = Vec::new();
                for &member in pool.iter().chain(probes) {
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
                let snapshot_words = snapshot.check_batch(&batch_members, &batch_jurisdictions).unwrap();
                for (i, want) in batch_expected.iter().enumerate() {
                    prop_assert_eq!((words[i / 64] >> (i % 64)) & 1 == 1, *want, "batch entry {} at {}", i, at);
                    prop_assert_eq!((snapshot_words[i / 64] >> (i % 64)) & 1 == 1, *want, "snapshot batch entry {} at {}", i, at);
                }
                // The dense path was the one taken exactly when the members are clustered.
                let explicit = index.explicit(&purpose).filter(|set| !set.is_empty());
                if index.is_current_at(&purpose, at) {
                    if let Some(explicit) = explicit {
                        prop_assert_eq!(explicit.dense().is_some(), clustered);
                    }
                }
                if !snapshot.explicit.is_empty() {
                    prop_assert_eq!(snapshot.explicit.dense().is_some(), clustered);
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

const MODEL_CLUSTER_BASE: u64 = 5 << 32;

/// An id near one of a few far-apart bases: one cluster above 2^32, the low ids, the 2^32
/// boundary or the top of the id space. [`near_cluster`] folds the others into the cluster.
fn model_id_strategy() -> impl Strategy<Value = u64> {
    (
        prop::sample::select(vec![
            MODEL_CLUSTER_BASE,
            MODEL_CLUSTER_BASE,
            MODEL_CLUSTER_BASE,
            0,
            (1 << 32) - 40,
            u64::MAX - 3000,
        ]),
        0u64..3000,
    )
        .prop_map(|(base, offset)| base + offset)
}

/// The id moved into the cluster (same offset from its base).
fn near_cluster(id: u64) -> u64 {
    let offset = if id >= u64::MAX - 3000 {
        id - (u64::MAX - 3000)
    } else if id >= MODEL_CLUSTER_BASE {
        id - MODEL_CLUSTER_BASE
    } else {
        id % 3000
    };
    MODEL_CLUSTER_BASE + offset
}

#[derive(Clone, Debug)]
enum SetOp {
    /// A choice (`None`: removed, as a snapshot does for a member whose choices moved
    /// after its cutoff).
    Set(u64, Option<bool>),
    /// A batch check of every id the model knows plus these.
    Check(Vec<u64>),
    /// Build the dense layout now.
    Prepare,
    /// Build the dense layout and keep it alone (the bitmaps dropped).
    SwitchToDense,
}

fn set_op_strategy() -> impl Strategy<Value = SetOp> {
    prop_oneof![
        6 => (model_id_strategy(), prop::option::weighted(0.9, any::<bool>()))
            .prop_map(|(id, state)| SetOp::Set(id, state)),
        2 => prop::collection::vec(model_id_strategy(), 0..20).prop_map(SetOp::Check),
        1 => Just(SetOp::Prepare),
        1 => Just(SetOp::SwitchToDense),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    // Batch checks through `ExplicitSet` agree with the pure rule over a model of the latest
    // choices, whichever path answers: the bitmaps, a dense layout built before or after
    // changes, kept alone (the bitmaps dropped, and built back from it for snapshots and
    // exports), grown up or down to new ids, or dropped when a change takes it beyond its
    // limits (bitmaps again). Ids above 2^32, at the top of the id space and outside the
    // dense range are all asked about.
    #[test]
    fn explicit_set_batches_agree_with_the_rule(
        ops in prop::collection::vec(set_op_strategy(), 1..60),
        span_ids_per_member_max in prop::sample::select(vec![4u64, 64, 1 << 20]),
        checked_ids_before_build_min in prop::sample::select(vec![0u64, 30]),
        initial in prop::collection::vec((model_id_strategy(), any::<bool>()), 0..30),
        far_from in 0usize..80,
    ) {
        // Up to op `far_from` every id is in the cluster, so dense layouts get built and
        // grow; after it, far ids may arrive and force them out.
        let ops: Vec<SetOp> = ops
            .into_iter()
            .enumerate()
            .map(|(step, op)| match op {
                SetOp::Set(id, state) if step < far_from => SetOp::Set(near_cluster(id), state),
                SetOp::Check(ids) if step < far_from => SetOp::Check(ids.into_iter().map(near_cluster).collect()),
                op => op,
            })
            .collect();
        let initial: Vec<(u64, bool)> = initial
            .into_iter()
            .map(|(id, allowed)| (if far_from > 0 { near_cluster(id) } else { id }, allowed))
            .collect();
        let policies = PolicyHistory::from_versions([PolicyDocument::default_policy()]).unwrap();
        let purpose = Purpose::new("ai_training").unwrap();
        let at = Timestamp::from_micros(DEADLINE + DAY);
        let table = DecisionTable::new(&policies, &purpose, at);
        let limits = DenseLimits {
            span_ids_per_member_max,
            checked_ids_before_build_min,
            ..DenseLimits::default()
        };
        let mut model: HashMap<u64, bool> = initial.iter().copied().collect();
        let mut sorted: Vec<_> = model.iter().map(|(&id, &allowed)| (MemberId(id), allowed)).collect();
        sorted.sort_unstable_by_key(|(member, _)| member.get());
        let mut set = ExplicitSet::from_sorted(sorted);
        set.set_dense_limits(limits);
        let places = jurisdictions();
        for op in ops {
            match op {
                SetOp::Set(id, Some(allowed)) => {
                    set.set(MemberId(id), allowed);
                    model.insert(id, allowed);
                }
                SetOp::Set(id, None) => {
                    set.remove(MemberId(id));
                    model.remove(&id);
                }
                SetOp::Prepare => {
                    set.prepare_dense();
                }
                SetOp::SwitchToDense => {
                    let switched = set.switch_to_dense();
                    prop_assert_eq!(switched, set.is_dense_only());
                    prop_assert_eq!(switched, set.dense().is_some());
                }
                SetOp::Check(extra) => {
                    // The bitmaps, held or built from the dense layout, are the model's.
                    let allowed: Vec<u64> = set.allowed().iter().collect();
                    let denied: Vec<u64> = set.denied().iter().collect();
                    let chosen: Vec<u64> = set.chosen().iter().collect();
                    let mut want_allowed: Vec<u64> = model.iter().filter(|(_, &allowed)| allowed).map(|(&id, _)| id).collect();
                    let mut want_denied: Vec<u64> = model.iter().filter(|(_, &allowed)| !allowed).map(|(&id, _)| id).collect();
                    let mut want_chosen: Vec<u64> = model.keys().copied().collect();
                    want_allowed.sort_unstable();
                    want_denied.sort_unstable();
                    want_chosen.sort_unstable();
                    prop_assert_eq!(allowed, want_allowed);
                    prop_assert_eq!(denied, want_denied);
                    prop_assert_eq!(chosen, want_chosen);
                    let ids: Vec<u64> = model.keys().copied().chain(extra).chain([0, u64::MAX]).collect();
                    let members: Vec<MemberId> = ids.iter().map(|&id| MemberId(id)).collect();
                    let jurisdictions: Vec<_> = (0..ids.len()).map(|i| places[i % places.len()]).collect();
                    let words = check_batch_with(&set, &table, &members, &jurisdictions).unwrap();
                    let unknown = check_batch_with(&set, &table, &members, &[]).unwrap();
                    for (i, &id) in ids.iter().enumerate() {
                        let choice = model.get(&id).map(|&allowed| ExplicitChoice { allowed, at, position: LedgerPosition(1) });
                        let want = decide(&policies, &purpose, jurisdictions[i], at, choice.as_ref()).allowed;
                        let want_unknown = decide(&policies, &purpose, None, at, choice.as_ref()).allowed;
                        prop_assert_eq!((words[i / 64] >> (i % 64)) & 1 == 1, want, "id {} {:?}", id, jurisdictions[i]);
                        prop_assert_eq!((unknown[i / 64] >> (i % 64)) & 1 == 1, want_unknown, "id {} unknown", id);
                        if let Some(dense) = set.dense() {
                            let code = match model.get(&id) { None => 0, Some(true) => 1, Some(false) => 2 };
                            prop_assert_eq!(dense.state_code(id), code, "dense state of {}", id);
                        }
                    }
                }
            }
            prop_assert_eq!(set.len(), model.len() as u64);
        }
        // A dense layout, when kept, never covers more than the limits allow.
        if let Some(dense) = set.dense() {
            let (_, span) = dense.range();
            prop_assert!(span <= limits.span_ids_max);
            prop_assert!(span <= (set.len() + 64) * span_ids_per_member_max, "span {} for {} members", span, set.len());
        }
    }

    // The decision table `ConsentIndex` reuses across batch checks is the one it would
    // resolve afresh, for times in any order around every policy boundary.
    #[test]
    fn cached_decision_table_equals_a_fresh_one(
        order in prop::collection::vec(prop::sample::select(times()), 1..40),
        with_v2 in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(DEADLINE)));
        let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock).unwrap();
        ledger.append(vec![policy_event(optout_core::policy::DEFAULT_POLICY_TOML)]).unwrap();
        let mut index = ConsentIndex::build(&ledger).unwrap();
        if with_v2 {
            ledger.append(vec![policy_event(&policy_v2())]).unwrap();
        }
        let v2_boundary = Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap().as_micros();
        let mut order = order;
        order.extend([v2_boundary - 1, v2_boundary, v2_boundary + 1, i64::MIN, i64::MAX]);
        for (step, at) in order.into_iter().enumerate() {
            if step == 3 {
                index.catch_up(&ledger).unwrap(); // a policy applied mid-way clears the cache
            }
            let at = Timestamp::from_micros(at);
            let cached = index.cached_decision_table(&Purpose::new("ai_training").unwrap(), at);
            let fresh = index.decision_table(&Purpose::new("ai_training").unwrap(), at);
            for jurisdiction in jurisdictions().into_iter().chain(["GB", "CH", "NO"].map(|code| Jurisdiction::parse(code).ok())) {
                for state in [ExplicitState::None, ExplicitState::Allowed, ExplicitState::Denied] {
                    prop_assert_eq!(cached.allowed(jurisdiction, state), fresh.allowed(jurisdiction, state), "{:?} {:?} at {}", jurisdiction, state, at);
                    prop_assert_eq!(cached.basis(jurisdiction, state), fresh.basis(jurisdiction, state));
                }
            }
        }
    }
}
