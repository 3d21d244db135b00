#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The effective-consent rule (`consent::decide`, `latest_choice_at`, `decide_from_history`)
//! checked three ways: a model-based property test over random policy histories (built as
//! TOML text and parsed, so the parser is exercised too) and random choice histories,
//! example tests for each edge of the rule, and a replay of how real platforms moved
//! regions between opt-in, excluded and opt-out.
//!
//! Member ids do not appear here on purpose: the rule never sees a `MemberId` (an
//! `ExplicitChoice` carries only `allowed`, `at` and `position`), so ids above 2^32 or at
//! `u64::MAX` cannot change a decision. What is a `u64` the rule does order by is the ledger
//! position, so positions around 2^32 and near `u64::MAX` are covered instead.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use optout_core::consent::{decide, decide_from_history, latest_choice_at};
use optout_core::{
    Decision, ExplicitChoice, Jurisdiction, LedgerPosition, Mode, PolicyDocument, PolicyHistory,
    Purpose, Reason, Rule, Timestamp,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

fn t(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn micros_before(at: Timestamp) -> Timestamp {
    at.saturating_add_micros(-1)
}

fn code(text: &str) -> Option<Jurisdiction> {
    Some(Jurisdiction::parse(text).unwrap())
}

fn purpose(name: &str) -> Purpose {
    Purpose::new(name).unwrap()
}

fn choice(allowed: bool, at: &str, position: u64) -> ExplicitChoice {
    ExplicitChoice {
        allowed,
        at: t(at),
        position: LedgerPosition(position),
    }
}

fn history(documents: &[&str]) -> PolicyHistory {
    PolicyHistory::from_versions(documents.iter().enumerate().map(|(index, text)| {
        PolicyDocument::parse(text, &format!("v{}.toml", index + 1))
            .unwrap_or_else(|error| panic!("{error}\n{text}"))
    }))
    .unwrap()
}

/// (allowed, reason name, policy version) of a decision: what most examples check.
fn summary(decision: &Decision) -> (bool, &'static str, Option<u32>) {
    (
        decision.allowed,
        decision.reason.name(),
        decision.policy_version.map(|version| version.0),
    )
}

// ---------------------------------------------------------------------------------------
// 1. Model-based property test
// ---------------------------------------------------------------------------------------

const HOUR: i64 = 3_600_000_000;
/// 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200_000_000;
/// Grid slots every instant is drawn from, so choice times, deadlines and effective_from
/// times coincide often.
const SLOTS: u8 = 8;

/// An instant and how it is written in the TOML text.
#[derive(Clone, Copy, Debug)]
struct TimeSpec {
    at: Timestamp,
    style: u8,
}

fn slot_time(slot: u8, extra_micros: i64) -> Timestamp {
    Timestamp::from_micros(BASE + i64::from(slot) * HOUR + extra_micros)
}

/// Mostly whole hours, sometimes one microsecond or a quarter second past.
fn extra_micros() -> impl Strategy<Value = i64> {
    prop_oneof![6 => Just(0_i64), 1 => Just(1_i64), 1 => Just(250_000_i64)]
}

fn time_spec() -> impl Strategy<Value = TimeSpec> {
    (0..SLOTS, extra_micros(), 0_u8..4).prop_map(|(slot, extra, style)| TimeSpec {
        at: slot_time(slot, extra),
        style,
    })
}

/// Writes an instant as a quoted string or a bare TOML datetime, in UTC or with an offset.
fn render_time(time: TimeSpec) -> String {
    let utc = DateTime::<Utc>::from_timestamp_micros(time.at.as_micros()).unwrap();
    let (offset_seconds, quoted) = match time.style {
        0 => (0, true),
        1 => (0, false),
        2 => (2 * 3600, true),
        _ => (-(5 * 3600 + 30 * 60), false),
    };
    let local = utc.with_timezone(&FixedOffset::east_opt(offset_seconds).unwrap());
    let text = local.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    if quoted {
        format!("\"{text}\"")
    } else {
        text
    }
}

#[derive(Clone, Copy, Debug)]
enum RuleSpec {
    OptOut {
        notified_at: TimeSpec,
        deadline: TimeSpec,
    },
    OptIn,
    Excluded,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    prop_oneof![
        (time_spec(), time_spec()).prop_map(|(a, b)| {
            let (notified_at, deadline) = if a.at <= b.at { (a, b) } else { (b, a) };
            RuleSpec::OptOut {
                notified_at,
                deadline,
            }
        }),
        Just(RuleSpec::OptIn),
        Just(RuleSpec::Excluded),
    ]
}

/// Names a rule may be given to: four country codes and a group of two.
const NAMED: [&str; 5] = ["DE", "FR", "GB", "US", "NORDIC"];
const NORDIC: [&str; 2] = ["SE", "NO"];
const PURPOSES: [&str; 3] = ["ai_training", "p_b", "p_c"];

#[derive(Clone, Debug)]
struct PurposeSpec {
    name: &'static str,
    default: RuleSpec,
    /// (name from `NAMED`, write a country code in lower case, rule).
    named: Vec<(&'static str, bool, RuleSpec)>,
}

fn purpose_body() -> impl Strategy<Value = (RuleSpec, Vec<Option<(bool, RuleSpec)>>)> {
    (
        rule_spec(),
        proptest::collection::vec(
            proptest::option::of((any::<bool>(), rule_spec())),
            NAMED.len(),
        ),
    )
}

#[derive(Clone, Debug)]
struct VersionSpec {
    version: u32,
    effective_from: TimeSpec,
    purposes: Vec<PurposeSpec>,
}

fn version_specs() -> impl Strategy<Value = Vec<VersionSpec>> {
    (1_usize..=4).prop_flat_map(|count| {
        (
            1_u32..5,
            proptest::collection::vec(1_u32..4, count),
            subsequence((0..SLOTS).collect::<Vec<_>>(), count),
            proptest::collection::vec((extra_micros(), 0_u8..4), count),
            proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::bool::weighted(0.85), PURPOSES.len()),
                    proptest::collection::vec(purpose_body(), PURPOSES.len()),
                ),
                count,
            ),
        )
            .prop_map(|(first, steps, slots, times, purposes)| {
                let mut version = first;
                let mut specs = Vec::new();
                for (index, (present, bodies)) in purposes.into_iter().enumerate() {
                    // Each purpose is in a version 85% of the time; at least one always is.
                    let names = PURPOSES
                        .iter()
                        .zip(&present)
                        .enumerate()
                        .filter(|(i, (_, here))| **here || (*i == 0 && !present.contains(&true)))
                        .map(|(_, (name, _))| *name);
                    if index > 0 {
                        version += steps[index];
                    }
                    let (extra, style) = times[index];
                    let purposes = names
                        .into_iter()
                        .zip(bodies)
                        .map(|(name, (default, named))| PurposeSpec {
                            name,
                            default,
                            named: NAMED
                                .iter()
                                .zip(named)
                                .filter_map(|(target, rule)| {
                                    rule.map(|(lower, rule)| (*target, lower, rule))
                                })
                                .collect(),
                        })
                        .collect();
                    specs.push(VersionSpec {
                        version,
                        effective_from: TimeSpec {
                            at: slot_time(slots[index], extra),
                            style,
                        },
                        purposes,
                    });
                }
                specs
            })
    })
}

