//! Crash safety of acknowledged choices: `optout choose --repeat N --concurrency 8` prints
//! each receipt once its choice is durable; the test kills it with SIGKILL at a random
//! moment, several times on the same data directory, and after each kill checks that every
//! printed receipt is in the ledger with the same position, hash, member and decision, and
//! that the ledger verifies.
//!
//! The moments are drawn from a seeded splitmix64 stream; the seed is printed, and
//! `OPTOUT_CRASH_SEED=<seed>` replays the same choice of moments.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{crash_seed, optout, path_str, run_args, Scratch};
use optout_core::splitmix::SplitMix64;
use serde_json::Value;

const ROUNDS: u64 = 5;
const FIRST_MEMBER: u64 = 1000;
const DELAY_MS_MIN: u64 = 50;
const DELAY_MS_MAX: u64 = 500;
const LINES_MAX: u64 = 400;
/// Receipts per round whose member's status is also checked through `optout status`.
const STATUS_SAMPLES: usize = 3;

/// When to kill the appender.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after the first receipt appeared.
    DelayAfterFirstReceipt(Duration),
    /// As soon as at least this many receipt lines were printed.
    Receipts(usize),
}

/// The appender and the thread collecting its stdout.
struct Appender {
    child: Child,
    lines: Arc<AtomicUsize>,
    reader: JoinHandle<Vec<u8>>,
}

fn start_appender(scratch: &Scratch) -> Appender {
    let mut child = optout()
        .args([
            "--quiet",
            "--data-dir",
            &path_str(&scratch.data),
            "choose",
            &FIRST_MEMBER.to_string(),
            "ai_training",
            "deny",
            "--repeat",
            "1000000",
            "--concurrency",
            "8",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start optout choose --repeat");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let lines = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let new_lines = chunk[..read].iter().filter(|&&b| b == b'\n').count();
                    bytes.extend_from_slice(&chunk[..read]);
                    counter.fetch_add(new_lines, Ordering::SeqCst);
                }
            }
        }
        bytes
    });
    Appender {
        child,
        lines,
        reader,
    }
}

/// Longest wait for the appender's output before the test fails instead of hanging.
const WAIT_SECONDS_MAX: u64 = 120;

