//! An auditor verifies a ledger export without optout: `docs/verify_ledger.py` (Python
//! standard library only; `docs/ledger-format.md` is its specification) must accept a real
//! export of the SQLite ledger, reject every tampered copy at the first bad position, and
//! agree with optout's own verifier (`optout_store::verify_export`) on each case. The
//! worked example in the format document is checked against the real code here too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use optout_core::canonical::{self, CanonicalObject};
use optout_core::chain::chain_hash;
use optout_core::policy::DEFAULT_POLICY_TOML;
use optout_core::{
    Actor, ChainHead, Checkpoint, ChoiceRecord, Clock, Event, EventHash, Jurisdiction,
    LedgerPosition, LedgerSigner, ManualClock, MemberId, PolicyDocument, PolicyRecord,
    PolicyVersion, Purpose, Receipt, Source, Timestamp,
};
use optout_sqlite::SqliteLedger;
use optout_store::conformance::{choice, keyed_choice};
use optout_store::{export_ledger, verify_export, ChoiceTime, ExportError, Ledger, NewEvent};

/// 2024-01-01T00:00:00Z.
const START: Timestamp = Timestamp::from_micros(1_704_067_200_000_000);

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// What `verify_ledger.py` printed.
#[derive(Debug, PartialEq, Eq)]
enum Python {
    Ok { position: u64, hash: String },
    Fail { position: u64, reason: String },
}

fn run_python(dir: &Path, export: &str, checkpoint: Option<&Checkpoint>) -> Python {
    let export_path = dir.join("export.jsonl");
    std::fs::write(&export_path, export).unwrap();
    let mut command = Command::new("python3");
    command
        .arg(docs().join("verify_ledger.py"))
        .arg(&export_path);
    if let Some(checkpoint) = checkpoint {
        let path = dir.join("checkpoint.json");
        std::fs::write(&path, checkpoint_json(checkpoint)).unwrap();
        command.arg("--checkpoint").arg(&path);
    }
    let output = command.output().unwrap_or_else(|error| {
        panic!(
            "cannot run python3, which this test (and CI) requires to check the auditor's \
             script docs/verify_ledger.py: {error}"
        )
    });
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let unexpected = || -> ! {
        panic!(
            "verify_ledger.py: exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
            output.status.code()
        )
    };
    if !stderr.is_empty() || stdout.lines().count() != 1 {
        unexpected();
    }
    let line = stdout.trim_end();
    match output.status.code() {
        Some(0) => {
            let Some(rest) = line.strip_prefix("ok: ") else {
                unexpected()
            };
            let (events, rest) = rest.split_once(" events, head position ").unwrap();
            let (position, hash) = rest.split_once(" hash ").unwrap();
            assert_eq!(events, position, "{line}");
            Python::Ok {
                position: position.parse().unwrap(),
                hash: hash.to_string(),
            }
        }
        Some(1) => {
            let Some(rest) = line.strip_prefix("FAIL at position ") else {
                unexpected()
            };
            let (position, reason) = rest.split_once(": ").unwrap();
            Python::Fail {
                position: position.parse().unwrap(),
                reason: reason.to_string(),
            }
        }
        _ => unexpected(),
    }
}

/// The checkpoint as a JSON document (the fields of `Checkpoint`, `at` in RFC 3339).
fn checkpoint_json(checkpoint: &Checkpoint) -> String {
    format!(
        "{{\"position\":{},\"hash\":\"{}\",\"at\":\"{}\",\"public_key\":\"{}\",\"signature\":\"{}\"}}\n",
        checkpoint.position,
        checkpoint.hash,
        checkpoint.at.to_rfc3339(),
        checkpoint.public_key,
        checkpoint.signature
    )
}

