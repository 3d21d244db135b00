//! Snapshot exports as other engines use them.
//!
//! Builds a ledger with the real `optout` binary (a generated population of a few thousand
//! members with ids across the whole `u64` range, opt-out, opt-in and unassigned
//! countries, flips, ties, choices after and exactly at the cutoff, backdated imports),
//! exports snapshots in both formats and checks them three ways:
//!
//! - against a model of the consent rule over the generated events (every member), which
//!   is itself checked against `optout status` for a sample of members;
//! - with `tests/python/check_snapshot.py`, which reads the Roaring files with pyroaring,
//!   the Parquet files with pyarrow, and runs the DuckDB SQL of `docs/snapshots.md`
//!   verbatim over a profiles file (needs the packages `scripts/test.sh` installs: with
//!   CI=true their absence fails the test, otherwise that part is skipped with a message);
//! - for determinism (a re-export at the same purpose, cutoff and position after
//!   appending backdated events is byte-identical) and tamper evidence
//!   (`snapshot show --dir` exits 1 once a file is modified).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{micros, path_str, python_with, Run, Scratch};
use optout_core::splitmix::SplitMix64 as SplitMix;
use serde_json::{json, Value};

const PURPOSE: &str = "ai_training";
/// The main cutoff: after the opt-out deadline.
const CUTOFF: &str = "2026-06-30T00:00:00Z";
/// After the policy took effect, before the opt-out deadline: defaults do not count yet.
const BEFORE_DEADLINE: &str = "2023-10-25T12:00:00Z";
/// Before the first policy version: nothing is allowed.
const BEFORE_POLICY: &str = "2023-10-01T00:00:00Z";
/// The cutoff of the index checkpoint stored at position S: later snapshots start from
/// it, adding the choices dated after it and re-reading members with backdated ones.
const CHECKPOINT_CUTOFF: &str = "2026-01-01T00:00:00Z";

/// Members in the generated population (besides the hand-written cases).
const POPULATION: usize = 3_000;

const CHECKER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/python/check_snapshot.py"
);
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/snapshots.md");

// ---------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------

fn cutoff_us() -> i64 {
    micros(2026, 6, 30, 0, 0, 0)
}

fn policy_from_us() -> i64 {
    micros(2023, 10, 16, 0, 0, 0)
}

fn deadline_us() -> i64 {
    micros(2023, 10, 30, 0, 0, 0)
}

