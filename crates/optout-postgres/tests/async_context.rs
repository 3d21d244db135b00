//! The server calls the ledger from request handlers, some of them on tokio's worker
//! threads. The synchronous PostgreSQL client runs its own runtime and panics if it is
//! blocked on inside another; the ledger must work there anyway (as the SQLite one does).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use optout_core::{LedgerPosition, ManualClock, Purpose};
use optout_postgres::PostgresLedger;
use optout_store::conformance::{choice, default_policy_event, SUITE_START};
use optout_store::Ledger;

// Open, append, read, scan, close and drop, all from inside an async task (the test's
// own database handle stays outside the runtime).
#[test]
fn ledger_works_inside_a_tokio_runtime() {
    let Some(database) = support::database_or_skip("ledger_works_inside_a_tokio_runtime") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime
        .block_on(async move { tokio::spawn(async move { in_async_task(&config) }).await })
        .unwrap();
}

fn in_async_task(config: &optout_postgres::PostgresConfig) {
    let config = config.clone();
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let ledger = PostgresLedger::open(&config, clock).unwrap();
    ledger
        .append(vec![default_policy_event(), choice(9, false, None)])
        .unwrap();
    assert_eq!(ledger.head().unwrap().unwrap().position, LedgerPosition(2));
    assert_eq!(
        ledger.read_range(LedgerPosition::FIRST, 10).unwrap().len(),
        2
    );
    let purpose = Purpose::new("ai_training").unwrap();
    assert_eq!(
        ledger
            .member_choices(optout_core::MemberId(9), &purpose)
            .unwrap()
            .len(),
        1
    );
    let mut scanned = 0;
    ledger
        .scan_choices(LedgerPosition(2), &mut |_| scanned += 1)
        .unwrap();
    assert_eq!(scanned, 1);
    let follower = PostgresLedger::open_read_only(&config).unwrap();
    assert_eq!(follower.head().unwrap(), ledger.head().unwrap());
    drop(follower);
    ledger.close();
    drop(ledger);
}

// On a current-thread runtime nothing can take over the thread while it blocks: the ledger
// answers with an error, it does not panic.
#[test]
fn current_thread_runtime_gets_an_error_not_a_panic() {
    let Some(database) = support::database_or_skip("current_thread_runtime_gets_an_error") else {
        return;
    };
    let (_dir, config) = database.fresh_config();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let error = runtime.block_on(async {
        PostgresLedger::open_read_only(&config)
            .err()
            .map(|error| error.to_string())
    });
    assert!(
        error
            .as_deref()
            .is_some_and(|message| message.contains("spawn_blocking")),
        "{error:?}"
    );
}
