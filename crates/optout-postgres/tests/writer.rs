//! One writer per ledger, readers on other nodes following it, and a chain that verifies.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;

use optout_core::{LedgerPosition, ManualClock, Purpose, Timestamp};
use optout_postgres::{PostgresError, PostgresLedger};
use optout_store::conformance::{choice, default_policy_event, SUITE_START};
use optout_store::{verify_ledger, Ledger, StoreError};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SUITE_START))
}

// While one process holds the ledger, a second writer is refused with an error naming the
// holder; a read-only handle still reads; once the first closes, the second gets in.
#[test]
fn second_writer_is_refused_until_the_first_closes() {
    let Some(database) = support::database_or_skip("second_writer_is_refused") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let first = PostgresLedger::open(&config, clock()).unwrap();
    first.append(vec![default_policy_event()]).unwrap();

    let refused = PostgresLedger::open(&config, clock());
    let Err(error) = refused else {
        panic!("a second writer was allowed");
    };
    assert!(
        matches!(&error, PostgresError::WriterLocked { holder, .. } if holder.contains("optout-writer")),
        "{error}"
    );
    assert!(error.to_string().contains("only one writer"), "{error}");

    let reader = PostgresLedger::open_read_only(&config).unwrap();
    assert_eq!(reader.head().unwrap(), first.head().unwrap());
    assert!(matches!(
        reader.append(vec![choice(1, false, None)]),
        Err(StoreError::Rejected(_))
    ));

    first.close();
    drop(first);
    let second = PostgresLedger::open(&config, clock()).unwrap();
    let appended = second.append(vec![choice(1, false, None)]).unwrap();
    assert_eq!(appended[0].event.position(), LedgerPosition(2));
}

// Ledgers in different schemas of one database have separate writer locks.
#[test]
fn writers_of_different_schemas_do_not_block_each_other() {
    let Some(database) = support::database_or_skip("writers_of_different_schemas") else {
        return;
    };
    let (_one, first) = database.fresh_config();
    let (_two, second) = database.fresh_config();
    let _a = PostgresLedger::open(&first, clock()).unwrap();
    let _b = PostgresLedger::open(&second, clock()).unwrap();
}

// Many batched and single appends, then verify_ledger re-encodes and re-hashes every stored
// event: the columns round-trip to the exact events that were hashed.
#[test]
fn hash_chain_verifies_after_appends() {
    let Some(database) = support::database_or_skip("hash_chain_verifies_after_appends") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let ledger = PostgresLedger::open(&config, clock()).unwrap();
    ledger.append(vec![default_policy_event()]).unwrap();
    // Batches above and below the COPY threshold, live and imported, ids above 2^63.
    for round in 0..20u64 {
        let size = if round % 2 == 0 { 1_000 } else { 3 };
        let events = (0..size)
            .map(|index| {
                let member = if index % 7 == 0 {
                    u64::MAX - index
                } else {
                    round * 10_000 + index
                };
                let at = (index % 3 == 0).then(|| Timestamp::from_micros(-(index as i64)));
                choice(member, index % 2 == 0, at)
            })
            .collect();
        ledger.append(events).unwrap();
    }
    let head = verify_ledger(&ledger, |_| {}).unwrap().unwrap();
    assert_eq!(head.position, LedgerPosition(1 + 10 * 1_000 + 10 * 3));
    assert_eq!(Some(head), ledger.head().unwrap());
}