fn render_rule_fields(rule: RuleSpec, separator: &str) -> String {
    match rule {
        RuleSpec::OptOut {
            notified_at,
            deadline,
        } => format!(
            "mode = \"opt_out\"{separator}notified_at = {}{separator}default_effective_from = {}",
            render_time(notified_at),
            render_time(deadline)
        ),
        RuleSpec::OptIn => "mode = \"opt_in\"".to_string(),
        RuleSpec::Excluded => "mode = \"excluded\"".to_string(),
    }
}

fn render_policy(spec: &VersionSpec) -> String {
    let mut text = format!(
        "version = {}\neffective_from = {}\n\n[groups]\nNORDIC = [\"SE\", \"NO\"]\n",
        spec.version,
        render_time(spec.effective_from)
    );
    for purpose in &spec.purposes {
        let name = purpose.name;
        text.push_str(&format!(
            "\n[purposes.{name}]\ntitle = \"Purpose {name}\"\nnotice = \"We use your data for {name}.\"\nallowed_fields = [\"headline\", \"skills\"]\ndefault = {{ {} }}\n",
            render_rule_fields(purpose.default, ", ")
        ));
        for (target, lower, rule) in &purpose.named {
            let written = if *lower && *target != "NORDIC" {
                target.to_ascii_lowercase()
            } else {
                (*target).to_string()
            };
            text.push_str(&format!(
                "\n[[purposes.{name}.rules]]\njurisdictions = [\"{written}\"]\n{}\n",
                render_rule_fields(*rule, "\n")
            ));
        }
    }
    text
}

/// Codes the model treats as assigned; everything else it is asked about is unassigned.
const MODEL_ASSIGNED: [&str; 8] = ["DE", "FR", "GB", "US", "SE", "NO", "JP", "XK"];
/// What callers pass: missing, named by the policy (in any case, padded), assigned but not
/// named (JP, XK), unassigned (XX, QQ).
const JURISDICTION_INPUTS: [Option<&str>; 12] = [
    None,
    Some("DE"),
    Some("de"),
    Some(" fr "),
    Some("GB"),
    Some("US"),
    Some("SE"),
    Some("no"),
    Some("JP"),
    Some("xk"),
    Some("XX"),
    Some("qq"),
];

/// (slot, extra micros, allowed, gap to the previous ledger position).
fn choice_event() -> impl Strategy<Value = (u8, i64, bool, u64)> {
    (
        0..SLOTS - 2,
        prop_oneof![4 => Just(0_i64), 1 => Just(1_i64)],
        any::<bool>(),
        1_u64..4,
    )
}