/// The receipt as a JSON document (the fields of `Receipt`, times in RFC 3339).
fn receipt_json(receipt: &Receipt) -> String {
    format!(
        "{{\"position\":{},\"hash\":\"{}\",\"at\":\"{}\",\"recorded_at\":\"{}\",\"member\":{},\"purpose\":\"{}\",\"allowed\":{},\"source\":\"{}\",\"public_key\":\"{}\",\"signature\":\"{}\"}}",
        receipt.position,
        receipt.hash,
        receipt.at.to_rfc3339(),
        receipt.recorded_at.to_rfc3339(),
        receipt.member.get(),
        receipt.purpose,
        receipt.allowed,
        receipt.source,
        receipt.public_key,
        receipt.signature
    )
}

/// Runs both verifiers; `expected` is the head, or the first bad position. Returns the
/// Python script's reason for a failure (empty when it passed).
fn check(
    dir: &Path,
    case: &str,
    export: &str,
    checkpoint: Option<&Checkpoint>,
    expected: Result<ChainHead, u64>,
) -> String {
    let python = run_python(dir, export, checkpoint);
    let rust = verify_export(&mut export.as_bytes(), checkpoint, None, |_| {});
    match expected {
        Ok(head) => {
            assert_eq!(
                python,
                Python::Ok {
                    position: head.position.get(),
                    hash: head.hash.to_hex()
                },
                "{case}: verify_ledger.py"
            );
            match rust {
                // An empty export has no head; the script prints position 0, hash zero.
                Ok(rust_head) => assert_eq!(
                    rust_head.unwrap_or(ChainHead {
                        position: LedgerPosition(0),
                        hash: EventHash::GENESIS,
                    }),
                    head,
                    "{case}: verify_export"
                ),
                Err(error) => panic!("{case}: verify_export fails: {error}"),
            }
            String::new()
        }
        Err(bad) => {
            let Python::Fail { position, reason } = python else {
                panic!("{case}: verify_ledger.py passes: {python:?}")
            };
            assert_eq!(position, bad, "{case}: verify_ledger.py says {reason}");
            let error = match rust {
                Ok(head) => panic!("{case}: verify_export passes with head {head:?}"),
                Err(error) => error,
            };
            // A checkpointed position missing from the export names no position in Rust.
            let rust_position = match &error {
                ExportError::Checkpoint(problem) if problem.contains("ends before") => {
                    checkpoint.map(|checkpoint| checkpoint.position)
                }
                _ => error.position(),
            };
            assert_eq!(
                rust_position,
                Some(LedgerPosition(bad)),
                "{case}: verify_export says {error}"
            );
            reason
        }
    }
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

fn event_of(line: &str) -> Event {
    let body = line.strip_prefix("{\"event\":").unwrap();
    let end = body.rfind(",\"hash\":\"").unwrap();
    canonical::decode(&body.as_bytes()[..end]).unwrap()
}

fn hash_of(line: &str) -> EventHash {
    let start = line.rfind(",\"hash\":\"").unwrap() + ",\"hash\":\"".len();
    line[start..start + 64].parse().unwrap()
}

/// The export line of `event` after `prev`, built from the format document's rules.
fn line_of(event: &Event, prev: EventHash) -> (String, EventHash) {
    let bytes = canonical::encode(event);
    let hash = chain_hash(&prev, &bytes);
    let line = format!(
        "{{\"event\":{},\"hash\":\"{hash}\",\"position\":{},\"prev_hash\":\"{prev}\"}}",
        String::from_utf8(bytes).unwrap(),
        event.position
    );
    (line, hash)
}

/// A forger's copy: the event at `position` is edited and every hash from there on is
/// recomputed, so the chain links again.
fn forge(lines: &[String], position: usize, edit: impl FnOnce(&mut Event)) -> Vec<String> {
    let mut forged = lines.to_vec();
    let mut prev = if position == 1 {
        EventHash::GENESIS
    } else {
        hash_of(&lines[position - 2])
    };
    let mut edit = Some(edit);
    for index in position - 1..lines.len() {
        let mut event = event_of(&lines[index]);
        if let Some(edit) = edit.take() {
            edit(&mut event);
        }
        let (line, hash) = line_of(&event, prev);
        forged[index] = line;
        prev = hash;
    }
    forged
}

/// A policy version whose document holds text that needs care when encoded: CRLF line
/// ends, a tab, quotes, a backslash, non-ASCII, an emoji and U+2028 (in a TOML comment).
fn policy_with_awkward_text() -> NewEvent {
    let document = format!(
        "# Politique d'exemple — é, tab\there, \"quotes\", back\\slash, 😀, \u{2028}.\r\n{}",
        DEFAULT_POLICY_TOML.replace('\n', "\r\n")
    );
    let parsed = PolicyDocument::parse(&document, "test policy").unwrap();
    NewEvent::Policy(PolicyRecord {
        version: parsed.version,
        effective_from: parsed.effective_from,
        document,
    })
}

/// A choice whose free-text fields carry non-ASCII, quotes, backslashes and (in the notice
/// version, which is not restricted) every kind of control character.
fn choice_with_awkward_text() -> NewEvent {
    NewEvent::Choice {
        choice: ChoiceRecord {
            member: MemberId(0),
            purpose: Purpose::new("ai_personalization").unwrap(),
            allowed: false,
            at: Timestamp::default(),
            source: Source::Admin,
            actor: Actor::new("admin:zoë «ops» \"night\" \\ shift").unwrap(),
            policy_version: Some(PolicyVersion(1)),
            // Control characters are refused in notice fields; the policy document
            // (free text) carries them instead.
            notice_version: Some("é \"\\ \u{a0}\u{2028}😀/".into()),
            notice_language: Some("de-CH".into()),
            jurisdiction: Some(Jurisdiction::parse("ch").unwrap()),
            idempotency_key: None,
        },
        time: ChoiceTime::Now,
    }
}

/// A choice without any optional field.
fn bare_choice(member: u64) -> NewEvent {
    NewEvent::Choice {
        choice: ChoiceRecord {
            member: MemberId(member),
            purpose: Purpose::new("ai_training").unwrap(),
            allowed: true,
            at: Timestamp::default(),
            source: Source::Api,
            actor: Actor::new("service:batch").unwrap(),
            policy_version: None,
            notice_version: None,
            notice_language: None,
            jurisdiction: None,
            idempotency_key: None,
        },
        time: ChoiceTime::Now,
    }
}

const RETRY_KEY: &str = "retry-é-キー-😀 \"q\" \\ b";

/// Builds an 8-event SQLite ledger and exports it.
fn exported_ledger(dir: &Path) -> (String, ChainHead, Timestamp) {
    let clock = Arc::new(ManualClock::new(START));
    let ledger = SqliteLedger::open(&dir.join("ledger.sqlite"), clock.clone()).unwrap();
    ledger.append(vec![policy_with_awkward_text()]).unwrap(); // 1
    clock.advance_micros(1_000_000);
    // 2 and 3 share one recorded_at.
    ledger
        .append(vec![choice(1, false, None), choice(u64::MAX, false, None)])
        .unwrap();
    clock.advance_micros(250_000);
    ledger
        .append(vec![keyed_choice((1 << 53) + 1, true, RETRY_KEY)])
        .unwrap(); // 4
    clock.advance_micros(1);
    ledger.append(vec![choice_with_awkward_text()]).unwrap(); // 5
    clock.advance_micros(3_000_000);
    ledger
        .append(vec![choice(
            7,
            true,
            Some(Timestamp::from_micros(-1_000_001)),
        )])
        .unwrap(); // 6: an import from before 1970
    clock.advance_micros(2);
    ledger.append(vec![bare_choice(u64::MAX - 1)]).unwrap(); // 7
    clock.advance_micros(500_000);
    ledger.append(vec![choice(u64::MAX, true, None)]).unwrap(); // 8
    let replay = ledger
        .append(vec![keyed_choice((1 << 53) + 1, true, RETRY_KEY)])
        .unwrap();
    assert!(replay[0].replayed);
    let mut out = Vec::new();
    let head = export_ledger(&ledger, &mut out, |_| {}).unwrap().unwrap();
    ledger.close();
    assert_eq!(head.position, LedgerPosition(8));
    (String::from_utf8(out).unwrap(), head, clock.now())
}

#[test]
fn python_script_and_rust_verifier_agree_on_real_and_tampered_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (export, head, now) = exported_ledger(dir.path());
    let lines: Vec<String> = export.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 8);

    // The export follows the documented line format byte for byte, and the awkward text
    // is escaped as documented (so Python's json.dumps must reproduce it exactly).
    let mut prev = EventHash::GENESIS;
    for line in &lines {
        let (rebuilt, hash) = line_of(&event_of(line), prev);
        assert_eq!(&rebuilt, line);
        prev = hash;
    }
    assert_eq!(prev, head.hash);
    for escaped in [
        "\\r\\n# The default policy",
        "tab\\there, \\\"quotes\\\", back\\\\slash, 😀, \u{2028}.",
        "\"member\":18446744073709551615",
        "\"member\":9007199254740993",
        "\"idempotency_key\":\"retry-é-キー-😀 \\\"q\\\" \\\\ b\"",
        "\"notice_version\":\"é \\\"\\\\ \u{a0}\u{2028}😀/\"",
        "\"actor\":\"admin:zoë «ops» \\\"night\\\" \\\\ shift\"",
        "\"jurisdiction\":\"CH\"",
        "\"at_us\":-1000001",
    ] {
        assert!(export.contains(escaped), "the export lacks {escaped:?}");
    }
    assert!(!lines[6].contains("notice") && !lines[6].contains("policy_version"));

    let signer = LedgerSigner::from_seed([3; 32]);
    let at_head = Checkpoint::sign(head.position, head.hash, now, &signer);
    let at_two = Checkpoint::sign(LedgerPosition(2), hash_of(&lines[1]), now, &signer);
    let d = dir.path();

    check(d, "the export", &export, None, Ok(head));
    check(d, "checkpoint at head", &export, Some(&at_head), Ok(head));
    check(d, "checkpoint at 2", &export, Some(&at_two), Ok(head));
    let crlf = export.replace('\n', "\r\n") + "\r\n";
    check(d, "CRLF line ends, blank last line", &crlf, None, Ok(head));

    // Edits that keep the old hashes break the chain at the edited position.
    let mut flipped = lines.clone();
    assert!(flipped[2].contains("\"allowed\":false,"));
    flipped[2] = flipped[2].replace("\"allowed\":false,", "\"allowed\":true,");
    check(d, "allowed flipped", &joined(&flipped), None, Err(3));

    let mut deleted = lines.clone();
    deleted.remove(3);
    check(d, "line 4 deleted", &joined(&deleted), None, Err(4));

    let mut swapped = lines.clone();
    swapped.swap(4, 5);
    check(d, "lines 5 and 6 swapped", &joined(&swapped), None, Err(5));

    let mut duplicated = lines.clone();
    duplicated.insert(4, lines[3].clone());
    check(d, "line 4 twice", &joined(&duplicated), None, Err(5));

    let mut retimed = lines.clone();
    let recorded_at = event_of(&lines[5]).recorded_at.as_micros();
    retimed[5] = lines[5].replace(
        &format!("\"recorded_at_us\":{recorded_at}"),
        &format!("\"recorded_at_us\":{}", recorded_at + 1),
    );
    assert_ne!(retimed[5], lines[5]);
    check(d, "recorded_at changed", &joined(&retimed), None, Err(6));

    let mut spaced = lines.clone();
    spaced[1] = lines[1].replacen("\"allowed\":", "\"allowed\": ", 1);
    check(d, "non-canonical event", &joined(&spaced), None, Err(2));

    // The line around the event must be canonical too: both verifiers refuse an upper-case
    // hash or reordered keys, even though they denote the same values.
    let mut upper = lines.clone();
    let hash = hash_of(&lines[2]).to_hex();
    upper[2] = lines[2].replace(&hash, &hash.to_uppercase());
    assert_ne!(upper[2], lines[2]);
    check(d, "upper-case hash", &joined(&upper), None, Err(3));
    let mut reordered = lines.clone();
    let (event_part, rest) = lines[3].split_at(lines[3].rfind(",\"hash\":").unwrap());
    reordered[3] = format!("{{{},{}}}", &rest[1..rest.len() - 1], &event_part[1..]);
    assert_ne!(reordered[3], lines[3]);
    check(d, "reordered line keys", &joined(&reordered), None, Err(4));

    // A forger who recomputes the hashes: the order of recorded_at still catches a time
    // moved back, and a checkpoint catches any rewrite before its position.
    let backwards = forge(&lines, 7, |event| {
        event.recorded_at = event.recorded_at.saturating_add_micros(-3)
    });
    let reason = check(
        d,
        "recorded_at moved back",
        &joined(&backwards),
        None,
        Err(7),
    );
    assert!(reason.contains("recorded_at"), "{reason}");

    let rewritten = forge(&lines, 3, |event| {
        if let optout_core::EventBody::Choice(choice) = &mut event.body {
            choice.allowed = true;
        }
    });
    assert_ne!(rewritten[2], lines[2]);
    let forged_head = ChainHead {
        position: head.position,
        hash: hash_of(&rewritten[7]),
    };
    let rewritten = joined(&rewritten);
    check(
        d,
        "rewritten, no checkpoint",
        &rewritten,
        None,
        Ok(forged_head),
    );
    check(
        d,
        "rewritten after checkpoint",
        &rewritten,
        Some(&at_two),
        Ok(forged_head),
    );
    let reason = check(d, "rewritten", &rewritten, Some(&at_head), Err(8));
    assert!(reason.contains("checkpoint"), "{reason}");

    let truncated = joined(&lines[..6]);
    let head_at_six = ChainHead {
        position: LedgerPosition(6),
        hash: hash_of(&lines[5]),
    };
    check(
        d,
        "truncated, no checkpoint",
        &truncated,
        None,
        Ok(head_at_six),
    );
    check(d, "truncated", &truncated, Some(&at_head), Err(8));

    check(
        d,
        "empty",
        "",
        None,
        Ok(ChainHead {
            position: LedgerPosition(0),
            hash: EventHash::GENESIS,
        }),
    );
}