// A node that follows the ledger applies the events after the last position it saw: the
// choices the writer appends later show up in read_range and scan_choices_since from S.
#[test]
fn reader_on_another_connection_tails_after_a_position() {
    let Some(database) = support::database_or_skip("reader_tails_after_a_position") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let writer = PostgresLedger::open(&config, clock()).unwrap();
    writer
        .append(vec![default_policy_event(), choice(1, false, None)])
        .unwrap();
    let follower = PostgresLedger::open_read_only(&config).unwrap();
    let seen = follower.head().unwrap().unwrap().position;
    assert_eq!(seen, LedgerPosition(2));

    writer
        .append(vec![choice(2, true, None), choice(3, false, None)])
        .unwrap();
    let new = follower.read_range(seen.next(), 100).unwrap();
    let positions: Vec<u64> = new.iter().map(|event| event.position().get()).collect();
    assert_eq!(positions, [3, 4]);
    assert_eq!(
        new[0].prev_hash,
        writer.read_range(seen, 1).unwrap()[0].hash
    );

    let purpose = Purpose::new("ai_training").unwrap();
    let mut members = Vec::new();
    follower
        .scan_choices_since(
            &purpose,
            Timestamp::MAX,
            seen,
            Timestamp::MAX,
            LedgerPosition(u64::MAX),
            &mut |facts| members.push(facts.member.get()),
        )
        .unwrap();
    members.sort_unstable();
    assert_eq!(members, [2, 3]);
}

// The writer's key filter is rebuilt from the table at start: a key written before a
// restart still replays its event (and a conflicting reuse is still refused) after it.
#[test]
fn idempotency_keys_survive_reopen() {
    use optout_store::conformance::keyed_choice;
    let Some(database) = support::database_or_skip("idempotency_keys_survive_reopen") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let first = {
        let ledger = PostgresLedger::open(&config, clock()).unwrap();
        ledger.append(vec![default_policy_event()]).unwrap();
        let appended = ledger
            .append(vec![
                keyed_choice(7, false, "retry-1"),
                choice(8, true, None),
            ])
            .unwrap();
        appended[0].event.clone()
    };
    let ledger = PostgresLedger::open(&config, clock()).unwrap();
    let again = ledger
        .append(vec![keyed_choice(7, false, "retry-1")])
        .unwrap();
    assert!(again[0].replayed);
    assert_eq!(again[0].event, first);
    assert!(matches!(
        ledger.append(vec![keyed_choice(7, true, "retry-1")]),
        Err(StoreError::IdempotencyConflict { .. })
    ));
    let fresh = ledger
        .append(vec![keyed_choice(7, false, "retry-2")])
        .unwrap();
    assert!(!fresh[0].replayed);
    assert_eq!(fresh[0].event.position(), LedgerPosition(4));
}

// Small batches are sent as SQL literals: text with quotes, backslashes and SQL in it is
// stored exactly (the chain verifies, the key replays) and the table is untouched.
#[test]
fn quotes_and_backslashes_in_text_are_stored_exactly() {
    use optout_store::conformance::keyed_choice;
    let Some(database) = support::database_or_skip("quotes_and_backslashes_in_text") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let ledger = PostgresLedger::open(&config, clock()).unwrap();
    ledger.append(vec![default_policy_event()]).unwrap();
    let key = r"it's \' \\x00 ''); DELETE FROM events; --";
    let mut event = keyed_choice(5, false, key);
    if let optout_store::NewEvent::Choice { choice, .. } = &mut event {
        choice.actor = optout_core::Actor::new(r"admin:o'brien\ops").unwrap();
        choice.notice_version = Some("v'1".into());
    }
    let written = ledger.append(vec![event.clone()]).unwrap();
    let stored = ledger.read_range(LedgerPosition(2), 1).unwrap();
    assert_eq!(stored[0], written[0].event);
    assert_eq!(
        stored[0].choice().unwrap().idempotency_key.as_deref(),
        Some(key)
    );
    assert!(ledger.append(vec![event]).unwrap()[0].replayed);
    assert_eq!(
        verify_ledger(&ledger, |_| {}).unwrap().unwrap().position,
        LedgerPosition(2)
    );
}

// Only the writer creates a ledger: a read-only node on an empty schema gets a clear error
// and creates nothing.
#[test]
fn read_only_open_of_an_empty_schema_is_refused() {
    let Some(database) = support::database_or_skip("read_only_open_of_an_empty_schema") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let Err(error) = PostgresLedger::open_read_only(&config) else {
        panic!("a reader opened a schema without a ledger");
    };
    assert!(
        matches!(error, PostgresError::NotInitialised { found: 0, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("writer"), "{error}");
}