fn choice_histories() -> impl Strategy<Value = Vec<ExplicitChoice>> {
    (
        prop_oneof![
            1 => proptest::collection::vec(choice_event(), 0..1),
            2 => proptest::collection::vec(choice_event(), 1..=8),
        ],
        prop_oneof![
            3 => 1_u64..100,
            1 => Just((1_u64 << 32) - 3),
            1 => Just(u64::MAX - 40),
        ],
    )
        .prop_flat_map(|(events, first)| {
            // Positions increase in ledger order; times are independent of them
            // (backdated imports), and the slice order is shuffled on top.
            let mut position = first;
            let choices: Vec<ExplicitChoice> = events
                .into_iter()
                .map(|(slot, extra, allowed, gap)| {
                    position += gap;
                    ExplicitChoice {
                        allowed,
                        at: slot_time(slot, extra),
                        position: LedgerPosition(position),
                    }
                })
                .collect();
            Just(choices).prop_shuffle()
        })
}

#[derive(Clone, Debug)]
struct Case {
    versions: Vec<VersionSpec>,
    purpose: &'static str,
    jurisdiction: Option<&'static str>,
    choices: Vec<ExplicitChoice>,
    at_pick: Index,
    at_delta: i64,
    /// Pick T among all instants rather than those from the first version's start on.
    at_from_all: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        version_specs(),
        prop_oneof![
            6 => Just("ai_training"),
            3 => Just("p_b"),
            2 => Just("p_c"),
            1 => Just("p_never"),
        ],
        select(JURISDICTION_INPUTS.to_vec()),
        choice_histories(),
        any::<Index>(),
        -1_i64..=1,
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(versions, purpose, jurisdiction, choices, at_pick, at_delta, at_from_all)| Case {
                versions,
                purpose,
                jurisdiction,
                choices,
                at_pick,
                at_delta,
                at_from_all,
            },
        )
}