/// Waits until `done` holds, failing if the appender exits on its own first or stalls.
fn wait_until(appender: &mut Appender, mut done: impl FnMut(usize) -> bool) {
    let started = std::time::Instant::now();
    loop {
        if done(appender.lines.load(Ordering::SeqCst)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(WAIT_SECONDS_MAX),
            "the appender printed {} receipts and then stalled for {WAIT_SECONDS_MAX} s",
            appender.lines.load(Ordering::SeqCst)
        );
        if let Some(status) = appender.child.try_wait().expect("poll the appender") {
            panic!("the appender exited by itself with {status} before it was killed");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the appender until `kill_at`, kills it with SIGKILL, and returns the complete
/// receipt lines it printed (a trailing partial line is dropped).
fn run_and_kill(scratch: &Scratch, kill_at: KillAt) -> Vec<Value> {
    let mut appender = start_appender(scratch);
    match kill_at {
        KillAt::DelayAfterFirstReceipt(delay) => {
            wait_until(&mut appender, |lines| lines >= 1);
            std::thread::sleep(delay);
        }
        KillAt::Receipts(count) => wait_until(&mut appender, |lines| lines >= count),
    }
    // On Unix, Child::kill sends SIGKILL: no destructor, no flush, no clean shutdown.
    appender.child.kill().expect("SIGKILL the appender");
    appender.child.wait().expect("reap the appender");
    let bytes = appender.reader.join().expect("stdout reader");
    complete_lines(&bytes)
        .map(|line| {
            serde_json::from_slice(line).unwrap_or_else(|error| {
                panic!(
                    "a complete receipt line is not JSON ({error}): {:?}",
                    String::from_utf8_lossy(line)
                )
            })
        })
        .collect()
}

/// The lines that end with a newline; what follows the last newline was cut off.
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |last| last + 1);
    bytes[..complete]
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
}

// Proves no acknowledged choice is lost or altered by SIGKILL: over several kill/restart
// rounds on one data directory, every receipt printed before the kill is in the exported
// ledger at its position with its hash, member and decision, `ledger verify` passes, and
// the ledger holds at least as many choices as receipts were printed.
#[test]
fn every_printed_receipt_survives_sigkill() {
    let seed = crash_seed();
    println!("crash test seed: {seed} (rerun with OPTOUT_CRASH_SEED={seed})");
    let mut random = SplitMix64(seed);
    let scratch = Scratch::initialized();
    let (policy_events, _) = scratch.head();
    let key_file = path_str(&scratch.public_key_file());

    // Every receipt seen so far, by position.
    let mut receipts: BTreeMap<u64, Value> = BTreeMap::new();
    let mut previous_head = policy_events;
    for round in 0..ROUNDS {
        let kill_at = if round % 2 == 0 {
            KillAt::DelayAfterFirstReceipt(Duration::from_millis(
                random.between(DELAY_MS_MIN, DELAY_MS_MAX),
            ))
        } else {
            KillAt::Receipts(random.between(1, LINES_MAX) as usize)
        };
        let printed = run_and_kill(&scratch, kill_at);
        println!(
            "round {round}: killed at {kill_at:?} after {} complete receipts",
            printed.len()
        );
        assert!(!printed.is_empty(), "round {round}: no receipt was printed");

        // The ledger verifies after the crash.
        let verified = scratch.run(&["ledger", "verify"]).success().json();
        assert_eq!(verified["verified"], true);
        let head = verified["events"].as_u64().unwrap();

        let mut members_this_round = BTreeSet::new();
        for receipt in &printed {
            let position = receipt["position"].as_u64().expect("receipt position");
            let member = receipt["member"].as_u64().expect("receipt member");
            assert!(
                position > previous_head && position <= head,
                "round {round}: receipt position {position} outside ({previous_head}, {head}]"
            );
            assert!(
                member >= FIRST_MEMBER,
                "round {round}: unexpected member {member}"
            );
            // --repeat decides member FIRST_MEMBER + i as allowed unless i % 3 == 0.
            assert_eq!(
                receipt["allowed"].as_bool(),
                Some(!(member - FIRST_MEMBER).is_multiple_of(3)),
                "round {round}: {receipt}"
            );
            assert!(
                members_this_round.insert(member),
                "round {round}: member {member} printed twice"
            );
            assert!(
                receipts.insert(position, receipt.clone()).is_none(),
                "round {round}: position {position} was acknowledged twice"
            );
        }

        // Every acknowledged receipt, of this round and the earlier ones, is in the ledger
        // unchanged.
        let lines = scratch.exported_lines();
        assert_eq!(
            lines.len() as u64,
            head,
            "round {round}: export is incomplete"
        );
        for (position, receipt) in &receipts {
            let line = &lines[(*position - 1) as usize];
            assert_eq!(line["position"], *position);
            assert_eq!(
                line["hash"], receipt["hash"],
                "round {round}: position {position} has another hash than its receipt"
            );
            let event = &line["event"];
            assert_eq!(event["kind"], "choice");
            assert_eq!(event["member"], receipt["member"], "position {position}");
            assert_eq!(event["allowed"], receipt["allowed"], "position {position}");
            assert_eq!(event["purpose"], receipt["purpose"], "position {position}");
        }
        let choices = head - policy_events;
        assert!(
            choices >= receipts.len() as u64,
            "round {round}: {choices} choices in the ledger but {} receipts printed",
            receipts.len()
        );

        // Each member appears once per round, so its latest choice is this round's.
        for _ in 0..STATUS_SAMPLES {
            let receipt = &printed[random.between(0, printed.len() as u64 - 1) as usize];
            let member = receipt["member"].as_u64().unwrap().to_string();
            let status = scratch.status(&member, "ai_training", Some("US"), None);
            assert_eq!(status["reason"], "explicit_choice", "{status}");
            assert_eq!(
                status["detail"]["position"], receipt["position"],
                "{status}"
            );
            assert_eq!(status["allowed"], receipt["allowed"], "{status}");
        }

        // The last receipt of the round is a valid signed receipt.
        let last = printed.last().unwrap();
        let file = scratch.write(&format!("receipt-{round}.json"), &last.to_string());
        run_args(&["receipt", "verify", &path_str(&file), "--key", &key_file]).success();

        previous_head = head;
    }
    println!(
        "{} receipts over {ROUNDS} rounds, {} events in the ledger",
        receipts.len(),
        previous_head
    );
}

#[test]
fn complete_lines_drops_a_trailing_partial_line() {
    let lines: Vec<&[u8]> = complete_lines(b"{\"a\":1}\n{\"b\":2}\n{\"c\":").collect();
    assert_eq!(lines, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
    assert_eq!(complete_lines(b"{\"c\":").count(), 0);
    assert_eq!(complete_lines(b"").count(), 0);
}