/// Parses the RFC 3339 forms this test writes and the binary prints
/// (`YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`) into microseconds.
fn parse_us(text: &str) -> i64 {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> i64 {
        text.get(range)
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {text:?}"))
    };
    assert!(
        bytes.len() >= 20 && bytes[10] == b'T' && text.ends_with('Z'),
        "not an RFC 3339 UTC time: {text:?}"
    );
    let whole = micros(
        number(0..4),
        number(5..7),
        number(8..10),
        number(11..13),
        number(14..16),
        number(17..19),
    );
    let fraction = &text[19..text.len() - 1];
    let fraction_us = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits) if (1..=9).contains(&digits.len()) => {
            let padded = format!("{digits:0<9}");
            padded[..6].parse::<i64>().unwrap()
        }
        _ => panic!("not an RFC 3339 time: {text:?}"),
    };
    whole + fraction_us
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for microseconds since the epoch.
fn rfc3339(us: i64) -> String {
    let seconds = us.div_euclid(1_000_000);
    let fraction = us.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

// ---------------------------------------------------------------------------------------
// A deterministic generator
// ---------------------------------------------------------------------------------------

/// The draws these tests make, on top of the shared splitmix64 stream.
trait Draws {
    fn chance(&mut self, percent: u64) -> bool;
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T;
    fn shuffle<T>(&mut self, items: &mut [T]);
}

impl Draws for SplitMix {
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = self.below(index as u64 + 1) as usize;
            items.swap(index, other);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The model: events as recorded, and the consent rule of the default policy
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Event {
    member: u64,
    at: i64,
    allowed: bool,
    /// Ledger position, known once appended.
    position: u64,
}

/// A choice to import: (member, time, allowed).
type Planned = (u64, i64, bool);

#[derive(Default)]
struct Model {
    events: Vec<Event>,
}

impl Model {
    /// Each member's latest choice with time <= `cutoff` among positions <= `position`
    /// (latest time, then latest position).
    fn explicit(&self, cutoff: i64, position: u64) -> BTreeMap<u64, bool> {
        let mut latest: BTreeMap<u64, (i64, u64, bool)> = BTreeMap::new();
        for event in &self.events {
            if event.at > cutoff || event.position > position {
                continue;
            }
            let key = (event.at, event.position);
            let entry =
                latest
                    .entry(event.member)
                    .or_insert((event.at, event.position, event.allowed));
            if key >= (entry.0, entry.1) {
                *entry = (event.at, event.position, event.allowed);
            }
        }
        latest
            .into_iter()
            .map(|(member, (_, _, allowed))| (member, allowed))
            .collect()
    }
}

/// The default policy's answers for a jurisdiction at time `at`:
/// `[no choice, explicit allow, explicit deny]`.
fn rule(country: Option<&str>, at: i64) -> [bool; 3] {
    const OPT_OUT: [&str; 4] = ["US", "IN", "BR", "NA"];
    const OPT_IN: [&str; 5] = ["DE", "FR", "GB", "CH", "NO"];
    let code = country.map(|text| text.trim().to_ascii_uppercase());
    if at < policy_from_us() {
        return [false; 3];
    }
    match code.as_deref() {
        Some(code) if OPT_OUT.contains(&code) => [at >= deadline_us(), true, false],
        Some(code) if OPT_IN.contains(&code) => [false, true, false],
        // "ZZ" is unassigned; missing and empty are unknown.
        _ => [false; 3],
    }
}

fn allowed(country: Option<&str>, at: i64, explicit: Option<bool>) -> bool {
    let answers = rule(country, at);
    match explicit {
        None => answers[0],
        Some(true) => answers[1],
        Some(false) => answers[2],
    }
}

/// The countries profiles carry, as written (case and spaces included); `None` is a
/// missing country (an empty CSV field).
const COUNTRIES: [Option<&str>; 14] = [
    Some("US"),
    Some("US"),
    Some("IN"),
    Some("BR"),
    Some("NA"),
    Some("DE"),
    Some("FR"),
    Some("GB"),
    Some("CH"),
    Some("NO"),
    Some("ZZ"),
    None,
    Some("us"),
    Some(" de "),
];

/// The population: members, their country, and whether they have a profile row (and how
/// many).
struct Population {
    country: BTreeMap<u64, Option<&'static str>>,
    /// Profile rows per member (0: the member has choices but no profile data).
    rows: BTreeMap<u64, u32>,
}

impl Population {
    fn generate(rng: &mut SplitMix, fixed: &[(u64, Option<&'static str>)]) -> Population {
        let mut ids: BTreeSet<u64> = BTreeSet::new();
        ids.extend(0..=400u64); // dense: one Roaring container
        ids.extend((1u64 << 32) - 6..=(1u64 << 32) + 6); // across the first 32-bit bucket
        ids.extend((1u64 << 63) - 4..=(1u64 << 63) + 4); // the sign bit of a Java long / BIGINT
        ids.extend(u64::MAX - 12..=u64::MAX);
        while ids.len() < POPULATION {
            let id = match rng.below(4) {
                0 => rng.next(),
                1 => (1u64 << 32) + rng.below(1u64 << 40),
                2 => u64::MAX - rng.below(1u64 << 33),
                _ => rng.below(1u64 << 20),
            };
            ids.insert(id);
        }
        let mut country = BTreeMap::new();
        let mut rows = BTreeMap::new();
        for id in ids {
            country.insert(id, *rng.pick(&COUNTRIES));
            let count = match rng.below(100) {
                0..=1 => 0,
                2..=6 => 2,
                _ => 1,
            };
            rows.insert(id, count);
        }
        for &(id, code) in fixed {
            country.insert(id, code);
            rows.insert(id, 1);
        }
        Population { country, rows }
    }

    fn members(&self) -> impl Iterator<Item = u64> + '_ {
        self.country.keys().copied()
    }

    /// `member_id,country`, with spaces kept by quoting and a missing country empty.
    fn profiles_csv(&self) -> String {
        let mut text = String::from("member_id,country\n");
        for (&member, &count) in &self.rows {
            let country = match self.country[&member] {
                None => String::new(),
                Some(code) => format!("\"{code}\""),
            };
            for _ in 0..count {
                text.push_str(&format!("{member},{country}\n"));
            }
        }
        text
    }

    /// The expected answers for a snapshot at (`cutoff`, `position`).
    fn expected(&self, model: &Model, cutoff: &str, position: u64) -> Value {
        let explicit = model.explicit(parse_us(cutoff), position);
        let allowed_members: Vec<u64> = self
            .rows
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(&member, _)| member)
            .filter(|member| {
                allowed(
                    self.country[member],
                    parse_us(cutoff),
                    explicit.get(member).copied(),
                )
            })
            .collect();
        let set = |wanted: bool| -> Vec<u64> {
            explicit
                .iter()
                .filter(|(_, &choice)| choice == wanted)
                .map(|(&member, _)| member)
                .collect()
        };
        json!({
            "purpose": PURPOSE,
            "cutoff": cutoff,
            "position": position,
            "explicit_allowed": set(true),
            "explicit_denied": set(false),
            "allowed": allowed_members,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Driving the binary
// ---------------------------------------------------------------------------------------

/// Imports `planned` (in this order) as a CSV file; records the events with their
/// positions in the model.
fn import(scratch: &Scratch, model: &mut Model, name: &str, planned: &[Planned]) {
    let mut text = String::from("member_id,purpose,allowed,at,source\n");
    for &(member, at, allowed) in planned {
        text.push_str(&format!(
            "{member},{PURPOSE},{allowed},{},web\n",
            rfc3339(at)
        ));
    }
    let path = scratch.write(name, &text);
    let answer = scratch.run(&["import", &path_str(&path)]).success().json();
    assert_eq!(answer["imported"], planned.len() as u64, "{answer}");
    let first = answer["first_position"].as_u64().expect("first_position");
    let last = answer["last_position"].as_u64().expect("last_position");
    assert_eq!(last - first + 1, planned.len() as u64, "{answer}");
    for (offset, &(member, at, allowed)) in planned.iter().enumerate() {
        model.events.push(Event {
            member,
            at,
            allowed,
            position: first + offset as u64,
        });
    }
}

/// `choose MEMBER ai_training allow|deny` (recorded now); records it in the model.
fn choose(scratch: &Scratch, model: &mut Model, member: u64, allow: bool) {
    let receipt = scratch.choose(&member.to_string(), PURPOSE, allow);
    model.events.push(Event {
        member,
        at: parse_us(receipt["at"].as_str().expect("receipt at")),
        allowed: allow,
        position: receipt["position"].as_u64().expect("receipt position"),
    });
}

fn head(scratch: &Scratch) -> u64 {
    scratch.head().0
}

/// `snapshot export`; returns its JSON summary.
fn export(
    scratch: &Scratch,
    format: &str,
    cutoff: &str,
    position: Option<u64>,
    out: &Path,
) -> Value {
    let mut args = vec![
        "snapshot".to_string(),
        "export".into(),
        "--purpose".into(),
        PURPOSE.into(),
        "--cutoff".into(),
        cutoff.into(),
        "--format".into(),
        format.into(),
        "--out".into(),
        path_str(out),
    ];
    if let Some(position) = position {
        args.extend(["--position".to_string(), position.to_string()]);
    }
    scratch.run(&args).success().json()
}

/// `snapshot show --dir DIR` (no data directory involved).
fn show_dir(dir: &Path) -> Run {
    common::run_args(&["snapshot", "show", "--dir", &path_str(dir)])
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("snapshot.json")).unwrap()).unwrap()
}

fn members_in(manifest: &Value, set: &str) -> u64 {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["set"] == set)
        .unwrap_or_else(|| panic!("no {set} file in {manifest}"))["members"]
        .as_u64()
        .unwrap()
}

/// The rows of `jurisdiction_rules.csv` by code: `[no choice, allow, deny]`.
fn rules_csv(dir: &Path) -> BTreeMap<String, [bool; 3]> {
    let text = fs::read_to_string(dir.join("jurisdiction_rules.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("jurisdiction,mode,allowed_without_choice,allowed_with_explicit_allow,allowed_with_explicit_deny")
    );
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 5, "{line}");
            let flag = |text: &str| match text {
                "true" => true,
                "false" => false,
                other => panic!("not a boolean {other:?} in {line:?}"),
            };
            (
                fields[0].to_string(),
                [flag(fields[2]), flag(fields[3]), flag(fields[4])],
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------------------

fn check_snapshot(python: &str, profiles: &Path, expected: &Path, dirs: &[&Path]) -> (i32, String) {
    let mut command = Command::new(python);
    command.args([
        CHECKER,
        "--doc",
        DOC,
        "--profiles",
        &path_str(profiles),
        "--expected",
        &path_str(expected),
    ]);
    command.args(dirs.iter().map(|dir| path_str(dir)));
    let output = command.output().expect("run check_snapshot.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn write_json(path: &Path, value: &Value) -> PathBuf {
    fs::write(path, serde_json::to_vec(value).unwrap()).unwrap();
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn times_round_trip() {
    for text in [
        "2026-06-30T00:00:00.000000Z",
        "2023-10-29T23:59:59.999999Z",
        "2024-02-29T12:34:56.000001Z",
        "1970-01-01T00:00:00.000000Z",
    ] {
        assert_eq!(rfc3339(parse_us(text)), text);
    }
    assert_eq!(parse_us(CUTOFF), cutoff_us());
    assert_eq!(parse_us("2026-11-29T06:21:54.196436Z") % 1_000_000, 196_436);
}

#[test]
fn engines_apply_the_snapshot_exactly_as_optout_decides() {
    let scratch = Scratch::initialized();
    let mut rng = SplitMix(0x0_5EED_2026_0630);
    let cutoff = cutoff_us();
    let max = u64::MAX;
    let sign = 1u64 << 63;
    let bucket = 1u64 << 32;
    let t0 = micros(2025, 3, 14, 15, 9, 26);

    // Hand-written cases, each with the answer at CUTOFF as of position S (before the
    // backdated import) and at the head (after it).
    let fixed: [(u64, Option<&str>); 12] = [
        (max, Some("DE")),      // opt-in, allow exactly at the cutoff: allowed
        (max - 1, Some("US")),  // deny 1 µs before, allow 1 µs after: not allowed
        (bucket, Some("FR")),   // allow, then deny exactly at the cutoff: not allowed
        (sign, Some("US")),     // deny and allow at the same time: the later position (allow) wins
        (sign - 1, Some("GB")), // allow and deny at the same time: deny wins
        (0, Some("ZZ")),        // unassigned: never, even with an allow
        (1, None),              // missing country: never
        (2, Some("US")),        // allowed at S; a backdated deny after S denies at the head
        (3, Some("DE")),        // no choice at S; a backdated allow after S allows at the head
        (4, Some("NA")),        // Namibia, not a null: opt-out default allows
        (5, Some("NO")),        // Norway, not false: opt-in, explicit allow
        (6, Some("US")),        // allow before the cutoff, deny after it (recorded now)
    ];
    let population = Population::generate(&mut rng, &fixed);
    let fixed_ids: BTreeSet<u64> = fixed.iter().map(|&(id, _)| id).collect();

    // Stage A: the bulk import, in shuffled order (positions do not follow times).
    let mut planned: Vec<Planned> = vec![
        (max, micros(2024, 1, 1, 0, 0, 0), false),
        (max, cutoff, true),
        (max - 1, cutoff - 1, false),
        (max - 1, cutoff + 1, true),
        (bucket, micros(2024, 5, 5, 5, 5, 5), true),
        (bucket, cutoff, false),
        (0, t0, true),
        (1, t0, true),
        (2, micros(2025, 1, 1, 0, 0, 0), true),
        (5, t0, true),
        (6, t0, true),
    ];
    let special_times = [
        cutoff,
        cutoff - 1,
        cutoff + 1,
        deadline_us(),
        deadline_us() - 1,
        policy_from_us(),
        parse_us(BEFORE_DEADLINE),
        parse_us(BEFORE_POLICY),
        parse_us(CHECKPOINT_CUTOFF),
    ];
    let low = micros(2023, 9, 1, 0, 0, 0);
    let high = micros(2026, 11, 1, 0, 0, 0);
    let mut chose: BTreeSet<u64> = BTreeSet::new();
    for member in population.members().collect::<Vec<_>>() {
        if fixed_ids.contains(&member) {
            continue;
        }
        let events = match rng.below(10) {
            0..=3 => 0,
            4..=6 => 1,
            7..=8 => 2,
            _ => 3 + rng.below(3),
        };
        for _ in 0..events {
            let at = if rng.chance(10) {
                *rng.pick(&special_times)
            } else {
                low + rng.below((high - low) as u64) as i64
            };
            planned.push((member, at, rng.chance(50)));
            chose.insert(member);
        }
        if rng.chance(3) {
            // A tie: two opposite choices at the same time; the later position wins.
            let at = low + rng.below((cutoff - low) as u64) as i64;
            let first = rng.chance(50);
            planned.push((member, at, first));
            planned.push((member, at, !first));
            chose.insert(member);
        }
    }
    rng.shuffle(&mut planned);
    // Ties of the hand-written members, in a known order (after the shuffle).
    planned.push((sign, t0, false));
    planned.push((sign, t0, true));
    planned.push((sign - 1, t0, true));
    planned.push((sign - 1, t0, false));
    let mut model = Model::default();
    import(&scratch, &mut model, "stage-a.csv", &planned);

    // Choices recorded now, after the cutoff: they must not count at the cutoff.
    choose(&scratch, &mut model, 6, false);
    let chosen_now: Vec<u64> = chose.iter().copied().step_by(97).take(8).collect();
    for (index, &member) in chosen_now.iter().enumerate() {
        choose(&scratch, &mut model, member, index % 2 == 0);
    }
    let position_s = head(&scratch);

    // Exports at (CUTOFF, S) before anything else is appended.
    let before_r = scratch.file("before-roaring");
    let before_p = scratch.file("before-parquet");
    let summary = export(&scratch, "roaring", CUTOFF, None, &before_r);
    assert_eq!(summary["position"], position_s, "{summary}");
    // No checkpoint yet: read from the ledger (SQLite's index of choices by member).
    assert_eq!(summary["source"]["kind"], "member_index", "{summary}");
    export(&scratch, "parquet", CUTOFF, Some(position_s), &before_p);

    // An index checkpoint at (CHECKPOINT_CUTOFF, S): the exports below start from it.
    let saved = scratch
        .run(&[
            "snapshot",
            "checkpoint",
            "--purpose",
            PURPOSE,
            "--cutoff",
            CHECKPOINT_CUTOFF,
            "--position",
            &position_s.to_string(),
        ])
        .success()
        .json();
    assert_eq!(saved["checkpoint_saved"], true, "{saved}");

    // Stage B: backdated imports (times before the cutoff) and one more choice now.
    let mut backdated: Vec<Planned> = vec![
        (2, parse_us(CHECKPOINT_CUTOFF), false), // exactly at the checkpoint's cutoff
        (3, micros(2026, 6, 29, 0, 0, 0), true), // after it
    ];
    let unchosen: Vec<u64> = population
        .members()
        .filter(|member| !chose.contains(member) && !fixed_ids.contains(member))
        .collect();
    for _ in 0..60 {
        let member = *rng.pick(&unchosen);
        let at = match rng.below(10) {
            0 => cutoff,
            1 => parse_us(CHECKPOINT_CUTOFF),
            _ => low + rng.below((cutoff - low) as u64) as i64,
        };
        backdated.push((member, at, rng.chance(50)));
    }
    let chose_list: Vec<u64> = chose.iter().copied().collect();
    for _ in 0..100 {
        let member = *rng.pick(&chose_list);
        let at = if rng.chance(10) {
            // After the snapshot's cutoff: read past the checkpoint, then left out.
            cutoff + 1 + rng.below(1 << 36) as i64
        } else {
            micros(2024, 1, 1, 0, 0, 0)
                + rng.below((cutoff - micros(2024, 1, 1, 0, 0, 0)) as u64) as i64
        };
        backdated.push((member, at, rng.chance(50)));
    }
    import(&scratch, &mut model, "stage-b.csv", &backdated);
    choose(&scratch, &mut model, 2, true);
    let position_h = head(&scratch);
    assert!(position_h > position_s);

    // The model's answers for the hand-written cases.
    let at_s = model.explicit(cutoff, position_s);
    let at_h = model.explicit(cutoff, position_h);
    let answer = |explicit: &BTreeMap<u64, bool>, member: u64| {
        allowed(
            population.country[&member],
            cutoff,
            explicit.get(&member).copied(),
        )
    };
    for (member, at_s_allowed, at_h_allowed) in [
        (max, true, true),
        (max - 1, false, false),
        (bucket, false, false),
        (sign, true, true),
        (sign - 1, false, false),
        (0, false, false),
        (1, false, false),
        (2, true, false),
        (3, false, true),
        (4, true, true),
        (5, true, true),
        (6, true, true),
    ] {
        assert_eq!(answer(&at_s, member), at_s_allowed, "member {member} at S");
        assert_eq!(answer(&at_h, member), at_h_allowed, "member {member} at H");
    }

    // Re-export at (CUTOFF, S) after the backdated events: byte-identical set files and
    // rules; the manifest differs only in created_at and signature.
    let again_r = scratch.file("again-roaring");
    let again_p = scratch.file("again-parquet");
    for (format, dir) in [("roaring", &again_r), ("parquet", &again_p)] {
        let summary = export(&scratch, format, CUTOFF, Some(position_s), dir);
        assert_eq!(summary["source"]["kind"], "checkpoint", "{summary}");
    }
    for (before, again, extension) in [
        (&before_r, &again_r, "roaring64"),
        (&before_p, &again_p, "parquet"),
    ] {
        for name in [
            format!("explicit_allowed.{extension}"),
            format!("explicit_denied.{extension}"),
            "jurisdiction_rules.csv".to_string(),
        ] {
            let first = fs::read(before.join(&name)).unwrap();
            let second = fs::read(again.join(&name)).unwrap();
            assert!(
                first == second,
                "{name} at the same (purpose, cutoff, position) changed after backdated events were appended"
            );
        }
        let mut first = manifest(before);
        let mut second = manifest(again);
        for value in [&mut first, &mut second] {
            let object = value.as_object_mut().unwrap();
            object.remove("created_at");
            object.remove("signature");
        }
        assert_eq!(first, second);
    }

    // At the head, the backdated events count.
    let head_r = scratch.file("head-roaring");
    let head_p = scratch.file("head-parquet");
    for (format, dir) in [("roaring", &head_r), ("parquet", &head_p)] {
        let summary = export(&scratch, format, CUTOFF, None, dir);
        let source = &summary["source"];
        assert_eq!(source["kind"], "checkpoint", "{summary}");
        assert!(source["events_read"].as_u64().unwrap() > 0, "{summary}");
        assert!(
            source["backdated_members_reread"].as_u64().unwrap() > 0,
            "{summary}"
        );
    }
    assert_ne!(
        fs::read(head_r.join("explicit_allowed.roaring64")).unwrap(),
        fs::read(again_r.join("explicit_allowed.roaring64")).unwrap()
    );
    // Before the opt-out deadline, and before the first policy version.
    let early_r = scratch.file("before-deadline-roaring");
    let none_p = scratch.file("before-policy-parquet");
    export(&scratch, "roaring", BEFORE_DEADLINE, None, &early_r);
    export(&scratch, "parquet", BEFORE_POLICY, None, &none_p);

    // Every export verifies, and its counts and rules are the model's.
    let cases: [(&Path, &str, u64); 8] = [
        (&before_r, CUTOFF, position_s),
        (&before_p, CUTOFF, position_s),
        (&again_r, CUTOFF, position_s),
        (&again_p, CUTOFF, position_s),
        (&head_r, CUTOFF, position_h),
        (&head_p, CUTOFF, position_h),
        (&early_r, BEFORE_DEADLINE, position_h),
        (&none_p, BEFORE_POLICY, position_h),
    ];
    for &(dir, cutoff_text, position) in &cases {
        let shown = show_dir(dir).success().json();
        assert_eq!(shown["signature_valid"], true, "{shown}");
        let manifest = manifest(dir);
        assert_eq!(manifest["position"], position, "{}", dir.display());
        let explicit = model.explicit(parse_us(cutoff_text), position);
        let allows = explicit.values().filter(|&&allowed| allowed).count() as u64;
        assert_eq!(
            members_in(&manifest, "explicit_allowed"),
            allows,
            "{}",
            dir.display()
        );
        assert_eq!(
            members_in(&manifest, "explicit_denied"),
            explicit.len() as u64 - allows,
            "{}",
            dir.display()
        );
        let rules = rules_csv(dir);
        assert_eq!(rules.len(), 250, "249 assigned codes and XK");
        for code in ["US", "IN", "BR", "NA", "DE", "FR", "GB", "CH", "NO", "XK"] {
            let expected = if code == "XK" {
                rule(Some("US"), parse_us(cutoff_text)) // XK is opt-out in the default policy
            } else {
                rule(Some(code), parse_us(cutoff_text))
            };
            assert_eq!(rules[code], expected, "{code} at {cutoff_text}");
        }
        assert!(!rules.contains_key("ZZ"));
    }

    // The model is optout's rule: ask `optout status` (over the whole ledger) for a sample.
    let mut sample: Vec<u64> = fixed_ids.iter().copied().collect();
    sample.extend(chosen_now.iter().copied());
    sample.extend(backdated.iter().map(|&(member, _, _)| member).step_by(16));
    sample.extend(chose.iter().copied().step_by(40));
    sample.extend(unchosen.iter().copied().step_by(400));
    sample.sort_unstable();
    sample.dedup();
    let mut asked = 0;
    for (index, &member) in sample.iter().enumerate() {
        let country = population.country[&member];
        for at in [CUTOFF, BEFORE_DEADLINE]
            .into_iter()
            .take(if index % 4 == 0 { 2 } else { 1 })
        {
            let status = scratch.status(&member.to_string(), PURPOSE, country, Some(at));
            let explicit = model.explicit(parse_us(at), position_h);
            assert_eq!(
                status["allowed"],
                allowed(country, parse_us(at), explicit.get(&member).copied()),
                "member {member} ({country:?}) at {at}: {status}"
            );
            asked += 1;
        }
    }
    assert!(asked >= 90, "asked status {asked} times");

    // Other engines: pyroaring, pyarrow and the documented DuckDB SQL.
    let Some(python) = python_with(&["duckdb", "pyarrow", "pyroaring"], "the engine checks") else {
        return;
    };
    let profiles = scratch.write("profiles.csv", &population.profiles_csv());
    let expected_s = write_json(
        &scratch.file("expected-s.json"),
        &population.expected(&model, CUTOFF, position_s),
    );
    let expected_h = write_json(
        &scratch.file("expected-h.json"),
        &population.expected(&model, CUTOFF, position_h),
    );
    for (dirs, expected) in [
        (
            vec![
                before_r.as_path(),
                before_p.as_path(),
                again_r.as_path(),
                again_p.as_path(),
            ],
            &expected_s,
        ),
        (vec![head_r.as_path(), head_p.as_path()], &expected_h),
    ] {
        let (code, output) = check_snapshot(&python, &profiles, expected, &dirs);
        assert_eq!(code, 0, "check_snapshot.py failed:\n{output}");
        eprintln!("{output}");
    }
    for (dir, cutoff_text) in [(&early_r, BEFORE_DEADLINE), (&none_p, BEFORE_POLICY)] {
        let expected = write_json(
            &scratch.file("expected-early.json"),
            &population.expected(&model, cutoff_text, position_h),
        );
        let (code, output) = check_snapshot(&python, &profiles, &expected, &[dir.as_path()]);
        assert_eq!(code, 0, "check_snapshot.py failed:\n{output}");
        eprintln!("{output}");
    }

    // The checker catches a wrong answer (so its success above means something).
    let mut wrong = population.expected(&model, CUTOFF, position_h);
    let allowed_list = wrong["allowed"].as_array_mut().unwrap();
    let dropped = allowed_list.pop().unwrap();
    let wrong_path = write_json(&scratch.file("expected-wrong.json"), &wrong);
    for dir in [&head_r, &head_p] {
        let (code, output) = check_snapshot(&python, &profiles, &wrong_path, &[dir.as_path()]);
        assert_eq!(
            code, 1,
            "check_snapshot.py accepted a wrong answer:\n{output}"
        );
        assert!(
            output.contains(&dropped.to_string()),
            "the failure names the member: {output}"
        );
    }
}

#[test]
fn show_rejects_an_export_once_a_file_is_modified() {
    let scratch = Scratch::initialized();
    let choices = scratch.write(
        "choices.csv",
        "member_id,purpose,allowed,at\n\
         18446744073709551615,ai_training,true,2026-01-01T00:00:00Z\n\
         4294967296,ai_training,false,2026-01-01T00:00:00Z\n\
         7,ai_training,false,2026-01-01T00:00:00Z\n",
    );
    scratch.run(&["import", &path_str(&choices)]).success();
    for (format, extension) in [("roaring", "roaring64"), ("parquet", "parquet")] {
        let original = scratch.file(&format!("export-{format}"));
        export(&scratch, format, CUTOFF, None, &original);
        let shown = show_dir(&original).success().json();
        assert_eq!(shown["signature_valid"], true);

        // Exporting into a directory that holds a snapshot is refused.
        scratch
            .run(&[
                "snapshot",
                "export",
                "--purpose",
                PURPOSE,
                "--cutoff",
                CUTOFF,
                "--format",
                format,
                "--out",
                &path_str(&original),
            ])
            .exits(2);
        show_dir(&original).success();

        let tampered = |case: &str, change: &dyn Fn(&Path)| -> Run {
            let dir = scratch.file(&format!("tampered-{format}-{case}"));
            copy_dir(&original, &dir);
            change(&dir);
            show_dir(&dir)
        };

        // One bit of a set file.
        let allowed_file = format!("explicit_allowed.{extension}");
        let run = tampered("bit", &|dir| {
            let path = dir.join(&allowed_file);
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            fs::write(&path, bytes).unwrap();
        });
        run.exits(1).stderr_has(&allowed_file);

        // A set file replaced by the other set (valid content, wrong members).
        let denied_file = format!("explicit_denied.{extension}");
        let run = tampered("swap", &|dir| {
            fs::copy(dir.join(&denied_file), dir.join(&allowed_file)).unwrap();
        });
        run.exits(1).stderr_has(&allowed_file);

        // A truncated set file.
        let run = tampered("truncate", &|dir| {
            let path = dir.join(&denied_file);
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        });
        run.exits(1).stderr_has(&denied_file);

        // The rules: DE allowed without a choice.
        let run = tampered("rules", &|dir| {
            let path = dir.join("jurisdiction_rules.csv");
            let text = fs::read_to_string(&path).unwrap();
            let edited = text.replace("\nDE,opt_in,false,", "\nDE,opt_in,true,");
            assert_ne!(text, edited);
            fs::write(&path, edited).unwrap();
        });
        run.exits(1).stderr_has("jurisdiction_rules.csv");

        // The manifest: a different cutoff (the signature no longer matches).
        let run = tampered("manifest", &|dir| {
            let path = dir.join("snapshot.json");
            let mut value: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            value["cutoff"] = json!("2026-07-01T00:00:00Z");
            fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
        });
        run.exits(1).stderr_has("snapshot.json");

        // A missing set file is refused too (as unreadable input).
        let run = tampered("missing", &|dir| {
            fs::remove_file(dir.join(&denied_file)).unwrap();
        });
        assert_ne!(run.code, 0, "{run:#?}");
        run.stderr_has(&denied_file);
    }
}

/// A policy version appended after position S must not change the snapshot at
/// (purpose, T, S). Today `snapshot export` writes the `mode` column of the rules (in
/// jurisdiction_rules.csv and the manifest) from the policy versions up to S, like the
/// answers and `policy_version`: loading a later version in force at T does not change a
/// re-export at the same (purpose, T, S) (this once said `US,opt_in,true,true,false`).
#[test]
fn a_later_policy_version_does_not_change_an_export_at_the_same_position() {
    let scratch = Scratch::initialized();
    let default = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../optout-core/policies/default.toml"
    ))
    .unwrap();
    let version_2 = default
        .replacen("version = 1", "version = 2", 1)
        .replacen(
            "effective_from = \"2023-10-16T00:00:00Z\"",
            "effective_from = \"2024-01-01T00:00:00Z\"",
            1,
        )
        .replace(
            "jurisdictions = [\"EU\", \"EEA_EFTA\", \"CH\", \"GB\"]",
            "jurisdictions = [\"EU\", \"EEA_EFTA\", \"CH\", \"GB\", \"US\"]",
        );
    assert!(version_2.contains("version = 2") && version_2.contains("\"GB\", \"US\"]"));
    let position = head(&scratch);
    let first = scratch.file("first");
    export(&scratch, "roaring", CUTOFF, Some(position), &first);
    let policy = scratch.write("version-2.toml", &version_2);
    scratch
        .run(&["policy", "load", &path_str(&policy)])
        .success();
    let second = scratch.file("second");
    export(&scratch, "roaring", CUTOFF, Some(position), &second);
    for dir in [&first, &second] {
        let text = fs::read_to_string(dir.join("jurisdiction_rules.csv")).unwrap();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let consistent = match fields[1] {
                "opt_in" => fields[2..] == ["false", "true", "false"],
                "opt_out" => fields[3..] == ["true", "false"],
                _ => fields[2..] == ["false", "false", "false"],
            };
            assert!(consistent, "{}: {line}", dir.display());
        }
    }
    assert_eq!(
        fs::read_to_string(first.join("jurisdiction_rules.csv")).unwrap(),
        fs::read_to_string(second.join("jurisdiction_rules.csv")).unwrap()
    );
}