/// Every instant where the answer may change, plus the extremes; T is one of these ±1us.
fn interesting_instants(case: &Case) -> Vec<Timestamp> {
    let mut instants = vec![Timestamp::MIN, Timestamp::MAX, slot_time(SLOTS + 10, 0)];
    instants.extend((0..SLOTS).map(|slot| slot_time(slot, 0)));
    instants.extend(case.choices.iter().map(|choice| choice.at));
    for version in &case.versions {
        instants.push(version.effective_from.at);
        for purpose in &version.purposes {
            let rules = std::iter::once(purpose.default)
                .chain(purpose.named.iter().map(|(_, _, rule)| *rule));
            for rule in rules {
                if let RuleSpec::OptOut {
                    notified_at,
                    deadline,
                } = rule
                {
                    instants.push(notified_at.at);
                    instants.push(deadline.at);
                }
            }
        }
    }
    if !case.at_from_all {
        let first = case.versions[0].effective_from.at;
        instants.retain(|instant| *instant >= first);
    }
    instants.sort();
    instants.dedup();
    instants
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Detail {
    None,
    Choice { position: u64, at: i64 },
    Deadline(i64),
    Mode(&'static str),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Outcome {
    allowed: bool,
    reason: &'static str,
    detail: Detail,
    version: Option<u32>,
}

fn project(decision: &Decision) -> Outcome {
    let detail = match decision.reason {
        Reason::ExplicitChoice { position, at } => Detail::Choice {
            position: position.get(),
            at: at.as_micros(),
        },
        Reason::BeforeDeadline { deadline } => Detail::Deadline(deadline.as_micros()),
        Reason::JurisdictionDefault { mode } => Detail::Mode(mode.as_str()),
        _ => Detail::None,
    };
    Outcome {
        allowed: decision.allowed,
        reason: decision.reason.name(),
        detail,
        version: decision.policy_version.map(|version| version.0),
    }
}

/// The latest choice at or before `at`, by replaying all choices sorted by (time, position).
fn model_latest(choices: &[ExplicitChoice], at: Timestamp) -> Option<ExplicitChoice> {
    let mut sorted = choices.to_vec();
    sorted.sort_by_key(|choice| (choice.at.as_micros(), choice.position.get()));
    let mut latest = None;
    for choice in sorted {
        if choice.at <= at {
            latest = Some(choice);
        }
    }
    latest
}

/// The rule written out independently of `consent.rs`, over the generated specs (not the
/// parsed documents, so a parser mistake shows up as a mismatch too).
fn model(case: &Case, at: Timestamp) -> Outcome {
    let denied = |reason, detail, version| Outcome {
        allowed: false,
        reason,
        detail,
        version,
    };
    let mut in_force = None;
    for version in &case.versions {
        if version.effective_from.at <= at {
            in_force = Some(version);
        }
    }
    let Some(policy) = in_force else {
        return denied("no_policy_in_force", Detail::None, None);
    };
    let version = Some(policy.version);
    let Some(purpose) = policy.purposes.iter().find(|p| p.name == case.purpose) else {
        return denied("purpose_not_in_policy", Detail::None, version);
    };
    let normalised = case
        .jurisdiction
        .map(|input| input.trim().to_ascii_uppercase());
    let code = match normalised {
        Some(code) if MODEL_ASSIGNED.contains(&code.as_str()) => code,
        _ => return denied("unknown_jurisdiction", Detail::None, version),
    };
    let target = if NORDIC.contains(&code.as_str()) {
        "NORDIC"
    } else {
        code.as_str()
    };
    let mut rule = purpose.default;
    for (name, _, named_rule) in &purpose.named {
        if *name == target {
            rule = *named_rule;
        }
    }
    if let RuleSpec::Excluded = rule {
        return denied("excluded", Detail::None, version);
    }
    if let Some(choice) = model_latest(&case.choices, at) {
        return Outcome {
            allowed: choice.allowed,
            reason: "explicit_choice",
            detail: Detail::Choice {
                position: choice.position.get(),
                at: choice.at.as_micros(),
            },
            version,
        };
    }
    if let RuleSpec::OptOut { deadline, .. } = rule {
        if at < deadline.at {
            denied(
                "before_deadline",
                Detail::Deadline(deadline.at.as_micros()),
                version,
            )
        } else {
            Outcome {
                allowed: true,
                reason: "jurisdiction_default",
                detail: Detail::Mode("opt_out"),
                version,
            }
        }
    } else {
        denied("jurisdiction_default", Detail::Mode("opt_in"), version)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    // Proves decide_from_history (and latest_choice_at, and PolicyDocument::parse) agree with
    // an independent model on random policy histories, choice histories, jurisdictions and
    // cutoffs at and ±1us around every instant where the answer may change.
    #[test]
    fn decide_from_history_matches_the_model(case in cases()) {
        let texts: Vec<String> = case.versions.iter().map(render_policy).collect();
        let mut documents = Vec::new();
        for text in &texts {
            match PolicyDocument::parse(text, "generated.toml") {
                Ok(document) => documents.push(document),
                Err(error) => {
                    return Err(TestCaseError::fail(format!("{error}\n{text}")));
                }
            }
        }
        let policies = PolicyHistory::from_versions(documents)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let instants = interesting_instants(&case);
        let at = case
            .at_pick
            .get(&instants)
            .saturating_add_micros(case.at_delta);
        let jurisdiction = case
            .jurisdiction
            .map(|input| Jurisdiction::parse(input).unwrap());
        let purpose = purpose(case.purpose);

        let decision = decide_from_history(&policies, &purpose, jurisdiction, at, &case.choices);
        let expected = model(&case, at);
        prop_assert_eq!(
            project(&decision),
            expected,
            "at {} ({}us)\n{}",
            at,
            at.as_micros(),
            texts.join("\n# ---- next version ----\n")
        );

        let latest = latest_choice_at(&case.choices, at).copied();
        prop_assert_eq!(latest, model_latest(&case.choices, at));
        prop_assert_eq!(
            decide(&policies, &purpose, jurisdiction, at, latest.as_ref()),
            decision
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Edge examples
// ---------------------------------------------------------------------------------------

/// v1 from 2024-01-01: opt-out by default (notified 2024-01-01, deadline 2024-02-01), DE and
/// GB opt-in, FR excluded.
const EXAMPLE_V1: &str = r#"
version = 1
effective_from = "2024-01-01T00:00:00Z"

[purposes.ai_training]
title = "AI training"
notice = "We may train models on your public profile."
allowed_fields = ["headline"]
default = { mode = "opt_out", notified_at = "2024-01-01T00:00:00Z", default_effective_from = "2024-02-01T00:00:00Z" }

[[purposes.ai_training.rules]]
jurisdictions = ["DE", "GB"]
mode = "opt_in"

[[purposes.ai_training.rules]]
jurisdictions = ["FR"]
mode = "excluded"
"#;

/// v2 from 2024-06-01: US excluded, DE opt-out with a fresh notice (deadline 2024-07-01),
/// FR and GB opt-in.
const EXAMPLE_V2: &str = r#"
version = 2
effective_from = "2024-06-01T00:00:00Z"

[purposes.ai_training]
title = "AI training"
notice = "We may train models on your public profile."
allowed_fields = ["headline"]
default = { mode = "opt_out", notified_at = "2024-01-01T00:00:00Z", default_effective_from = "2024-02-01T00:00:00Z" }

[[purposes.ai_training.rules]]
jurisdictions = ["US"]
mode = "excluded"

[[purposes.ai_training.rules]]
jurisdictions = ["DE"]
mode = "opt_out"
notified_at = "2024-06-01T00:00:00Z"
default_effective_from = "2024-07-01T00:00:00Z"

[[purposes.ai_training.rules]]
jurisdictions = ["FR", "GB"]
mode = "opt_in"
"#;

fn examples() -> PolicyHistory {
    history(&[EXAMPLE_V1, EXAMPLE_V2])
}

fn training_at(
    policies: &PolicyHistory,
    jurisdiction: Option<Jurisdiction>,
    at: Timestamp,
    choices: &[ExplicitChoice],
) -> Decision {
    decide_from_history(policies, &purpose("ai_training"), jurisdiction, at, choices)
}

// A choice timed exactly at the cutoff is "at or before T", so it decides.
#[test]
fn choice_exactly_at_the_cutoff_counts() {
    let policies = examples();
    let choices = [choice(false, "2024-03-01T12:00:00Z", 7)];
    let decision = training_at(&policies, code("US"), t("2024-03-01T12:00:00Z"), &choices);
    assert!(!decision.allowed);
    assert_eq!(
        decision.reason,
        Reason::ExplicitChoice {
            position: LedgerPosition(7),
            at: t("2024-03-01T12:00:00Z")
        }
    );
}

// A choice one microsecond after the cutoff is in the future of T: the default decides.
#[test]
fn choice_one_microsecond_after_the_cutoff_is_ignored() {
    let policies = examples();
    let choices = [choice(false, "2024-03-01T12:00:00.000001Z", 7)];
    let decision = training_at(&policies, code("US"), t("2024-03-01T12:00:00Z"), &choices);
    assert_eq!(
        summary(&decision),
        (true, "jurisdiction_default", Some(1)),
        "{decision:?}"
    );
}

// Replays off/on/off/on: at each choice time, and just before the next, the last flip wins.
#[test]
fn several_flips_follow_the_latest_choice() {
    let policies = examples();
    let choices = [
        choice(false, "2024-02-10T00:00:00Z", 3),
        choice(true, "2024-02-11T00:00:00Z", 4),
        choice(false, "2024-02-12T00:00:00Z", 5),
        choice(true, "2024-02-13T00:00:00Z", 6),
    ];
    let us = code("US");
    assert_eq!(
        summary(&training_at(
            &policies,
            us,
            t("2024-02-09T23:59:59.999999Z"),
            &choices
        )),
        (true, "jurisdiction_default", Some(1))
    );
    for (index, expected) in choices.iter().enumerate() {
        let next = choices
            .get(index + 1)
            .map_or(t("2024-05-01T00:00:00Z"), |c| micros_before(c.at));
        for at in [expected.at, next] {
            let decision = training_at(&policies, us, at, &choices);
            assert_eq!(decision.allowed, expected.allowed, "at {at}");
            assert_eq!(
                decision.reason,
                Reason::ExplicitChoice {
                    position: expected.position,
                    at: expected.at
                },
                "at {at}"
            );
        }
    }
}

// Equal times are ordered by ledger position, whatever order the slice (or an import) has;
// a later position with an earlier (backdated) time does not override a later time.
#[test]
fn equal_times_later_ledger_position_wins() {
    let policies = examples();
    let at = t("2024-03-01T00:00:00Z");
    let same_time_off = choice(false, "2024-02-20T00:00:00Z", 10);
    let same_time_on = choice(true, "2024-02-20T00:00:00Z", 11);
    for choices in [[same_time_off, same_time_on], [same_time_on, same_time_off]] {
        let decision = training_at(&policies, code("US"), at, &choices);
        assert!(decision.allowed);
        assert_eq!(
            decision.reason,
            Reason::ExplicitChoice {
                position: LedgerPosition(11),
                at: t("2024-02-20T00:00:00Z")
            }
        );
    }
    // The import (position 12) carries an earlier original time: it loses to position 10's
    // later time, as seen from any cutoff after both.
    let backdated = choice(true, "2024-02-15T00:00:00Z", 12);
    let later = choice(false, "2024-02-25T00:00:00Z", 10);
    for choices in [[backdated, later], [later, backdated]] {
        let decision = training_at(&policies, code("US"), at, &choices);
        assert!(!decision.allowed);
        assert_eq!(
            latest_choice_at(&choices, at).map(|c| c.position),
            Some(LedgerPosition(10))
        );
    }
}

// Ties are broken on the full u64 position: 2^32 beats 2^32-1 (no truncation to 32 bits)
// and u64::MAX beats everything. Member ids are not an input of the rule at all.
#[test]
fn tie_break_uses_the_full_64_bit_position() {
    let policies = examples();
    let at = t("2024-03-01T00:00:00Z");
    let time = "2024-02-20T00:00:00Z";
    let below = choice(true, time, (1 << 32) - 1);
    let above = choice(false, time, 1 << 32);
    let max = choice(true, time, u64::MAX);
    let decision = training_at(&policies, code("US"), at, &[above, below]);
    assert!(!decision.allowed);
    let decision = training_at(&policies, code("US"), at, &[max, above, below]);
    assert!(decision.allowed);
    assert_eq!(
        decision.reason,
        Reason::ExplicitChoice {
            position: LedgerPosition(u64::MAX),
            at: t(time)
        }
    );
}

// The opt-out deadline is inclusive: 1us before it the default does not count, at it it
// does; an explicit opt-in before the deadline counts at once.
#[test]
fn cutoff_on_each_side_of_the_deadline() {
    let policies = examples();
    let deadline = t("2024-02-01T00:00:00Z");
    let before = training_at(&policies, code("US"), micros_before(deadline), &[]);
    assert!(!before.allowed);
    assert_eq!(before.reason, Reason::BeforeDeadline { deadline });
    let at_deadline = training_at(&policies, code("US"), deadline, &[]);
    assert!(at_deadline.allowed);
    assert_eq!(
        at_deadline.reason,
        Reason::JurisdictionDefault { mode: Mode::OptOut }
    );
    let opted_in = [choice(true, "2024-01-05T00:00:00Z", 3)];
    let early = training_at(&policies, code("US"), micros_before(deadline), &opted_in);
    assert_eq!(summary(&early), (true, "explicit_choice", Some(1)));
    // An opt-out before the deadline keeps holding after it.
    let opted_out = [choice(false, "2024-01-05T00:00:00Z", 3)];
    let after = training_at(&policies, code("US"), deadline, &opted_out);
    assert_eq!(summary(&after), (false, "explicit_choice", Some(1)));
}

// The last microsecond of v1 is decided by v1's rules, the first of v2 by v2's; choices
// made under v1 (even while FR was excluded) count under v2.
#[test]
fn cutoff_on_each_side_of_a_policy_change() {
    let policies = examples();
    let change = t("2024-06-01T00:00:00Z");
    let last_v1 = micros_before(change);
    // US: opt-out default (allowed) -> excluded.
    assert_eq!(
        summary(&training_at(&policies, code("US"), last_v1, &[])),
        (true, "jurisdiction_default", Some(1))
    );
    assert_eq!(
        summary(&training_at(&policies, code("US"), change, &[])),
        (false, "excluded", Some(2))
    );
    // DE without a choice: opt-in default -> opt-out before its new deadline -> allowed.
    assert_eq!(
        summary(&training_at(&policies, code("DE"), last_v1, &[])),
        (false, "jurisdiction_default", Some(1))
    );
    let de_new = training_at(&policies, code("DE"), change, &[]);
    assert_eq!(
        de_new.reason,
        Reason::BeforeDeadline {
            deadline: t("2024-07-01T00:00:00Z")
        }
    );
    assert_eq!(summary(&de_new), (false, "before_deadline", Some(2)));
    assert_eq!(
        summary(&training_at(
            &policies,
            code("DE"),
            t("2024-07-01T00:00:00Z"),
            &[]
        )),
        (true, "jurisdiction_default", Some(2))
    );
    // FR opted in while excluded: ignored under v1, counts under v2 (opt-in).
    let fr_choice = [choice(true, "2024-03-01T00:00:00Z", 9)];
    assert_eq!(
        summary(&training_at(&policies, code("FR"), last_v1, &fr_choice)),
        (false, "excluded", Some(1))
    );
    assert_eq!(
        summary(&training_at(&policies, code("FR"), change, &fr_choice)),
        (true, "explicit_choice", Some(2))
    );
}

// No jurisdiction: not allowed, even with an explicit opt-in and past the deadline.
#[test]
fn missing_jurisdiction_is_not_allowed() {
    let policies = examples();
    let opted_in = [choice(true, "2024-03-01T00:00:00Z", 9)];
    for choices in [&[][..], &opted_in[..]] {
        let decision = training_at(&policies, None, t("2024-04-01T00:00:00Z"), choices);
        assert_eq!(decision.reason, Reason::UnknownJurisdiction);
        assert_eq!(summary(&decision), (false, "unknown_jurisdiction", Some(1)));
    }
}

// "XX" is well formed but unassigned: it parses, and the rule answers it most protectively.
#[test]
fn unassigned_jurisdiction_is_not_allowed() {
    let policies = examples();
    let opted_in = [choice(true, "2024-03-01T00:00:00Z", 9)];
    for input in ["XX", "xx", "QQ"] {
        let jurisdiction = Jurisdiction::parse(input).unwrap();
        assert!(!jurisdiction.is_assigned(), "{input}");
        for choices in [&[][..], &opted_in[..]] {
            let decision = training_at(
                &policies,
                Some(jurisdiction),
                t("2024-04-01T00:00:00Z"),
                choices,
            );
            assert_eq!(decision.reason, Reason::UnknownJurisdiction, "{input}");
            assert!(!decision.allowed, "{input}");
        }
    }
}

// "de" and " de " are normalised to "DE" and get DE's rule (opt-in, so default not allowed;
// with an opt-in choice, allowed), exactly as "DE" does.
#[test]
fn lower_case_jurisdiction_is_normalised() {
    let policies = examples();
    assert_eq!(code("de"), code("DE"));
    assert_eq!(code(" gb "), code("GB"));
    let opted_in = [choice(true, "2024-03-01T00:00:00Z", 9)];
    let at = t("2024-04-01T00:00:00Z");
    for choices in [&[][..], &opted_in[..]] {
        let upper = training_at(&policies, code("DE"), at, choices);
        for input in ["de", "De", " de "] {
            assert_eq!(training_at(&policies, code(input), at, choices), upper);
        }
    }
    assert_eq!(
        summary(&training_at(&policies, code("de"), at, &[])),
        (false, "jurisdiction_default", Some(1))
    );
    assert_eq!(
        summary(&training_at(&policies, code("de"), at, &opted_in)),
        (true, "explicit_choice", Some(1))
    );
}

// Before the first version (and with no versions at all) nothing is allowed, whatever the
// member chose.
#[test]
fn before_the_first_policy_version_is_not_allowed() {
    let policies = examples();
    let opted_in = [choice(true, "2023-12-01T00:00:00Z", 2)];
    let decision = training_at(
        &policies,
        code("US"),
        t("2023-12-31T23:59:59.999999Z"),
        &opted_in,
    );
    assert_eq!(decision.reason, Reason::NoPolicyInForce);
    assert_eq!(summary(&decision), (false, "no_policy_in_force", None));
    let at_start = training_at(&policies, code("US"), t("2024-01-01T00:00:00Z"), &opted_in);
    assert_eq!(summary(&at_start), (true, "explicit_choice", Some(1)));
    let empty = PolicyHistory::new();
    let decision = training_at(&empty, code("US"), Timestamp::MAX, &opted_in);
    assert_eq!(summary(&decision), (false, "no_policy_in_force", None));
}

// A purpose the policy in force does not define is not allowed, even with a choice for it.
#[test]
fn purpose_not_in_policy_is_not_allowed() {
    let policies = examples();
    let opted_in = [choice(true, "2024-03-01T00:00:00Z", 9)];
    let decision = decide_from_history(
        &policies,
        &purpose("ai_personalization"),
        code("US"),
        t("2024-04-01T00:00:00Z"),
        &opted_in,
    );
    assert_eq!(
        summary(&decision),
        (false, "purpose_not_in_policy", Some(1))
    );
}

// ---------------------------------------------------------------------------------------
// 3. Replay of a real-world sequence of regional changes for `ai_training`
// ---------------------------------------------------------------------------------------

/// A later version of the shipped policy: `ai_training` with the given rules for the
/// EU/EEA, Switzerland and the UK (as TOML rule tables), `ai_personalization` unchanged.
fn replay_version(version: u32, effective_from: &str, training_rules: &str) -> String {
    let personalization = PolicyDocument::default_policy()
        .text
        .split("[purposes.ai_personalization]")
        .nth(1)
        .unwrap()
        .to_string();
    format!(
        r#"version = {version}
effective_from = "{effective_from}"

[groups]
EU = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
      "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"]
EEA_EFTA = ["IS", "LI", "NO"]

[purposes.ai_training]
title = "Use of data for AI training"
notice = "We may use your public profile data to train generative AI models."
notice_version = "ai_training-{effective_from}"
allowed_fields = ["headline", "skills", "experience"]
gpc_opt_out = true
default = {{ mode = "opt_out", notified_at = "2023-10-16T00:00:00Z", default_effective_from = "2023-10-30T00:00:00Z" }}
{training_rules}
[purposes.ai_personalization]{personalization}"#
    )
}

fn replay_history() -> PolicyHistory {
    // v2 (2024-09-18): training paused in the EU/EEA and Switzerland; the UK stays opt-in.
    let v2 = replay_version(
        2,
        "2024-09-18T00:00:00Z",
        r#"
[[purposes.ai_training.rules]]
jurisdictions = ["EU", "EEA_EFTA", "CH"]
mode = "excluded"

[[purposes.ai_training.rules]]
jurisdictions = ["GB"]
mode = "opt_in"
"#,
    );
    // v3 (2024-09-20): the UK joins them.
    let v3 = replay_version(
        3,
        "2024-09-20T00:00:00Z",
        r#"
[[purposes.ai_training.rules]]
jurisdictions = ["EU", "EEA_EFTA", "CH", "GB"]
mode = "excluded"
"#,
    );
    // v4 (2025-09-18): all of them opt-out, with a fresh notice and a 2025-11-03 deadline.
    let v4 = replay_version(
        4,
        "2025-09-18T00:00:00Z",
        r#"
[[purposes.ai_training.rules]]
jurisdictions = ["EU", "EEA_EFTA", "CH", "GB"]
mode = "opt_out"
notified_at = "2025-09-18T00:00:00Z"
default_effective_from = "2025-11-03T00:00:00Z"
"#,
    );
    history(&[
        optout_core::policy::DEFAULT_POLICY_TOML,
        v2.as_str(),
        v3.as_str(),
        v4.as_str(),
    ])
}

// Walks five members (and two extra) through v1 -> v2 -> v3 -> v4 at the first and last
// microsecond of each version and each deadline: explicit choices survive every change of
// mode, `excluded` overrides them while it lasts, and a fresh opt-out default waits for
// its own deadline.
#[test]
fn replay_of_regions_moving_between_modes() {
    let policies = replay_history();
    let training = purpose("ai_training");
    let v4_rule = policies.versions()[3]
        .purpose(&training)
        .unwrap()
        .rule_for(Jurisdiction::parse("DE").unwrap());
    assert_eq!(
        v4_rule,
        Rule::OptOut {
            notified_at: t("2025-09-18T00:00:00Z"),
            default_effective_from: t("2025-11-03T00:00:00Z"),
        }
    );

    struct Member {
        name: &'static str,
        jurisdiction: &'static str,
        choices: Vec<ExplicitChoice>,
    }
    let members = [
        Member {
            name: "de_opted_in_2023",
            jurisdiction: "DE",
            choices: vec![choice(true, "2023-10-20T09:00:00Z", 10)],
        },
        Member {
            name: "de_never_chose",
            jurisdiction: "DE",
            choices: vec![],
        },
        Member {
            name: "gb_opted_out_2023",
            jurisdiction: "GB",
            choices: vec![choice(false, "2023-10-25T18:30:00Z", 11)],
        },
        Member {
            name: "gb_never_chose",
            jurisdiction: "GB",
            choices: vec![],
        },
        Member {
            name: "us_opted_out",
            jurisdiction: "US",
            choices: vec![choice(false, "2023-11-15T08:00:00Z", 12)],
        },
        // Extra: a UK member who opted in between v2 and v3, while the UK was still opt-in.
        Member {
            name: "gb_opted_in_2024_09_19",
            jurisdiction: "GB",
            choices: vec![choice(true, "2024-09-19T12:00:00Z", 13)],
        },
        // Extra: a US member who never chose, for the old default deadline.
        Member {
            name: "us_never_chose",
            jurisdiction: "US",
            choices: vec![],
        },
    ];

    type Row = (&'static str, [(bool, &'static str); 7]);
    const NO_POLICY: (bool, &str) = (false, "no_policy_in_force");
    const EXCL: (bool, &str) = (false, "excluded");
    const YES: (bool, &str) = (true, "explicit_choice");
    const NO: (bool, &str) = (false, "explicit_choice");
    const DEF_IN: (bool, &str) = (false, "jurisdiction_default");
    const DEF_OUT: (bool, &str) = (true, "jurisdiction_default");
    const WAIT: (bool, &str) = (false, "before_deadline");
    // Columns follow `members`: de_in, de_never, gb_out, gb_never, us_out, gb_in_2024,
    // us_never.
    let rows: [Row; 19] = [
        ("2023-10-15T23:59:59.999999Z", [NO_POLICY; 7]),
        // v1 in force; US default waits for 2023-10-30.
        (
            "2023-10-16T00:00:00Z",
            [DEF_IN, DEF_IN, DEF_IN, DEF_IN, WAIT, DEF_IN, WAIT],
        ),
        (
            "2023-10-20T09:00:00Z",
            [YES, DEF_IN, DEF_IN, DEF_IN, WAIT, DEF_IN, WAIT],
        ),
        (
            "2023-10-29T23:59:59.999999Z",
            [YES, DEF_IN, NO, DEF_IN, WAIT, DEF_IN, WAIT],
        ),
        (
            "2023-10-30T00:00:00Z",
            [YES, DEF_IN, NO, DEF_IN, DEF_OUT, DEF_IN, DEF_OUT],
        ),
        (
            "2023-11-15T08:00:00Z",
            [YES, DEF_IN, NO, DEF_IN, NO, DEF_IN, DEF_OUT],
        ),
        (
            "2024-09-17T23:59:59.999999Z",
            [YES, DEF_IN, NO, DEF_IN, NO, DEF_IN, DEF_OUT],
        ),
        // v2: EU/EEA/CH excluded, UK still opt-in.
        (
            "2024-09-18T00:00:00Z",
            [EXCL, EXCL, NO, DEF_IN, NO, DEF_IN, DEF_OUT],
        ),
        (
            "2024-09-19T12:00:00Z",
            [EXCL, EXCL, NO, DEF_IN, NO, YES, DEF_OUT],
        ),
        (
            "2024-09-19T23:59:59.999999Z",
            [EXCL, EXCL, NO, DEF_IN, NO, YES, DEF_OUT],
        ),
        // v3: the UK excluded too.
        (
            "2024-09-20T00:00:00Z",
            [EXCL, EXCL, EXCL, EXCL, NO, EXCL, DEF_OUT],
        ),
        (
            "2025-09-17T23:59:59.999999Z",
            [EXCL, EXCL, EXCL, EXCL, NO, EXCL, DEF_OUT],
        ),
        // v4: opt-out with a fresh notice; existing choices count at once, the new default
        // only from 2025-11-03.
        (
            "2025-09-18T00:00:00Z",
            [YES, WAIT, NO, WAIT, NO, YES, DEF_OUT],
        ),
        (
            "2025-10-15T00:00:00Z",
            [YES, WAIT, NO, WAIT, NO, YES, DEF_OUT],
        ),
        (
            "2025-11-02T23:59:59.999999Z",
            [YES, WAIT, NO, WAIT, NO, YES, DEF_OUT],
        ),
        (
            "2025-11-03T00:00:00Z",
            [YES, DEF_OUT, NO, DEF_OUT, NO, YES, DEF_OUT],
        ),
        (
            "2025-11-03T00:00:00.000001Z",
            [YES, DEF_OUT, NO, DEF_OUT, NO, YES, DEF_OUT],
        ),
        (
            "2026-06-01T00:00:00Z",
            [YES, DEF_OUT, NO, DEF_OUT, NO, YES, DEF_OUT],
        ),
        (
            "9999-12-31T23:59:59.999999Z",
            [YES, DEF_OUT, NO, DEF_OUT, NO, YES, DEF_OUT],
        ),
    ];

    let mut failures = Vec::new();
    for (at_text, expected_row) in rows {
        let at = t(at_text);
        let version = policies.in_force_at(at).map(|policy| policy.version.0);
        for (member, expected) in members.iter().zip(expected_row) {
            let decision = decide_from_history(
                &policies,
                &training,
                code(member.jurisdiction),
                at,
                &member.choices,
            );
            let actual = (decision.allowed, decision.reason.name());
            if actual != expected || decision.policy_version.map(|v| v.0) != version {
                failures.push(format!(
                    "{at_text} {}: expected {expected:?} (v{version:?}), got {decision:?}",
                    member.name
                ));
            }
            // The deadline reported while waiting is the one of the version in force.
            if let Reason::BeforeDeadline { deadline } = decision.reason {
                let expected_deadline = if at < t("2025-01-01T00:00:00Z") {
                    t("2023-10-30T00:00:00Z")
                } else {
                    t("2025-11-03T00:00:00Z")
                };
                if deadline != expected_deadline {
                    failures.push(format!("{at_text} {}: deadline {deadline}", member.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
