//! The PostgreSQL backend passes the storage conformance suite, against the database at
//! `OPTOUT_TEST_POSTGRES_URL` (see tests/support), one schema per ledger.

mod support;

use std::sync::Arc;

use optout_core::Clock;
use optout_postgres::PostgresLedger;
use optout_store::Ledger;

#[test]
fn postgres_backend_passes_the_conformance_suite() {
    let Some(database) = support::database_or_skip("postgres_backend_passes_the_conformance_suite")
    else {
        return;
    };
    let open = |dir: &std::path::Path, clock: Arc<dyn Clock>| -> Box<dyn Ledger> {
        match PostgresLedger::open(&database.config_for(dir), clock) {
            Ok(ledger) => Box::new(ledger),
            Err(error) => panic!("cannot open the PostgreSQL ledger: {error}"),
        }
    };
    optout_store::conformance::run_all(&open);
}
