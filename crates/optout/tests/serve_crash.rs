//! Acknowledged choices survive a crash of the server: a real `optout serve` on loopback
//! takes concurrent `PUT /v1/me/settings/{purpose}` requests from several client threads
//! and is killed with SIGKILL at a random moment, several times on the same data
//! directory. After each kill the chain verifies and every request that got a 2xx is in
//! the ledger at its receipt's position with the receipt's hash, member and value (so no
//! 2xx was given for a choice that is missing).
//!
//! Kill moments come from a seeded splitmix64 stream; the seed is printed, and
//! `OPTOUT_CRASH_SEED=<seed>` replays the same moments. Load is bounded: a few hundred
//! requests per round, loopback only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod serve_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{crash_seed, Scratch};
use optout_core::splitmix::SplitMix64;
use serde_json::Value;
use serve_support::{member_token, request, Server};

const ROUNDS: u64 = 3;
const CLIENT_THREADS: u64 = 8;
/// Acknowledged requests after which a round's kill may happen, drawn in this range.
const ACKS_BEFORE_KILL_MIN: u64 = 20;
const ACKS_BEFORE_KILL_MAX: u64 = 300;
/// A round stops sending after this long even if the kill threshold was not reached.
const ROUND_SECONDS_MAX: u64 = 20;
const MEMBERS_PER_THREAD: u64 = 10_000;

#[test]
fn every_acknowledged_put_survives_sigkill_of_the_server() {
    let seed = crash_seed();
    eprintln!("serve_crash seed: {seed} (replay with OPTOUT_CRASH_SEED={seed})");
    let mut random = SplitMix64(seed);
    let scratch = Scratch::initialized();
    let mut acknowledged: BTreeMap<u64, Value> = BTreeMap::new();
    for round in 0..ROUNDS {
        let kill_after = random.between(ACKS_BEFORE_KILL_MIN, ACKS_BEFORE_KILL_MAX);
        let receipts = run_round(&scratch, round, kill_after);
        eprintln!(
            "round {round}: killed after {} acknowledged requests (threshold {kill_after})",
            receipts.len()
        );
        // A round in which nothing was acknowledged would prove nothing.
        assert!(
            !receipts.is_empty(),
            "round {round}: no request was acknowledged (seed {seed})"
        );
        for receipt in receipts {
            let position = receipt["position"].as_u64().unwrap();
            assert!(
                acknowledged.insert(position, receipt).is_none(),
                "two receipts for position {position} (seed {seed})"
            );
        }
        check_ledger(&scratch, &acknowledged, seed);
    }
    assert!(!acknowledged.is_empty());
}

/// One server life: clients PUT until `kill_after` receipts arrived, then SIGKILL.
fn run_round(scratch: &Scratch, round: u64, kill_after: u64) -> Vec<Value> {
    let server = Server::start(
        &scratch.data,
        &[("OPTOUT_LIMITS_MEMBER_REQUESTS_BURST", "1000")],
    );
    let address = server.address.clone();
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|thread| {
            let (address, receipts, acked, stop) = (
                address.clone(),
                Arc::clone(&receipts),
                Arc::clone(&acked),
                Arc::clone(&stop),
            );
            let data = scratch.data.clone();
            std::thread::spawn(move || {
                let first = (round * CLIENT_THREADS + thread) * MEMBERS_PER_THREAD;
                for index in 0..MEMBERS_PER_THREAD {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let token = member_token(&data, first + index, "US");
                    let body = if index % 3 == 0 {
                        r#"{"allowed": true}"#
                    } else {
                        r#"{"allowed": false}"#
                    };
                    let Ok(answer) = request(
                        &address,
                        "PUT",
                        "/v1/me/settings/ai_training",
                        Some(&token),
                        &[],
                        Some(body),
                    ) else {
                        return; // the server is gone
                    };
                    if (200..300).contains(&answer.status) {
                        receipts.lock().unwrap().push(answer.json());
                        acked.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert!(answer.status >= 500, "unexpected refusal: {answer:?}");
                    }
                }
            })
        })
        .collect();
    while acked.load(Ordering::Relaxed) < kill_after
        && started.elapsed() < Duration::from_secs(ROUND_SECONDS_MAX)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let receipts = receipts.lock().unwrap().clone();
    receipts
}

fn check_ledger(scratch: &Scratch, acknowledged: &BTreeMap<u64, Value>, seed: u64) {
    let verified = scratch.run(&["ledger", "verify"]).success().json();
    assert_eq!(verified["verified"], true, "seed {seed}");
    let lines = scratch.exported_lines();
    let by_position: BTreeMap<u64, &Value> = lines
        .iter()
        .map(|line| (line["position"].as_u64().unwrap(), line))
        .collect();
    for (position, receipt) in acknowledged {
        let line = by_position
            .get(position)
            .unwrap_or_else(|| panic!("acknowledged position {position} missing (seed {seed})"));
        assert_eq!(
            line["hash"], receipt["hash"],
            "position {position} (seed {seed})"
        );
        let event = &line["event"];
        assert_eq!(event["kind"], "choice");
        assert_eq!(event["member"], receipt["member"], "position {position}");
        assert_eq!(event["allowed"], receipt["allowed"], "position {position}");
        assert_eq!(event["source"], "api", "position {position}");
    }
}
