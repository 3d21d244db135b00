//! Storage for the consent ledger, independent of any database: the [`Ledger`] trait
//! that every backend implements (SQLite embedded, PostgreSQL next), the group-commit
//! writer that turns concurrent appends into few durable transactions, verification of a
//! stored chain, and (feature `conformance`) the test suite every backend must pass.

pub mod columns;
pub mod error;
pub mod export;
pub mod ledger;
pub mod verify;
pub mod writer;

#[cfg(feature = "conformance")]
pub mod bench_workload;
#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::StoreError;
pub use export::{export_ledger, verify_export, ExportError};
pub use ledger::{
    member_history, policy_history, policy_history_up_to, Appended, ChoiceAt, ChoiceFacts,
    ChoiceTime, IndexCheckpoint, Ledger, NewEvent,
};
pub use verify::verify_ledger;
pub use writer::{CommitLog, GroupCommitWriter, WriterLimits, WriterMetrics, WriterState};
