//! The command-line contract end to end, driving the real `optout` binary: init, the data
//! directory, choices and receipts, status reasons, bad input, policy versions, imports,
//! exports and offline verification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::fs;

use common::{micros, optout, path_str, read_export, run, run_args, Scratch};
use serde_json::Value;

const DEADLINE_MINUS_ONE_US: &str = "2023-10-29T23:59:59.999999Z";
const DEADLINE: &str = "2023-10-30T00:00:00Z";
const MEMBER_MAX: &str = "18446744073709551615";

// ---------------------------------------------------------------------------------------
// init and the data directory
// ---------------------------------------------------------------------------------------

#[test]
fn init_creates_owner_only_key_public_key_and_policy_event() {
    let scratch = Scratch::new();
    let init = run(&scratch.data, &["init"]).success().json();
    assert_eq!(init["policy_version"], 1);
    assert_eq!(init["policy_position"], 1);
    let public = fs::read_to_string(scratch.public_key_file()).unwrap();
    assert_eq!(init["public_key"], public.trim());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(scratch.data.join("signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "signing.key mode {mode:o}");
    }
    assert_eq!(scratch.head().0, 1);
}

// Proves a second init is refused as bad input and leaves key, public key and ledger
// byte-for-byte and head-for-head as they were.
#[test]
fn init_twice_fails_with_exit_2_and_changes_nothing() {
    let scratch = Scratch::initialized();
    scratch.choose("7", "ai_training", false);
    let key = fs::read(scratch.data.join("signing.key")).unwrap();
    let public = fs::read(scratch.public_key_file()).unwrap();
    let head = scratch.head();

    scratch
        .run(&["init"])
        .exits(2)
        .stderr_has("already initialized");

    assert_eq!(fs::read(scratch.data.join("signing.key")).unwrap(), key);
    assert_eq!(fs::read(scratch.public_key_file()).unwrap(), public);
    assert_eq!(scratch.head(), head);
}

// Proves init validates --policy before creating anything: a malformed policy leaves no
// data directory behind.
#[test]
fn init_with_malformed_policy_creates_nothing() {
    let scratch = Scratch::new();
    let policy = scratch.write("broken.toml", "version = 1\neffective_from = \n");
    let failed = scratch
        .run(&["init", "--policy", &path_str(&policy)])
        .exits(2);
    failed.stderr_has(&format!("{}:2:", path_str(&policy)));
    assert!(!scratch.data.exists(), "init created {:?}", scratch.data);
}

#[test]
fn init_with_policy_file_records_that_policy() {
    let scratch = Scratch::new();
    let policy = scratch.write("v7.toml", &policy_text(7, "2023-01-01T00:00:00Z", "opt_in"));
    let init = scratch
        .run(&["init", "--policy", &path_str(&policy)])
        .success()
        .json();
    assert_eq!(init["policy_version"], 7);
    let status = scratch.status("1", "ai_training", Some("US"), Some("2024-01-01T00:00:00Z"));
    assert_eq!(status["allowed"], false);
    assert_eq!(status["reason"], "jurisdiction_default");
    assert_eq!(status["detail"]["mode"], "opt_in");
    assert_eq!(status["policy_version"], 7);
}

// Proves OPTOUT_DATA_DIR selects the data directory, --data-dir overrides it, and without
// either the directory is ./optout-data.
#[test]
fn data_dir_comes_from_env_flag_or_default() {
    let scratch = Scratch::new();
    let from_env = scratch.file("from-env");
    let status = optout()
        .env("OPTOUT_DATA_DIR", &from_env)
        .args(["--quiet", "init"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(from_env.join("signing.key").exists());
    let receipt = optout()
        .env("OPTOUT_DATA_DIR", &from_env)
        .args(["choose", "5", "ai_training", "deny"])
        .output()
        .unwrap();
    assert!(receipt.status.success(), "{receipt:?}");
    let receipt: Value = serde_json::from_slice(&receipt.stdout).unwrap();
    assert_eq!(receipt["position"], 2);

    // --data-dir wins over the environment.
    let flagged = scratch.file("flagged");
    let status = optout()
        .env("OPTOUT_DATA_DIR", &from_env)
        .args(["--quiet", "--data-dir", &path_str(&flagged), "init"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(flagged.join("signing.key").exists());
    assert_eq!(
        run(&from_env, &["ledger", "verify"]).success().json()["events"],
        2
    );

    // Neither: ./optout-data in the working directory.
    let status = optout()
        .current_dir(scratch.temp.path())
        .args(["--quiet", "init"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(scratch.file("optout-data").join("signing.key").exists());
}

#[test]
fn commands_on_a_missing_data_dir_fail_without_creating_it() {
    let scratch = Scratch::new();
    let failed = scratch.run(&["choose", "1", "ai_training", "deny"]);
    assert_ne!(failed.code, 0, "{failed:#?}");
    failed.stderr_has("init");
    assert!(!scratch.data.join("ledger.sqlite").exists());
}

// ---------------------------------------------------------------------------------------
// choose and receipts
// ---------------------------------------------------------------------------------------

#[test]
fn choose_prints_a_signed_receipt_for_the_new_head() {
    let scratch = Scratch::initialized();
    let receipt = scratch.choose("42", "ai_training", false);
    for field in [
        "position",
        "hash",
        "at",
        "member",
        "purpose",
        "allowed",
        "signature",
    ] {
        assert!(
            !receipt[field].is_null(),
            "receipt lacks {field}: {receipt}"
        );
    }
    assert_eq!(receipt["position"], 2);
    assert_eq!(receipt["member"], 42);
    assert_eq!(receipt["purpose"], "ai_training");
    assert_eq!(receipt["allowed"], false);
    assert_eq!(receipt["source"], "admin");
    let (position, hash) = scratch.head();
    assert_eq!(receipt["position"], position);
    assert_eq!(receipt["hash"], hash.as_str());
    let public = fs::read_to_string(scratch.public_key_file()).unwrap();
    assert_eq!(receipt["public_key"], public.trim());

    let second = scratch.choose("42", "ai_personalization", true);
    assert_eq!(second["position"], 3);
    assert_eq!(second["allowed"], true);
    assert_eq!(second["purpose"], "ai_personalization");
}

// Proves `receipt verify` accepts a genuine receipt (key as file or hex) and rejects, with
// exit 1, one whose `allowed` was flipped, whose member was changed, or one checked
// against another ledger's key.
#[test]
fn receipt_verify_accepts_genuine_and_rejects_altered_or_wrong_key() {
    let scratch = Scratch::initialized();
    let receipt = scratch.choose("42", "ai_training", false);
    let genuine = scratch.write("receipt.json", &receipt.to_string());
    let key_file = path_str(&scratch.public_key_file());

    let verified = run_args(&["receipt", "verify", &path_str(&genuine), "--key", &key_file])
        .success()
        .json();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["position"], receipt["position"]);
    let key_hex = fs::read_to_string(scratch.public_key_file()).unwrap();
    run_args(&[
        "receipt",
        "verify",
        &path_str(&genuine),
        "--key",
        key_hex.trim(),
    ])
    .success();

    let mut flipped = receipt.clone();
    flipped["allowed"] = Value::Bool(true);
    let flipped = scratch.write("flipped.json", &flipped.to_string());
    run_args(&["receipt", "verify", &path_str(&flipped), "--key", &key_file]).exits(1);

    let mut other_member = receipt.clone();
    other_member["member"] = Value::from(43);
    let other_member = scratch.write("other-member.json", &other_member.to_string());
    run_args(&[
        "receipt",
        "verify",
        &path_str(&other_member),
        "--key",
        &key_file,
    ])
    .exits(1);

    let other = Scratch::initialized();
    let other_key = path_str(&other.public_key_file());
    run_args(&[
        "receipt",
        "verify",
        &path_str(&genuine),
        "--key",
        &other_key,
    ])
    .exits(1);
}

#[test]
fn receipt_verify_of_a_non_receipt_is_bad_input() {
    let scratch = Scratch::initialized();
    let not_a_receipt = scratch.write("nothing.json", "{\"hello\":1}");
    let key_file = path_str(&scratch.public_key_file());
    run_args(&[
        "receipt",
        "verify",
        &path_str(&not_a_receipt),
        "--key",
        &key_file,
    ])
    .exits(2);
    run_args(&[
        "receipt",
        "verify",
        &path_str(&not_a_receipt),
        "--key",
        "not-hex",
    ])
    .exits(2);
}

// ---------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------

#[test]
fn status_reports_explicit_choice_with_its_position() {
    let scratch = Scratch::initialized();
    let receipt = scratch.choose("5", "ai_training", false);
    let status = scratch.status("5", "ai_training", Some("US"), None);
    assert_eq!(status["allowed"], false);
    assert_eq!(status["reason"], "explicit_choice");
    assert_eq!(status["detail"]["position"], receipt["position"]);
    assert_eq!(status["explicit_choices"], 1);

    // An explicit opt-in counts in an opt-in jurisdiction.
    scratch.choose("6", "ai_training", true);
    let status = scratch.status("6", "ai_training", Some("DE"), None);
    assert_eq!(status["allowed"], true);
    assert_eq!(status["reason"], "explicit_choice");

    // A later choice overrides the earlier one.
    let later = scratch.choose("5", "ai_training", true);
    let status = scratch.status("5", "ai_training", Some("US"), None);
    assert_eq!(status["allowed"], true);
    assert_eq!(status["detail"]["position"], later["position"]);
    assert_eq!(status["explicit_choices"], 2);
}

// Proves the opt-out default counts from the deadline exactly: one microsecond before it
// a US member with no choice is not allowed (before_deadline), at it allowed.
#[test]
fn status_opt_out_default_counts_from_the_deadline_inclusive() {
    let scratch = Scratch::initialized();
    let before = scratch.status("9", "ai_training", Some("US"), Some(DEADLINE_MINUS_ONE_US));
    assert_eq!(before["allowed"], false);
    assert_eq!(before["reason"], "before_deadline");
    assert_eq!(before["detail"]["deadline"], DEADLINE);

    let at = scratch.status("9", "ai_training", Some("US"), Some(DEADLINE));
    assert_eq!(at["allowed"], true);
    assert_eq!(at["reason"], "jurisdiction_default");
    assert_eq!(at["detail"]["mode"], "opt_out");

    let now = scratch.status("9", "ai_training", Some("US"), None);
    assert_eq!(now["allowed"], true);
    assert_eq!(now["reason"], "jurisdiction_default");
    assert_eq!(now["explicit_choices"], 0);
}

#[test]
fn status_opt_in_default_for_de_is_not_allowed() {
    let scratch = Scratch::initialized();
    for at in [None, Some(DEADLINE), Some(DEADLINE_MINUS_ONE_US)] {
        let status = scratch.status("9", "ai_training", Some("DE"), at);
        assert_eq!(status["allowed"], false, "{status}");
        assert_eq!(status["reason"], "jurisdiction_default", "{status}");
        assert_eq!(status["detail"]["mode"], "opt_in", "{status}");
    }
}

// Proves a missing or unassigned jurisdiction gets the most protective answer, even for a
// member who opted in.
#[test]
fn status_missing_or_unassigned_jurisdiction_is_unknown_and_not_allowed() {
    let scratch = Scratch::initialized();
    scratch.choose("9", "ai_training", true);
    for jurisdiction in [None, Some("XX")] {
        let status = scratch.status("9", "ai_training", jurisdiction, None);
        assert_eq!(status["allowed"], false, "{status}");
        assert_eq!(status["reason"], "unknown_jurisdiction", "{status}");
    }
    // Malformed (not two letters) is bad input.
    scratch
        .run(&[
            "status",
            "9",
            "--purpose",
            "ai_training",
            "--jurisdiction",
            "USA",
        ])
        .exits(2);
}

// Proves a choice made now does not count for a time before it: status at a past time
// falls back to the default.
#[test]
fn status_at_a_time_before_the_choice_ignores_it() {
    let scratch = Scratch::initialized();
    scratch.choose("11", "ai_training", false);
    let past = scratch.status(
        "11",
        "ai_training",
        Some("US"),
        Some("2023-11-01T00:00:00Z"),
    );
    assert_eq!(past["allowed"], true);
    assert_eq!(past["reason"], "jurisdiction_default");
}

#[test]
fn status_before_the_first_policy_is_not_allowed() {
    let scratch = Scratch::initialized();
    let status = scratch.status("1", "ai_training", Some("US"), Some("2023-10-15T23:59:59Z"));
    assert_eq!(status["allowed"], false);
    assert_eq!(status["reason"], "no_policy_in_force");
}

// Proves a retried choose with the same idempotency key returns the first receipt and
// writes one event, and reusing the key for a different decision is bad input.
#[test]
fn choose_with_idempotency_key_writes_one_event() {
    let scratch = Scratch::initialized();
    let args = [
        "choose",
        "5",
        "ai_training",
        "deny",
        "--idempotency-key",
        "req-1",
    ];
    let first = scratch.run(&args).success().json();
    let head = scratch.head();
    let retried = scratch.run(&args).success().json();
    assert_eq!(retried, first);
    assert_eq!(scratch.head(), head);
    scratch
        .run(&[
            "choose",
            "5",
            "ai_training",
            "allow",
            "--idempotency-key",
            "req-1",
        ])
        .exits(2);
    assert_eq!(scratch.head(), head);
}

#[test]
fn status_with_bad_at_is_bad_input() {
    let scratch = Scratch::initialized();
    scratch
        .run(&[
            "status",
            "1",
            "--purpose",
            "ai_training",
            "--jurisdiction",
            "US",
            "--at",
            "yesterday",
        ])
        .exits(2);
}

// ---------------------------------------------------------------------------------------
// bad input changes nothing
// ---------------------------------------------------------------------------------------

// Proves an unknown purpose is bad input (exit 2) naming the purpose, and writes no event
// (the verified head is unchanged).
#[test]
fn unknown_purpose_is_rejected_naming_it_and_writes_nothing() {
    let scratch = Scratch::initialized();
    scratch.choose("1", "ai_training", false);
    let head = scratch.head();
    scratch
        .run(&["choose", "1", "ai_trainign", "deny"])
        .exits(2)
        .stderr_has("ai_trainign");
    scratch
        .run(&[
            "status",
            "1",
            "--purpose",
            "ai_trainign",
            "--jurisdiction",
            "US",
        ])
        .exits(2)
        .stderr_has("ai_trainign");
    assert_eq!(scratch.head(), head);
}

// Proves member ids that are not u64 ("abc", "-1" as an option-looking or a positional
// argument, 2^64) are bad input and write nothing.
#[test]
fn bad_member_ids_are_rejected_and_write_nothing() {
    let scratch = Scratch::initialized();
    let head = scratch.head();
    for args in [
        vec!["choose", "abc", "ai_training", "deny"],
        vec!["choose", "-1", "ai_training", "deny"],
        vec!["choose", "--", "-1", "ai_training", "deny"],
        vec!["choose", "18446744073709551616", "ai_training", "deny"],
        vec!["choose", "", "ai_training", "deny"],
        vec![
            "status",
            "abc",
            "--purpose",
            "ai_training",
            "--jurisdiction",
            "US",
        ],
        vec![
            "status",
            "--purpose",
            "ai_training",
            "--jurisdiction",
            "US",
            "--",
            "-1",
        ],
    ] {
        scratch.run(&args).exits(2);
    }
    scratch
        .run(&["choose", "abc", "ai_training", "deny"])
        .stderr_has("abc");
    assert_eq!(scratch.head(), head);
}

#[test]
fn bad_decision_or_source_is_rejected_and_writes_nothing() {
    let scratch = Scratch::initialized();
    let head = scratch.head();
    scratch
        .run(&["choose", "1", "ai_training", "maybe"])
        .exits(2);
    scratch
        .run(&[
            "choose",
            "1",
            "ai_training",
            "deny",
            "--source",
            "carrier-pigeon",
        ])
        .exits(2);
    assert_eq!(scratch.head(), head);
}

// Proves the largest u64 member id (stored as a negative i64 in SQLite) round-trips
// through choose, status and export, and is not confused with other ids.
#[test]
fn largest_member_id_works() {
    let scratch = Scratch::initialized();
    let receipt = scratch.choose(MEMBER_MAX, "ai_training", false);
    assert_eq!(receipt["member"].as_u64(), Some(u64::MAX));
    let high_bit = scratch.choose("9223372036854775808", "ai_training", true);
    assert_eq!(high_bit["member"].as_u64(), Some(1 << 63));

    let status = scratch.status(MEMBER_MAX, "ai_training", Some("US"), None);
    assert_eq!(status["member"].as_u64(), Some(u64::MAX));
    assert_eq!(status["allowed"], false);
    assert_eq!(status["reason"], "explicit_choice");
    assert_eq!(status["detail"]["position"], receipt["position"]);

    let status = scratch.status("9223372036854775808", "ai_training", Some("US"), None);
    assert_eq!(status["allowed"], true);
    assert_eq!(status["detail"]["position"], high_bit["position"]);

    // The signed bit patterns of these ids (-1, i64::MIN) and their neighbours stay
    // without choices.
    for other in ["1", "0", "9223372036854775807", "18446744073709551614"] {
        let status = scratch.status(other, "ai_training", Some("US"), None);
        assert_eq!(status["explicit_choices"], 0, "member {other}: {status}");
    }

    let lines = scratch.exported_lines();
    let members: Vec<u64> = lines
        .iter()
        .filter_map(|line| line["event"]["member"].as_u64())
        .collect();
    assert_eq!(members, vec![u64::MAX, 1 << 63]);
}

// ---------------------------------------------------------------------------------------
// policy versions
// ---------------------------------------------------------------------------------------

/// A small valid policy: `ai_training` with `mode` as the default everywhere.
fn policy_text(version: u32, effective_from: &str, mode: &str) -> String {
    let dates = if mode == "opt_out" {
        format!(
            ", notified_at = \"{effective_from}\", default_effective_from = \"{effective_from}\""
        )
    } else {
        String::new()
    };
    format!(
        "version = {version}\n\
         effective_from = \"{effective_from}\"\n\
         \n\
         [purposes.ai_training]\n\
         title = \"Use of data for AI training\"\n\
         notice = \"We may use your public profile to train AI models.\"\n\
         allowed_fields = [\"headline\"]\n\
         default = {{ mode = \"{mode}\"{dates} }}\n"
    )
}

// Proves a malformed policy is bad input whose message points at file:line:column, and
// that nothing is appended.
#[test]
fn policy_load_malformed_reports_file_line_column_and_appends_nothing() {
    let scratch = Scratch::initialized();
    let head = scratch.head();

    // A TOML syntax error: the array on line 7 is not closed, found at line 8 column 1.
    let syntax =
        policy_text(2, "2024-01-01T00:00:00Z", "opt_in").replace("[\"headline\"]", "[\"headline\"");
    let syntax = scratch.write("syntax.toml", &syntax);
    scratch
        .run(&["policy", "load", &path_str(&syntax)])
        .exits(2)
        .stderr_has(&format!("{}:8:1", path_str(&syntax)));

    // A semantic error: an unknown mode on line 8.
    let semantic = policy_text(2, "2024-01-01T00:00:00Z", "opt_in").replace("opt_in", "maybe");
    let semantic = scratch.write("semantic.toml", &semantic);
    let failed = scratch
        .run(&["policy", "load", &path_str(&semantic)])
        .exits(2);
    failed.stderr_has(&format!("{}:8:", path_str(&semantic)));

    // A missing file.
    scratch
        .run(&["policy", "load", &path_str(&scratch.file("absent.toml"))])
        .exits(2);

    assert_eq!(scratch.head(), head);
}

// Proves a valid next version with a later effective_from is appended and decides from
// then on, while the same version again, an older version or a version that does not
// take effect later is refused with exit 2 and appends nothing.
#[test]
fn policy_load_appends_next_version_and_refuses_out_of_order_ones() {
    let scratch = Scratch::initialized();
    let (head_position, _) = scratch.head();
    let v2 = scratch.write("v2.toml", &policy_text(2, "2024-01-01T00:00:00Z", "opt_in"));
    let loaded = scratch
        .run(&["policy", "load", &path_str(&v2)])
        .success()
        .json();
    assert_eq!(loaded["policy_version"], 2);
    assert_eq!(loaded["position"], head_position + 1);
    let head = scratch.head();
    assert_eq!(head.0, head_position + 1);

    // Version 1 decides before 2024, version 2 after.
    let before = scratch.status("1", "ai_training", Some("US"), Some("2023-12-31T23:59:59Z"));
    assert_eq!(before["allowed"], true);
    assert_eq!(before["policy_version"], 1);
    let after = scratch.status("1", "ai_training", Some("US"), Some("2024-01-01T00:00:00Z"));
    assert_eq!(after["allowed"], false);
    assert_eq!(after["reason"], "jurisdiction_default");
    assert_eq!(after["policy_version"], 2);

    let v1 = scratch.write("v1.toml", &policy_text(1, "2025-01-01T00:00:00Z", "opt_in"));
    scratch.run(&["policy", "load", &path_str(&v1)]).exits(2);
    scratch.run(&["policy", "load", &path_str(&v2)]).exits(2);
    let v3_earlier = scratch.write("v3.toml", &policy_text(3, "2023-12-01T00:00:00Z", "opt_in"));
    scratch
        .run(&["policy", "load", &path_str(&v3_earlier)])
        .exits(2);
    assert_eq!(scratch.head(), head);

    let show = scratch.run(&["policy", "show"]).success();
    let versions: Vec<u64> = show
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["version"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(versions, vec![1, 2]);
}

// ---------------------------------------------------------------------------------------
// import
// ---------------------------------------------------------------------------------------

/// CSV with an invalid row 3 (unknown purpose); the other rows are valid. Rows 5 and 6
/// have the same time for the same member: the later row (deny) must win.
const CSV_WITH_BAD_ROW_3: &str = "member_id,purpose,allowed,at,source\n\
100,ai_training,false,2023-10-20T10:00:00Z,web\n\
101,ai_training,true,2023-10-21T00:00:00Z,\n\
102,ai_trainnig,true,2023-10-22T00:00:00Z,web\n\
100,ai_training,true,2023-11-05T00:00:00Z,mobile\n\
103,ai_training,true,2023-10-25T12:00:00Z,web\n\
103,ai_training,false,2023-10-25T12:00:00Z,web\n";

/// JSON Lines, all valid: two rows of member 200 with the same time (the later row,
/// allowed, wins), then a row with an earlier time that is later in the file.
const JSONL_VALID: &str = "{\"member_id\":200,\"purpose\":\"ai_personalization\",\"allowed\":false,\"at\":\"2023-10-28T08:00:00Z\",\"source\":\"gpc\"}\n\
{\"member_id\":\"18446744073709551615\",\"purpose\":\"ai_training\",\"allowed\":true,\"at\":\"2023-10-18T00:00:00Z\"}\n\
{\"member_id\":200,\"purpose\":\"ai_personalization\",\"allowed\":true,\"at\":\"2023-10-28T08:00:00Z\"}\n\
{\"member_id\":200,\"purpose\":\"ai_personalization\",\"allowed\":false,\"at\":\"2023-10-27T00:00:00Z\"}\n";

/// (member, purpose, allowed, at_us, source) of the valid rows, in file order: CSV first.
fn expected_imported() -> Vec<(u64, &'static str, bool, i64, &'static str)> {
    vec![
        (
            100,
            "ai_training",
            false,
            micros(2023, 10, 20, 10, 0, 0),
            "web",
        ),
        (
            101,
            "ai_training",
            true,
            micros(2023, 10, 21, 0, 0, 0),
            "import",
        ),
        (
            100,
            "ai_training",
            true,
            micros(2023, 11, 5, 0, 0, 0),
            "mobile",
        ),
        (
            103,
            "ai_training",
            true,
            micros(2023, 10, 25, 12, 0, 0),
            "web",
        ),
        (
            103,
            "ai_training",
            false,
            micros(2023, 10, 25, 12, 0, 0),
            "web",
        ),
        (
            200,
            "ai_personalization",
            false,
            micros(2023, 10, 28, 8, 0, 0),
            "gpc",
        ),
        (
            u64::MAX,
            "ai_training",
            true,
            micros(2023, 10, 18, 0, 0, 0),
            "import",
        ),
        (
            200,
            "ai_personalization",
            true,
            micros(2023, 10, 28, 8, 0, 0),
            "import",
        ),
        (
            200,
            "ai_personalization",
            false,
            micros(2023, 10, 27, 0, 0, 0),
            "import",
        ),
    ]
}

// Proves one invalid row makes the whole import (of every file given) bad input: stderr
// names the file and row 3, and the ledger head is unchanged.
#[test]
fn import_with_an_invalid_row_names_file_and_row_and_imports_nothing() {
    let scratch = Scratch::initialized();
    scratch.choose("1", "ai_training", false);
    let head = scratch.head();
    let csv = scratch.write("history.csv", CSV_WITH_BAD_ROW_3);
    let jsonl = scratch.write("history.jsonl", JSONL_VALID);

    let failed = scratch
        .run(&["import", &path_str(&jsonl), &path_str(&csv)])
        .exits(2);
    failed.stderr_has(&format!("{}: row 3", path_str(&csv)));
    failed.stderr_has("ai_trainnig");
    assert!(
        !failed.stderr.contains("row 1:") && !failed.stderr.contains("row 2:"),
        "only row 3 is invalid: {failed:#?}"
    );
    assert_eq!(scratch.head(), head);

    // Nothing of the valid file was imported either.
    let status = scratch.status("200", "ai_personalization", Some("US"), None);
    assert_eq!(status["explicit_choices"], 0);
}

// Proves --skip-invalid imports exactly the valid rows, in file order (files in the order
// given), with their original times and sources, as positions after the old head.
#[test]
fn import_skip_invalid_keeps_file_order_and_original_times() {
    let scratch = Scratch::initialized();
    scratch.choose("1", "ai_training", false);
    let (head_position, _) = scratch.head();
    let csv = scratch.write("history.csv", CSV_WITH_BAD_ROW_3);
    let jsonl = scratch.write("history.jsonl", JSONL_VALID);

    let imported = scratch
        .run(&[
            "import",
            &path_str(&csv),
            &path_str(&jsonl),
            "--skip-invalid",
        ])
        .success();
    imported.stderr_has(&format!("{}: row 3", path_str(&csv)));
    let summary = imported.json();
    let expected = expected_imported();
    assert_eq!(summary["imported"], expected.len());
    assert_eq!(summary["skipped_invalid"], 1);
    assert_eq!(summary["first_position"], head_position + 1);
    assert_eq!(
        summary["last_position"],
        head_position + expected.len() as u64
    );

    let (new_head, _) = scratch.head();
    assert_eq!(new_head, head_position + expected.len() as u64);
    let lines = scratch.exported_lines();
    let got: Vec<(u64, String, bool, i64, String)> = lines[head_position as usize..]
        .iter()
        .map(|line| {
            let event = &line["event"];
            assert_eq!(event["kind"], "choice");
            (
                event["member"].as_u64().unwrap(),
                event["purpose"].as_str().unwrap().to_string(),
                event["allowed"].as_bool().unwrap(),
                event["at_us"].as_i64().unwrap(),
                event["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(u64, String, bool, i64, String)> = expected
        .into_iter()
        .map(|(member, purpose, allowed, at, source)| {
            (member, purpose.to_string(), allowed, at, source.to_string())
        })
        .collect();
    assert_eq!(got, expected);
    // The actor says where the row came from.
    assert_eq!(
        lines[head_position as usize]["event"]["actor"],
        "import:history.csv"
    );
    // The skipped row's member has no choice.
    let status = scratch.status("102", "ai_training", Some("US"), None);
    assert_eq!(status["explicit_choices"], 0);
}

// Proves effective consent at cutoffs between imported events: inclusive at a choice's
// time, the latest time wins (not the latest position), and for equal times the later
// row of the file wins.
#[test]
fn import_status_at_cutoffs_between_imported_events() {
    let scratch = Scratch::initialized();
    let (base, _) = scratch.head();
    let csv = scratch.write("history.csv", CSV_WITH_BAD_ROW_3);
    let jsonl = scratch.write("history.jsonl", JSONL_VALID);
    scratch
        .run(&[
            "import",
            &path_str(&csv),
            &path_str(&jsonl),
            "--skip-invalid",
        ])
        .success();
    // Positions of the imported rows, by index in expected_imported().
    let position = |index: u64| base + 1 + index;

    let check = |member: &str,
                 purpose: &str,
                 at: &str,
                 allowed: bool,
                 reason: &str,
                 at_position: Option<u64>| {
        let status = scratch.status(member, purpose, Some("US"), Some(at));
        assert_eq!(
            status["allowed"], allowed,
            "member {member} at {at}: {status}"
        );
        assert_eq!(
            status["reason"], reason,
            "member {member} at {at}: {status}"
        );
        if let Some(expected) = at_position {
            assert_eq!(
                status["detail"]["position"], expected,
                "member {member} at {at}: {status}"
            );
        }
    };
    check(
        "100",
        "ai_training",
        "2023-10-20T09:59:59.999999Z",
        false,
        "before_deadline",
        None,
    );
    check(
        "100",
        "ai_training",
        "2023-10-20T10:00:00Z",
        false,
        "explicit_choice",
        Some(position(0)),
    );
    check(
        "100",
        "ai_training",
        "2023-11-04T23:59:59.999999Z",
        false,
        "explicit_choice",
        Some(position(0)),
    );
    check(
        "100",
        "ai_training",
        "2023-11-05T00:00:00Z",
        true,
        "explicit_choice",
        Some(position(2)),
    );
    check(
        "103",
        "ai_training",
        "2023-10-25T11:59:59Z",
        false,
        "before_deadline",
        None,
    );
    check(
        "103",
        "ai_training",
        "2023-10-25T12:00:00Z",
        false,
        "explicit_choice",
        Some(position(4)),
    );
    check(
        "103",
        "ai_training",
        "2024-01-01T00:00:00Z",
        false,
        "explicit_choice",
        Some(position(4)),
    );
    check(
        "200",
        "ai_personalization",
        "2023-10-26T23:59:59Z",
        false,
        "before_deadline",
        None,
    );
    check(
        "200",
        "ai_personalization",
        "2023-10-27T12:00:00Z",
        false,
        "explicit_choice",
        Some(position(8)),
    );
    check(
        "200",
        "ai_personalization",
        "2023-10-28T08:00:00Z",
        true,
        "explicit_choice",
        Some(position(7)),
    );
    check(
        MEMBER_MAX,
        "ai_training",
        "2023-10-18T00:00:00Z",
        true,
        "explicit_choice",
        Some(position(6)),
    );
    check(
        MEMBER_MAX,
        "ai_training",
        "2023-10-17T23:59:59Z",
        false,
        "before_deadline",
        None,
    );

    // An imported opt-in counts in an opt-in jurisdiction from its time on.
    let de = scratch.status(
        "101",
        "ai_training",
        Some("DE"),
        Some("2023-10-21T00:00:00Z"),
    );
    assert_eq!(de["allowed"], true);
    let de = scratch.status(
        "101",
        "ai_training",
        Some("DE"),
        Some("2023-10-20T23:59:59Z"),
    );
    assert_eq!(de["allowed"], false);
    assert_eq!(de["reason"], "jurisdiction_default");
}

#[test]
fn import_format_flag_overrides_the_extension() {
    let scratch = Scratch::initialized();
    let (head, _) = scratch.head();
    let text = scratch.write(
        "rows.txt",
        "member_id,purpose,allowed,at\n7,ai_training,no,2023-10-20T00:00:00Z\n",
    );
    scratch.run(&["import", &path_str(&text)]).exits(2);
    assert_eq!(scratch.head().0, head);
    let summary = scratch
        .run(&["import", &path_str(&text), "--format", "csv"])
        .success()
        .json();
    assert_eq!(summary["imported"], 1);
    let status = scratch.status("7", "ai_training", Some("US"), Some("2023-11-01T00:00:00Z"));
    assert_eq!(status["allowed"], false);
    assert_eq!(status["reason"], "explicit_choice");
}

#[test]
fn import_of_a_missing_file_is_bad_input() {
    let scratch = Scratch::initialized();
    let head = scratch.head();
    scratch
        .run(&["import", &path_str(&scratch.file("absent.csv"))])
        .exits(2);
    assert_eq!(scratch.head(), head);
}

// ---------------------------------------------------------------------------------------
// export, checkpoint, offline verification
// ---------------------------------------------------------------------------------------

// Proves the export holds every event once, in order, ending at the head, and that an
// auditor's offline check with the signed checkpoint (and the ledger's key) passes; a
// checkpoint checked against another key fails with exit 1.
#[test]
fn export_is_complete_and_verifies_offline_with_checkpoint() {
    let scratch = Scratch::initialized();
    for member in 1..=5u64 {
        scratch.choose(&member.to_string(), "ai_training", member % 2 == 0);
    }
    let jsonl = scratch.write("history.jsonl", JSONL_VALID);
    scratch.run(&["import", &path_str(&jsonl)]).success();
    let (head_position, head_hash) = scratch.head();

    let checkpoint = scratch.run(&["ledger", "checkpoint"]).success().json();
    assert_eq!(checkpoint["position"], head_position);
    assert_eq!(checkpoint["hash"], head_hash.as_str());
    let checkpoint_file = scratch.write("checkpoint.json", &checkpoint.to_string());

    let export = scratch.file("ledger.jsonl");
    let exported = scratch
        .run(&["ledger", "export", &path_str(&export)])
        .success()
        .json();
    assert_eq!(exported["events"], head_position);
    let lines = read_export(&export);
    assert_eq!(lines.len() as u64, head_position);
    let mut previous_hash: Option<String> = None;
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["position"], index as u64 + 1);
        assert_eq!(line["event"]["position"], index as u64 + 1);
        if let Some(previous) = &previous_hash {
            assert_eq!(line["prev_hash"], previous.as_str());
        }
        previous_hash = Some(line["hash"].as_str().unwrap().to_string());
    }
    assert_eq!(previous_hash.as_deref(), Some(head_hash.as_str()));
    assert!(
        !scratch.file(".ledger.jsonl.partial").exists(),
        "the temporary export file was left behind"
    );

    // Offline: no data directory involved.
    let verified = run_args(&[
        "ledger",
        "verify",
        "--export",
        &path_str(&export),
        "--checkpoint",
        &path_str(&checkpoint_file),
    ])
    .success()
    .json();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["events"], head_position);
    assert_eq!(verified["checkpoint"], head_position);
    let key = path_str(&scratch.public_key_file());
    run_args(&[
        "ledger",
        "verify",
        "--export",
        &path_str(&export),
        "--checkpoint",
        &path_str(&checkpoint_file),
        "--key",
        &key,
    ])
    .success();
    let other = Scratch::initialized();
    run_args(&[
        "ledger",
        "verify",
        "--export",
        &path_str(&export),
        "--checkpoint",
        &path_str(&checkpoint_file),
        "--key",
        &path_str(&other.public_key_file()),
    ])
    .exits(1);

    // Later appends keep the old checkpoint valid: it is a prefix of the new export.
    scratch.choose("6", "ai_training", false);
    let newer = scratch.export("newer.jsonl");
    run_args(&[
        "ledger",
        "verify",
        "--export",
        &path_str(&newer),
        "--checkpoint",
        &path_str(&checkpoint_file),
    ])
    .success();
}

#[test]
fn checkpoint_of_a_forged_signature_fails() {
    let scratch = Scratch::initialized();
    scratch.choose("1", "ai_training", false);
    let mut checkpoint = scratch.run(&["ledger", "checkpoint"]).success().json();
    let export = scratch.export("ledger.jsonl");
    checkpoint["position"] = Value::from(1);
    let forged = scratch.write("forged.json", &checkpoint.to_string());
    run_args(&[
        "ledger",
        "verify",
        "--export",
        &path_str(&export),
        "--checkpoint",
        &path_str(&forged),
    ])
    .exits(1);
}
