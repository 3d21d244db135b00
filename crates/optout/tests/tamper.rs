//! Tampering is detected and located: changes made directly to the SQLite ledger make
//! `optout ledger verify` exit 1 naming the first bad position; changes to an export make
//! the offline `optout ledger verify --export` do the same; and a signed checkpoint
//! catches a rewritten tail even when the rewritten chain is self-consistent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::fs;
use std::path::Path;

use common::{path_str, run_args, sql, sql_query, Run, Scratch};

/// Events in the ledger `build` makes: the policy at 1, choices at 2..=8.
const EVENTS: u64 = 8;

/// A ledger of EVENTS events: the default policy, then seven choices of different
/// members, alternating allowed, so that neighbouring rows differ.
fn build() -> Scratch {
    let scratch = Scratch::initialized();
    for member in 2..=EVENTS {
        let receipt = scratch.choose(&(1000 + member).to_string(), "ai_training", member % 2 == 0);
        assert_eq!(receipt["position"], member);
    }
    assert_eq!(scratch.head().0, EVENTS);
    scratch
}

/// The number after the first "at position " in `text`.
fn first_bad_position(text: &str) -> Option<u64> {
    let start = text.find("at position ")? + "at position ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Asserts a failed check (exit 1) whose message names `position` as the first bad one.
#[track_caller]
fn assert_fails_at(run: &Run, position: u64) {
    assert_eq!(run.code, 1, "expected exit 1: {run:#?}");
    assert_eq!(
        first_bad_position(&run.stderr),
        Some(position),
        "expected the first bad position {position} in stderr: {run:#?}"
    );
}

/// Tampers with the stored ledger, then asserts `ledger verify` fails at `position`.
#[track_caller]
fn assert_stored_tamper_detected(statements: &str, position: u64) {
    let scratch = build();
    sql(&scratch.ledger_file(), statements);
    let verify = scratch.run(&["ledger", "verify"]);
    assert_fails_at(&verify, position);
}

// ---------------------------------------------------------------------------------------
// the stored ledger
// ---------------------------------------------------------------------------------------

#[test]
fn verify_passes_on_an_untouched_ledger() {
    let scratch = build();
    let verified = scratch.run(&["ledger", "verify"]).success().json();
    assert_eq!(verified["events"], EVENTS);
}

#[test]
fn flipped_allowed_flag_is_detected_at_its_position() {
    assert_stored_tamper_detected(
        "UPDATE events SET allowed = 1 - allowed WHERE position = 5",
        5,
    );
}

#[test]
fn changed_choice_time_is_detected_at_its_position() {
    assert_stored_tamper_detected("UPDATE events SET at_us = at_us - 1 WHERE position = 4", 4);
}

// Proves a changed recorded_at is caught whether it moves time backwards (out of order
// with the previous event) or forwards (only the hash tells).
#[test]
fn changed_recorded_time_is_detected_at_its_position() {
    assert_stored_tamper_detected(
        "UPDATE events SET recorded_at_us = recorded_at_us - 86400000000 WHERE position = 6",
        6,
    );
    assert_stored_tamper_detected(
        "UPDATE events SET recorded_at_us = recorded_at_us + 1 WHERE position = 6",
        6,
    );
}

#[test]
fn changed_member_is_detected_at_its_position() {
    assert_stored_tamper_detected("UPDATE events SET member = 1 WHERE position = 7", 7);
}

// Proves a deleted row in the middle is reported at the position that went missing.
#[test]
fn deleted_row_is_detected_at_its_position() {
    assert_stored_tamper_detected("DELETE FROM events WHERE position = 4", 4);
}

// Proves swapping two rows' contents (member, allowed, times) is caught at the first of
// the two positions.
#[test]
fn swapped_rows_are_detected_at_the_first_of_them() {
    assert_stored_tamper_detected(
        "CREATE TEMP TABLE saved AS SELECT position, member, allowed, at_us FROM events \
             WHERE position IN (3, 4); \
         UPDATE events SET \
             member = (SELECT member FROM saved WHERE saved.position = 7 - events.position), \
             allowed = (SELECT allowed FROM saved WHERE saved.position = 7 - events.position), \
             at_us = (SELECT at_us FROM saved WHERE saved.position = 7 - events.position) \
         WHERE position IN (3, 4)",
        3,
    );
    // A full swap, every column but the position, through a scratch table.
    assert_stored_tamper_detected(
        "CREATE TEMP TABLE saved AS SELECT * FROM events WHERE position IN (3, 4); \
         DELETE FROM events WHERE position IN (3, 4); \
         INSERT INTO events SELECT 7 - position, recorded_at_us, kind, member, purpose, allowed, at_us, \
             source, actor, policy_version, notice_version, notice_language, jurisdiction, \
             idempotency_key, effective_from_us, document, hash FROM saved",
        3,
    );
}

#[test]
fn changed_stored_hash_is_detected_at_its_position() {
    assert_stored_tamper_detected(
        "UPDATE events SET hash = zeroblob(32) WHERE position = 5",
        5,
    );
    // The last event's hash, which nothing after it depends on.
    assert_stored_tamper_detected(
        &format!("UPDATE events SET hash = randomblob(32) WHERE position = {EVENTS}"),
        EVENTS,
    );
}

// Proves a hash of the wrong length and a null required column are reported as
// unreadable at their position, not as a crash.
#[test]
fn undecodable_rows_are_reported_at_their_position() {
    assert_stored_tamper_detected("UPDATE events SET hash = x'00' WHERE position = 6", 6);
    assert_stored_tamper_detected("UPDATE events SET member = NULL WHERE position = 3", 3);
    assert_stored_tamper_detected(
        "UPDATE events SET purpose = 'no such purpose!' WHERE position = 2",
        2,
    );
}

#[test]
fn changed_policy_document_is_detected_at_its_position() {
    assert_stored_tamper_detected(
        "UPDATE events SET document = replace(document, 'opt_in', 'opt_out') WHERE position = 1",
        1,
    );
}

// Proves a renumbered last event (a gap before it) is reported where the gap starts.
#[test]
fn renumbered_event_is_detected_at_the_gap() {
    assert_stored_tamper_detected(
        &format!("UPDATE events SET position = 100 WHERE position = {EVENTS}"),
        EVENTS,
    );
}

// Proves the SQL tampering helper really changed the row (so the tests above do not
// pass for the wrong reason) and that an untouched neighbour is left alone.
#[test]
fn tampering_helper_changes_exactly_the_row_asked() {
    let scratch = build();
    let before = sql_query(
        &scratch.ledger_file(),
        "SELECT position, allowed FROM events WHERE position IN (4, 5) ORDER BY position",
    );
    sql(
        &scratch.ledger_file(),
        "UPDATE events SET allowed = 1 - allowed WHERE position = 5",
    );
    let after = sql_query(
        &scratch.ledger_file(),
        "SELECT position, allowed FROM events WHERE position IN (4, 5) ORDER BY position",
    );
    assert_eq!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
}

// ---------------------------------------------------------------------------------------
// exports, offline
// ---------------------------------------------------------------------------------------

/// A built ledger's export lines (without their newlines).
fn export_lines(scratch: &Scratch) -> Vec<String> {
    let path = scratch.export("ledger.jsonl");
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len() as u64, EVENTS);
    lines
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn verify_export(path: &Path, checkpoint: Option<&Path>) -> Run {
    let mut args = vec![
        "ledger".to_string(),
        "verify".to_string(),
        "--export".to_string(),
        path_str(path),
    ];
    if let Some(checkpoint) = checkpoint {
        args.push("--checkpoint".to_string());
        args.push(path_str(checkpoint));
    }
    run_args(&args)
}

/// Writes `lines` after `edit` to a new export and asserts the offline check fails at
/// `position`.
#[track_caller]
fn assert_export_tamper_detected(edit: impl FnOnce(&mut Vec<String>), position: u64) {
    let scratch = build();
    let mut lines = export_lines(&scratch);
    let original = lines.clone();
    edit(&mut lines);
    assert_ne!(lines, original, "the edit changed nothing");
    let tampered = scratch.file("tampered.jsonl");
    write_lines(&tampered, &lines);
    assert_fails_at(&verify_export(&tampered, None), position);
}

#[test]
fn untouched_export_verifies_offline() {
    let scratch = build();
    let lines = export_lines(&scratch);
    let copy = scratch.file("copy.jsonl");
    write_lines(&copy, &lines);
    let verified = verify_export(&copy, None).success().json();
    assert_eq!(verified["events"], EVENTS);
}

#[test]
fn export_with_flipped_allowed_is_detected_at_its_position() {
    assert_export_tamper_detected(
        |lines| {
            let line = &mut lines[4];
            *line = if line.contains("\"allowed\":true") {
                line.replace("\"allowed\":true", "\"allowed\":false")
            } else {
                line.replace("\"allowed\":false", "\"allowed\":true")
            };
        },
        5,
    );
}

#[test]
fn export_with_changed_time_is_detected_at_its_position() {
    assert_export_tamper_detected(
        |lines| {
            let line: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
            let at = line["event"]["at_us"].as_i64().unwrap();
            lines[5] = lines[5].replace(
                &format!("\"at_us\":{at}"),
                &format!("\"at_us\":{}", at - 1_000_000),
            );
        },
        6,
    );
}

#[test]
fn export_with_deleted_line_is_detected_at_its_position() {
    assert_export_tamper_detected(
        |lines| {
            lines.remove(3);
        },
        4,
    );
}

#[test]
fn export_with_swapped_lines_is_detected_at_the_first_of_them() {
    assert_export_tamper_detected(|lines| lines.swap(2, 3), 3);
}

#[test]
fn export_with_changed_hash_or_prev_hash_is_detected_at_its_position() {
    let zero = "0".repeat(64);
    assert_export_tamper_detected(
        |lines| {
            let line: serde_json::Value = serde_json::from_str(&lines[6]).unwrap();
            let hash = line["hash"].as_str().unwrap().to_string();
            lines[6] = lines[6].replace(
                &format!("\"hash\":\"{hash}\""),
                &format!("\"hash\":\"{zero}\""),
            );
        },
        7,
    );
    assert_export_tamper_detected(
        |lines| {
            let line: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
            let prev = line["prev_hash"].as_str().unwrap().to_string();
            lines[5] = lines[5].replace(
                &format!("\"prev_hash\":\"{prev}\""),
                &format!("\"prev_hash\":\"{zero}\""),
            );
        },
        6,
    );
}

// Proves an export whose event is not in canonical form (here: a space inserted) or not
// JSON at all fails the offline check with exit 1.
#[test]
fn export_with_non_canonical_or_garbled_line_fails() {
    let scratch = build();
    let mut lines = export_lines(&scratch);
    lines[3] = lines[3].replacen("\"kind\":\"choice\"", "\"kind\": \"choice\"", 1);
    let spaced = scratch.file("spaced.jsonl");
    write_lines(&spaced, &lines);
    let run = verify_export(&spaced, None);
    assert_eq!(run.code, 1, "{run:#?}");

    let mut lines = export_lines(&scratch);
    let half = lines[3].len() / 2;
    lines[3].truncate(half);
    let garbled = scratch.file("garbled.jsonl");
    write_lines(&garbled, &lines);
    let run = verify_export(&garbled, None);
    assert_eq!(run.code, 1, "{run:#?}");
    run.stderr_has("line 4");
}

// ---------------------------------------------------------------------------------------
// checkpoints
// ---------------------------------------------------------------------------------------

/// A signed checkpoint of the current head, written to `name`.
fn checkpoint(scratch: &Scratch, name: &str) -> std::path::PathBuf {
    let checkpoint = scratch.run(&["ledger", "checkpoint"]).success();
    scratch.write(name, &checkpoint.stdout)
}

// Proves a tail rewrite that leaves a self-consistent chain (delete the last event, append
// different ones) passes `ledger verify` and the export's own check, but the export fails
// against a checkpoint signed before the rewrite, at the checkpointed position.
#[test]
fn checkpoint_taken_before_a_tail_rewrite_exposes_it() {
    let scratch = build();
    let old_checkpoint = checkpoint(&scratch, "old-checkpoint.json");
    let old_export = scratch.export("old.jsonl");
    verify_export(&old_export, Some(&old_checkpoint)).success();

    sql(
        &scratch.ledger_file(),
        &format!("DELETE FROM events WHERE position = {EVENTS}"),
    );
    let replaced = scratch.choose("1008", "ai_training", true);
    assert_eq!(replaced["position"], EVENTS);
    scratch.choose("1009", "ai_training", false);

    // The chain itself is fine: nothing but the checkpoint can tell.
    assert_eq!(scratch.head().0, EVENTS + 1);
    let new_export = scratch.export("new.jsonl");
    verify_export(&new_export, None).success();

    let run = verify_export(&new_export, Some(&old_checkpoint));
    assert_fails_at(&run, EVENTS);
    run.stderr_has("rewritten");
}

// Proves a truncated tail (which leaves a valid, shorter chain) is caught by a checkpoint
// of the longer ledger: the export ends before the checkpointed position.
#[test]
fn checkpoint_exposes_a_truncated_export_or_ledger() {
    let scratch = build();
    let old_checkpoint = checkpoint(&scratch, "checkpoint.json");

    let mut lines = export_lines(&scratch);
    lines.pop();
    let truncated = scratch.file("truncated.jsonl");
    write_lines(&truncated, &lines);
    verify_export(&truncated, None).success();
    let run = verify_export(&truncated, Some(&old_checkpoint));
    assert_eq!(run.code, 1, "{run:#?}");
    run.stderr_has(&format!("checkpointed position {EVENTS}"));

    sql(
        &scratch.ledger_file(),
        &format!("DELETE FROM events WHERE position >= {}", EVENTS - 1),
    );
    scratch.choose("2000", "ai_training", true);
    let export = scratch.export("shorter.jsonl");
    let run = verify_export(&export, Some(&old_checkpoint));
    assert_eq!(run.code, 1, "{run:#?}");
    run.stderr_has(&format!("checkpointed position {EVENTS}"));
}

// Proves a checkpoint whose position or hash was edited no longer verifies (exit 1).
#[test]
fn edited_checkpoint_is_rejected() {
    let scratch = build();
    let export = scratch.export("ledger.jsonl");
    let path = checkpoint(&scratch, "checkpoint.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let lines = export_lines(&scratch);
    let line_3: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    value["position"] = serde_json::Value::from(3);
    value["hash"] = line_3["hash"].clone();
    let edited = scratch.write("edited.json", &value.to_string());
    let run = verify_export(&export, Some(&edited));
    assert_eq!(run.code, 1, "{run:#?}");
}
