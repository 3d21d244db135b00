//! Which ledger a data directory's commands run on: the embedded SQLite file in the
//! directory (the default), or a PostgreSQL ledger shared by several nodes
//! (`--ledger postgres://…`, see `docs/postgres.md`). Commands and the service see one
//! `Ledger`; only opening differs.

use std::path::PathBuf;

use optout_core::{
    ChainHead, LedgerPosition, MemberId, PolicyRecord, Purpose, SealedEvent, Timestamp,
};
use optout_postgres::PostgresLedger;
use optout_server::ServedLedger;
use optout_sqlite::SqliteLedger;
use optout_store::{
    Appended, ChoiceAt, ChoiceFacts, IndexCheckpoint, Ledger, NewEvent, StoreError, WriterMetrics,
};

pub enum LedgerStore {
    Sqlite(SqliteLedger),
    Postgres {
        ledger: Box<PostgresLedger>,
        /// The data directory with the signing key, the gate's datasets and snapshots.
        data_dir: PathBuf,
    },
}

impl LedgerStore {
    fn inner(&self) -> &dyn Ledger {
        match self {
            LedgerStore::Sqlite(ledger) => ledger,
            LedgerStore::Postgres { ledger, .. } => ledger.as_ref(),
        }
    }
}

impl Ledger for LedgerStore {
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        self.inner().append(events)
    }

    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.inner().head()
    }

    fn read_range(
        &self,
        from: LedgerPosition,
        limit: usize,
    ) -> Result<Vec<SealedEvent>, StoreError> {
        self.inner().read_range(from, limit)
    }

    fn member_choices(
        &self,
        member: MemberId,
        purpose: &Purpose,
    ) -> Result<Vec<ChoiceAt>, StoreError> {
        self.inner().member_choices(member, purpose)
    }

    fn policy_records(&self) -> Result<Vec<(LedgerPosition, PolicyRecord)>, StoreError> {
        self.inner().policy_records()
    }

    fn dataset_records(
        &self,
    ) -> Result<Vec<(LedgerPosition, optout_core::DatasetRecord)>, StoreError> {
        self.inner().dataset_records()
    }

    fn scan_choices(
        &self,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        self.inner().scan_choices(up_to, visit)
    }

    fn latest_choices_by_member(
        &self,
        purpose: &Purpose,
        cutoff: Timestamp,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(MemberId, bool),
    ) -> Result<bool, StoreError> {
        self.inner()
            .latest_choices_by_member(purpose, cutoff, up_to, visit)
    }

    fn scan_choices_since(
        &self,
        purpose: &Purpose,
        since_cutoff: Timestamp,
        since_position: LedgerPosition,
        cutoff: Timestamp,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        self.inner()
            .scan_choices_since(purpose, since_cutoff, since_position, cutoff, up_to, visit)
    }

    fn save_index_checkpoint(&self, checkpoint: &IndexCheckpoint) -> Result<(), StoreError> {
        self.inner().save_index_checkpoint(checkpoint)
    }

    fn find_index_checkpoint(
        &self,
        purpose: &Purpose,
        cutoff: Timestamp,
        up_to: LedgerPosition,
    ) -> Result<Option<IndexCheckpoint>, StoreError> {
        self.inner().find_index_checkpoint(purpose, cutoff, up_to)
    }
}

impl ServedLedger for LedgerStore {
    fn ledger(&self) -> &dyn Ledger {
        self
    }

    fn writer_metrics(&self) -> Option<&WriterMetrics> {
        match self {
            LedgerStore::Sqlite(ledger) => Some(ledger.writer_metrics()),
            LedgerStore::Postgres { ledger, .. } => ledger.writer_metrics(),
        }
    }

    fn close(&self) {
        match self {
            LedgerStore::Sqlite(ledger) => ledger.close(),
            LedgerStore::Postgres { ledger, .. } => ledger.close(),
        }
    }

    fn data_dir(&self) -> Option<PathBuf> {
        match self {
            LedgerStore::Sqlite(ledger) => ServedLedger::data_dir(ledger),
            LedgerStore::Postgres { data_dir, .. } => Some(data_dir.clone()),
        }
    }
}
