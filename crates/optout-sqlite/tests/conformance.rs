//! The SQLite backend passes the storage conformance suite.

use std::sync::Arc;

use optout_core::Clock;
use optout_sqlite::SqliteLedger;
use optout_store::Ledger;

fn open(dir: &std::path::Path, clock: Arc<dyn Clock>) -> Box<dyn Ledger> {
    match SqliteLedger::open(&dir.join("ledger.sqlite"), clock) {
        Ok(ledger) => Box::new(ledger),
        Err(error) => panic!("cannot open the SQLite ledger: {error}"),
    }
}

#[test]
fn sqlite_backend_passes_the_conformance_suite() {
    optout_store::conformance::run_all(&open);
}