/// The bytes a receipt or checkpoint signature covers, rebuilt from the format document.
fn signed_message(domain: &str, fields: &CanonicalObject) -> String {
    format!(
        "{domain}\n{}",
        String::from_utf8(fields.to_bytes()).unwrap()
    )
}

#[test]
fn worked_example_in_the_format_document_is_real() {
    let dir = tempfile::tempdir().unwrap();
    // 2025-06-30T09:00:00Z.
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
        1_751_274_000_000_000,
    )));
    let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock.clone()).unwrap();
    let mut first = keyed_choice(u64::MAX, false, "7f3a9c2e");
    if let NewEvent::Choice { choice, .. } = &mut first {
        choice.jurisdiction = Some(Jurisdiction::parse("DE").unwrap());
        choice.notice_version = Some("ai_training-2023-10-16".into());
    }
    let appended = ledger.append(vec![first]).unwrap();
    clock.advance_micros(1_500_000);
    let mut second = bare_choice(42);
    if let NewEvent::Choice { choice, .. } = &mut second {
        choice.source = Source::Mobile;
        choice.actor = Actor::member();
    }
    ledger.append(vec![second]).unwrap();
    let mut out = Vec::new();
    let head = export_ledger(&ledger, &mut out, |_| {}).unwrap().unwrap();
    ledger.close();
    let export = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = export.lines().collect();

    let signer = LedgerSigner::from_seed([7; 32]);
    let receipt = Receipt::for_event(&appended[0].event, &signer).unwrap();
    let mut receipt_fields = CanonicalObject::new();
    receipt_fields
        .unsigned("position", receipt.position.get())
        .text("hash", receipt.hash.to_hex())
        .signed("at_us", receipt.at.as_micros())
        .signed("recorded_at_us", receipt.recorded_at.as_micros())
        .unsigned("member", receipt.member.get())
        .text("purpose", receipt.purpose.as_str())
        .boolean("allowed", receipt.allowed)
        .text("source", receipt.source.as_str())
        .text("public_key", receipt.public_key.to_hex());
    let receipt_message = signed_message("optout-receipt-v1", &receipt_fields);
    let checkpoint = Checkpoint::sign(
        head.position,
        head.hash,
        Timestamp::from_micros(1_751_274_060_000_000),
        &signer,
    );
    let mut checkpoint_fields = CanonicalObject::new();
    checkpoint_fields
        .unsigned("position", checkpoint.position.get())
        .text("hash", checkpoint.hash.to_hex())
        .signed("at_us", checkpoint.at.as_micros())
        .text("public_key", checkpoint.public_key.to_hex());
    let checkpoint_message = signed_message("optout-checkpoint-v1", &checkpoint_fields);
    // The documented messages are exactly what the signatures cover.
    let (receipt_domain, receipt_body) = receipt_message.split_once('\n').unwrap();
    receipt
        .public_key
        .verify(receipt_domain, receipt_body.as_bytes(), &receipt.signature)
        .unwrap();
    let (checkpoint_domain, checkpoint_body) = checkpoint_message.split_once('\n').unwrap();
    checkpoint
        .public_key
        .verify(
            checkpoint_domain,
            checkpoint_body.as_bytes(),
            &checkpoint.signature,
        )
        .unwrap();

    let facts = [
        lines[0].to_string(),
        lines[1].to_string(),
        String::from_utf8(canonical::encode(&event_of(lines[0]))).unwrap(),
        String::from_utf8(canonical::encode(&event_of(lines[1]))).unwrap(),
        hash_of(lines[0]).to_hex(),
        head.hash.to_hex(),
        format!(
            "({} bytes of UTF-8)",
            canonical::encode(&event_of(lines[0])).len()
        ),
        receipt_json(&receipt),
        receipt_message.clone(),
        checkpoint_json(&checkpoint).trim_end().to_string(),
        checkpoint_message.clone(),
    ];
    let document = std::fs::read_to_string(docs().join("ledger-format.md")).unwrap_or_default();
    let missing: Vec<&String> = facts
        .iter()
        .filter(|fact| !document.contains(fact.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ledger-format.md must show these, exactly as the code makes them:\n{}",
        missing
            .iter()
            .map(|fact| fact.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    check(
        dir.path(),
        "worked example",
        &export,
        Some(&checkpoint),
        Ok(head),
    );
}

#[test]
fn python_json_dumps_reproduces_the_canonical_encoding_of_every_character() {
    let every_character: String = (0..=0x10_FFFF_u32).filter_map(char::from_u32).collect();
    let mut object = CanonicalObject::new();
    object
        .text("text", every_character)
        .unsigned("u64_max", u64::MAX)
        .unsigned("zero", 0)
        .signed("i64_min", i64::MIN)
        .signed("i64_max", i64::MAX)
        .signed("minus_one", -1)
        .boolean("Z", true)
        .boolean("é", false)
        .text("😀", "")
        .text("_", "x");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canonical.json");
    std::fs::write(&path, object.to_bytes()).unwrap();
    let output = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\n\
             data = open(sys.argv[1], 'rb').read()\n\
             again = json.dumps(json.loads(data.decode('utf-8')), sort_keys=True,\n\
             \x20   separators=(',', ':'), ensure_ascii=False).encode('utf-8')\n\
             if again != data:\n\
             \x20   at = next(i for i, (a, b) in enumerate(zip(again, data)) if a != b)\n\
             \x20   sys.exit(f'differs at byte {at}: {again[max(at - 20, 0):at + 20]!r} vs {data[max(at - 20, 0):at + 20]!r}')\n",
        )
        .arg(&path)
        .output()
        .unwrap_or_else(|error| panic!("cannot run python3, which this test requires: {error}"));
    assert!(
        output.status.success(),
        "json.dumps does not reproduce the canonical bytes: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
