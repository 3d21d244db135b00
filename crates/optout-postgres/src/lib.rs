//! The shared ledger: the consent ledger in a PostgreSQL schema, for when one machine is
//! not enough. One process is the ledger's writer (it holds a session-level advisory lock
//! for the schema) and appends through the group-commit writer; any number of processes
//! on other nodes open the same schema read-only and follow it with `read_range` and
//! `scan_choices_since` from the last position they applied.
//!
//! A commit returns only after PostgreSQL has answered `COMMIT`, which with
//! `synchronous_commit = on` (enforced on the writer session) means the WAL record is
//! flushed to disk. Batches go in with `COPY ... (FORMAT binary)`; PostgreSQL logs the new
//! tuples and index entries, with a full page image only on the first change of a page
//! after each checkpoint, so a large random index costs far less per commit than in
//! SQLite's WAL, which writes every touched page whole on every commit.
//!
//! Events are stored as typed columns with their hash, in the same layout as the SQLite
//! backend; the canonical encoding and hash are recomputed from the columns when verifying,
//! so a change to any stored column breaks the chain at that position.

mod blocking;
mod config;
mod error;
mod key_filter;
mod rows;
mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use optout_core::{
    ChainHead, Clock, EventHash, LedgerPosition, MemberId, PolicyRecord, PolicyVersion, Purpose,
    SealedEvent, Timestamp,
};
use optout_store::{
    Appended, ChoiceAt, ChoiceFacts, CommitLog, GroupCommitWriter, IndexCheckpoint, Ledger,
    NewEvent, StoreError, WriterLimits, WriterMetrics, WriterState,
};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

pub use crate::config::{
    redact_url, PostgresConfig, SchemaName, DEFAULT_SCHEMA, IDEMPOTENCY_FILTER_BYTES_DEFAULT,
    SCHEMA_NAME_BYTES_MAX,
};
pub use crate::error::PostgresError;
use crate::key_filter::KeyFilter;
use crate::rows::decode_row;
#[cfg(test)]
use crate::rows::EVENT_COLUMNS;

/// Batches of at least this many events go in with one binary `COPY` (BEGIN, COPY and
/// COMMIT: four round trips, no SQL to parse); smaller ones as one multi-row `INSERT` of
/// literals sent with BEGIN and COMMIT in a single round trip. Measured on a 5-6 million
/// event ledger, 100-event batches as literals went at 10-16 000 events/s against 17-29 000
/// by COPY, so only the smallest batches, where round trips dominate, skip COPY.
pub const COPY_BATCH_EVENTS_MIN: usize = 8;

/// The PostgreSQL-backed ledger.
pub struct PostgresLedger {
    config: PostgresConfig,
    /// None when opened read-only.
    writer: Option<GroupCommitWriter>,
    /// None only while dropping.
    reader: Mutex<Option<Reader>>,
}

impl Drop for PostgresLedger {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get_mut().ok().and_then(Option::take) {
            blocking::drop_client(reader.client);
        }
    }
}

impl PostgresLedger {
    /// Opens the ledger as its one writer (creating the schema if needed). Fails with
    /// `PostgresError::WriterLocked` if another session holds the ledger.
    pub fn open(config: &PostgresConfig, clock: Arc<dyn Clock>) -> Result<Self, PostgresError> {
        Self::open_with_limits(config, clock, WriterLimits::default())
    }

    pub fn open_with_limits(
        config: &PostgresConfig,
        clock: Arc<dyn Clock>,
        limits: WriterLimits,
    ) -> Result<Self, PostgresError> {
        blocking::blocking(|| Self::open_writer(config, clock, limits))
    }

    fn open_writer(
        config: &PostgresConfig,
        clock: Arc<dyn Clock>,
        limits: WriterLimits,
    ) -> Result<Self, PostgresError> {
        let mut write_client = schema::connect(config, "writer")?;
        schema::migrate(&mut write_client, config)?;
        schema::lock_writer(&mut write_client, config)?;
        // From here the log owns the lock; dropping it (on any error below too) unlocks.
        let mut log = PostgresCommitLog {
            client: write_client,
            config: config.clone(),
            statements: HashMap::new(),
            keys: KeyFilter::new(config.idempotency_filter_bytes),
        };
        schema::require_durable_commits(&mut log.client)?;
        let reader = Reader::connect(config)?;
        let writer = GroupCommitWriter::start(log, clock, limits)?;
        Ok(PostgresLedger {
            config: config.clone(),
            writer: Some(writer),
            reader: Mutex::new(Some(reader)),
        })
    }

    /// Opens the ledger to read only, without the writer lock: what other nodes do to
    /// follow a ledger another process writes. `append` is refused. The schema must already
    /// hold a ledger of this layout (`PostgresError::NotInitialised` otherwise): only the
    /// writer creates and migrates.
    pub fn open_read_only(config: &PostgresConfig) -> Result<Self, PostgresError> {
        blocking::blocking(|| {
            let mut client = schema::connect(config, "reader")?;
            schema::check_version(&mut client, config)?;
            Ok(PostgresLedger {
                config: config.clone(),
                writer: None,
                reader: Mutex::new(Some(Reader::new(client))),
            })
        })
    }

    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Whether this handle is the ledger's writer.
    pub fn is_writer(&self) -> bool {
        self.writer.is_some()
    }

    /// The writer's counters; None when opened read-only.
    pub fn writer_metrics(&self) -> Option<&WriterMetrics> {
        self.writer.as_ref().map(GroupCommitWriter::metrics)
    }

    /// Waits for queued writes, stops the writer and releases the writer lock.
    pub fn close(&self) {
        if let Some(writer) = &self.writer {
            let _ = blocking::blocking(|| {
                writer.shutdown();
                Ok::<_, StoreError>(())
            });
        }
    }

    /// Every event of one kind, in ledger order, as the record `pick` takes from its body.
    /// The kind is spelled into the SQL (not bound) so the partial indexes match.
    fn events_of_kind<T>(
        &self,
        kind: &'static str,
        pick: impl Fn(optout_core::EventBody) -> Option<T>,
    ) -> Result<Vec<(LedgerPosition, T)>, StoreError> {
        let sql = match kind {
            "policy" => POLICY_EVENTS,
            _ => DATASET_EVENTS,
        };
        self.read(|reader| {
            let rows = reader.query(sql, &[])?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                let (event, _) = decode_row(row)?;
                if let Some(record) = pick(event.body) {
                    records.push((event.position, record));
                }
            }
            Ok(records)
        })
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&mut Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        blocking::blocking(|| {
            let mut reader = self
                .reader
                .lock()
                .map_err(|_| StoreError::Backend("reader connection lock poisoned".into()))?;
            let reader = reader
                .as_mut()
                .ok_or_else(|| StoreError::Backend("the ledger is closing".into()))?;
            work(reader)
        })
    }
}

const POLICY_EVENTS: &str = "SELECT position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash FROM events WHERE kind = 'policy' ORDER BY position";
const DATASET_EVENTS: &str = "SELECT position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash FROM events WHERE kind = 'dataset' ORDER BY position";

pub(crate) fn backend(error: postgres::Error) -> StoreError {
    StoreError::Backend(postgres_message(&error))
}

/// The server's message with its SQLSTATE when there is one (the client's `Display` only
/// says "db error").
fn postgres_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "PostgreSQL: {} ({}){}",
            db.message(),
            db.code().code(),
            db.detail()
                .map(|detail| format!(": {detail}"))
                .unwrap_or_default()
        ),
        None => format!("PostgreSQL: {error}"),
    }
}

/// A connection with its prepared statements, each prepared on first use.
struct Reader {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Reader {
    fn connect(config: &PostgresConfig) -> Result<Self, PostgresError> {
        Ok(Reader::new(schema::connect(config, "reader")?))
    }

    fn new(client: Client) -> Self {
        Reader {
            client,
            statements: HashMap::new(),
        }
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = prepared(&mut self.client, &mut self.statements, sql)?;
        self.client.query(&statement, params).map_err(backend)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = prepared(&mut self.client, &mut self.statements, sql)?;
        self.client.query_opt(&statement, params).map_err(backend)
    }

    /// Streams the rows to `visit` without holding them all in memory.
    fn for_each_row(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        mut visit: impl FnMut(&Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let statement = prepared(&mut self.client, &mut self.statements, sql)?;
        let mut rows = self
            .client
            .query_raw(&statement, params.iter().copied())
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            visit(&row)?;
        }
        Ok(())
    }
}

fn prepared(
    client: &mut Client,
    statements: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
) -> Result<Statement, StoreError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql).map_err(backend)?;
    statements.insert(sql, statement.clone());
    Ok(statement)
}

const SELECT_HEAD: &str =
    "SELECT position, hash, recorded_at_us FROM events ORDER BY position DESC LIMIT 1";
const SELECT_HASH_AT: &str = "SELECT hash FROM events WHERE position = $1";
const SELECT_RANGE: &str = "SELECT position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash FROM events WHERE position >= $1 ORDER BY position LIMIT $2";
const SELECT_MEMBER_CHOICES: &str = "SELECT position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash FROM events WHERE member = $1 AND purpose = $2 AND member IS NOT NULL ORDER BY position";
const SELECT_IDEMPOTENT: &str = "SELECT position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash FROM events WHERE member = $1 AND idempotency_key = $2 AND idempotency_key IS NOT NULL";
const SELECT_KEYS: &str =
    "SELECT member, idempotency_key FROM events WHERE idempotency_key IS NOT NULL";
const SELECT_LAST_POLICY: &str = "SELECT policy_version, effective_from_us FROM events WHERE kind = 'policy' ORDER BY position DESC LIMIT 1";
const SCAN_CHOICES: &str = "SELECT position, member, purpose, allowed, at_us FROM events \
     WHERE kind = 'choice' AND position <= $1 ORDER BY position";
/// Choices newer than a checkpoint's cutoff (by the time index).
const SCAN_CHOICES_AFTER_CUTOFF: &str = "SELECT position, member, allowed, at_us FROM events \
     WHERE kind = 'choice' AND purpose = $1 AND at_us > $2 AND at_us <= $3 AND position <= $4";
/// Choices appended after a checkpoint's position with an older time (backdated imports),
/// by the position range: what a node tailing the ledger applies after position S.
const SCAN_CHOICES_AFTER_POSITION: &str = "SELECT position, member, allowed, at_us FROM events \
     WHERE kind = 'choice' AND purpose = $1 AND at_us <= $2 AND at_us <= $3 AND position > $4 AND position <= $5";
const UPSERT_CHECKPOINT: &str = "INSERT INTO index_checkpoints \
     (purpose, cutoff_us, position, ledger_hash, allowed, denied, created_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (purpose, position, cutoff_us) DO UPDATE SET \
     ledger_hash = EXCLUDED.ledger_hash, allowed = EXCLUDED.allowed, \
     denied = EXCLUDED.denied, created_at_us = EXCLUDED.created_at_us";
const FIND_CHECKPOINT: &str =
    "SELECT cutoff_us, position, ledger_hash, allowed, denied, created_at_us \
     FROM index_checkpoints WHERE purpose = $1 AND cutoff_us <= $2 AND position <= $3 \
     ORDER BY position DESC, cutoff_us DESC LIMIT 1";

fn head_from_row(row: &Row) -> Result<ChainHead, StoreError> {
    let position = rows::position_from_sql(row.try_get(0).map_err(backend)?)?;
    let hash: &[u8] = row.try_get(1).map_err(backend)?;
    Ok(ChainHead {
        position,
        hash: rows::hash_from_bytes(position, hash)?,
    })
}

/// The hash of the event before `position` (the genesis hash before the first).
fn prev_hash(
    client: &mut Client,
    statements: &mut HashMap<&'static str, Statement>,
    position: LedgerPosition,
) -> Result<EventHash, StoreError> {
    let prev_position = position.get().saturating_sub(1);
    if prev_position == 0 {
        return Ok(EventHash::GENESIS);
    }
    let prev = LedgerPosition(prev_position);
    let statement = prepared(client, statements, SELECT_HASH_AT)?;
    let row = client
        .query_opt(&statement, &[&rows::position_to_sql(prev)?])
        .map_err(backend)?;
    match row {
        Some(row) => rows::hash_from_bytes(prev, row.try_get(0).map_err(backend)?),
        None => Ok(EventHash::GENESIS),
    }
}

impl Ledger for PostgresLedger {
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        match &self.writer {
            Some(writer) => writer.append(events),
            None => Err(StoreError::Rejected(format!(
                "the ledger in schema {:?} is open read-only on this node; appends go to its writer",
                self.config.schema.as_str()
            ))),
        }
    }

    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.read(|reader| {
            reader
                .query_opt(SELECT_HEAD, &[])?
                .map(|row| head_from_row(&row))
                .transpose()
        })
    }

    fn read_range(
        &self,
        from: LedgerPosition,
        limit: usize,
    ) -> Result<Vec<SealedEvent>, StoreError> {
        self.read(|reader| {
            let from_sql = rows::position_to_sql(from)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut prev = prev_hash(&mut reader.client, &mut reader.statements, from)?;
            let rows = reader.query(SELECT_RANGE, &[&from_sql, &limit])?;
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let (event, hash) = decode_row(row)?;
                events.push(SealedEvent {
                    event,
                    prev_hash: prev,
                    hash,
                });
                prev = hash;
            }
            Ok(events)
        })
    }

    fn member_choices(
        &self,
        member: MemberId,
        purpose: &Purpose,
    ) -> Result<Vec<ChoiceAt>, StoreError> {
        self.read(|reader| {
            let rows = reader.query(
                SELECT_MEMBER_CHOICES,
                &[&rows::member_to_sql(member), &purpose.as_str()],
            )?;
            let mut choices = Vec::with_capacity(rows.len());
            for row in &rows {
                let (event, _) = decode_row(row)?;
                if let optout_core::EventBody::Choice(choice) = event.body {
                    choices.push(ChoiceAt {
                        position: event.position,
                        choice,
                    });
                }
            }
            Ok(choices)
        })
    }

    fn policy_records(&self) -> Result<Vec<(LedgerPosition, PolicyRecord)>, StoreError> {
        self.events_of_kind("policy", |body| match body {
            optout_core::EventBody::Policy(policy) => Some(policy),
            _ => None,
        })
    }

    fn dataset_records(
        &self,
    ) -> Result<Vec<(LedgerPosition, optout_core::DatasetRecord)>, StoreError> {
        self.events_of_kind("dataset", |body| match body {
            optout_core::EventBody::Dataset(dataset) => Some(dataset),
            _ => None,
        })
    }

    fn scan_choices(
        &self,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        self.read(|reader| {
            // Purposes repeat on every row; parse each distinct name once.
            let mut purposes: Vec<Purpose> = Vec::new();
            let up_to = rows::position_bound_to_sql(up_to);
            reader.for_each_row(SCAN_CHOICES, &[&up_to], |row| {
                let position = rows::position_from_sql(row.try_get(0).map_err(backend)?)?;
                let corrupt = |problem: String| StoreError::Corrupt { position, problem };
                let member: i64 = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
                let name: &str = row.try_get(2).map_err(|e| corrupt(e.to_string()))?;
                let allowed: bool = row.try_get(3).map_err(|e| corrupt(e.to_string()))?;
                let at: i64 = row.try_get(4).map_err(|e| corrupt(e.to_string()))?;
                let index = match purposes.iter().position(|known| known.as_str() == name) {
                    Some(index) => index,
                    None => {
                        purposes.push(Purpose::new(name).map_err(|e| corrupt(e.to_string()))?);
                        purposes.len() - 1
                    }
                };
                if let Some(purpose) = purposes.get(index) {
                    visit(ChoiceFacts {
                        position,
                        member: rows::member_from_sql(member),
                        purpose,
                        allowed,
                        at: Timestamp::from_micros(at),
                    });
                }
                Ok(())
            })
        })
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
        self.read(|reader| {
            let name = purpose.as_str();
            let since_at = since_cutoff.as_micros();
            let cutoff_at = cutoff.as_micros();
            let since_position = rows::position_bound_to_sql(since_position);
            let up_to = rows::position_bound_to_sql(up_to);
            let mut emit = |row: &Row| {
                let position = rows::position_from_sql(row.try_get(0).map_err(backend)?)?;
                let member: i64 = row.try_get(1).map_err(backend)?;
                let allowed: bool = row.try_get(2).map_err(backend)?;
                let at: i64 = row.try_get(3).map_err(backend)?;
                visit(ChoiceFacts {
                    position,
                    member: rows::member_from_sql(member),
                    purpose,
                    allowed,
                    at: Timestamp::from_micros(at),
                });
                Ok(())
            };
            reader.for_each_row(
                SCAN_CHOICES_AFTER_CUTOFF,
                &[&name, &since_at, &cutoff_at, &up_to],
                &mut emit,
            )?;
            reader.for_each_row(
                SCAN_CHOICES_AFTER_POSITION,
                &[&name, &since_at, &cutoff_at, &since_position, &up_to],
                &mut emit,
            )
        })
    }

    fn save_index_checkpoint(&self, checkpoint: &IndexCheckpoint) -> Result<(), StoreError> {
        self.read(|reader| {
            let statement = prepared(
                &mut reader.client,
                &mut reader.statements,
                UPSERT_CHECKPOINT,
            )?;
            // An explicit transaction: `commit` returns only after COMMIT is answered.
            let mut transaction = reader.client.transaction().map_err(backend)?;
            transaction
                .execute(
                    &statement,
                    &[
                        &checkpoint.purpose.as_str(),
                        &checkpoint.cutoff.as_micros(),
                        &rows::position_to_sql(checkpoint.position)?,
                        &checkpoint.ledger_hash.0.as_slice(),
                        &checkpoint.allowed,
                        &checkpoint.denied,
                        &checkpoint.created_at.as_micros(),
                    ],
                )
                .map_err(backend)?;
            transaction.commit().map_err(backend)
        })
    }

    fn find_index_checkpoint(
        &self,
        purpose: &Purpose,
        cutoff: Timestamp,
        up_to: LedgerPosition,
    ) -> Result<Option<IndexCheckpoint>, StoreError> {
        self.read(|reader| {
            let Some(row) = reader.query_opt(
                FIND_CHECKPOINT,
                &[
                    &purpose.as_str(),
                    &cutoff.as_micros(),
                    &rows::position_bound_to_sql(up_to),
                ],
            )?
            else {
                return Ok(None);
            };
            let position = rows::position_from_sql(row.try_get(1).map_err(backend)?)?;
            Ok(Some(IndexCheckpoint {
                purpose: purpose.clone(),
                cutoff: Timestamp::from_micros(row.try_get(0).map_err(backend)?),
                position,
                ledger_hash: rows::hash_from_bytes(position, row.try_get(2).map_err(backend)?)?,
                allowed: row.try_get(3).map_err(backend)?,
                denied: row.try_get(4).map_err(backend)?,
                created_at: Timestamp::from_micros(row.try_get(5).map_err(backend)?),
            }))
        })
    }
}

/// The writer thread's side: the connection that holds the writer lock.
struct PostgresCommitLog {
    client: Client,
    config: PostgresConfig,
    statements: HashMap<&'static str, Statement>,
    /// Every idempotency key in the ledger (and some that are not).
    keys: KeyFilter,
}

impl Drop for PostgresCommitLog {
    fn drop(&mut self) {
        schema::unlock_writer(&mut self.client, &self.config);
    }
}

impl CommitLog for PostgresCommitLog {
    fn recover(&mut self) -> Result<WriterState, StoreError> {
        let statement = prepared(&mut self.client, &mut self.statements, SELECT_HEAD)?;
        let head_row = self.client.query_opt(&statement, &[]).map_err(backend)?;
        let (head, last_recorded_at) = match head_row {
            Some(row) => (
                Some(head_from_row(&row)?),
                Some(Timestamp::from_micros(row.try_get(2).map_err(backend)?)),
            ),
            None => (None, None),
        };
        let statement = prepared(&mut self.client, &mut self.statements, SELECT_LAST_POLICY)?;
        let last_policy = self
            .client
            .query_opt(&statement, &[])
            .map_err(backend)?
            .map(|row| {
                let version: i64 = row.try_get(0).map_err(backend)?;
                let from: i64 = row.try_get(1).map_err(backend)?;
                let version = u32::try_from(version).map_err(|_| {
                    StoreError::Backend(format!("stored policy version {version} out of range"))
                })?;
                Ok::<_, StoreError>((PolicyVersion(version), Timestamp::from_micros(from)))
            })
            .transpose()?;
        let statement = prepared(&mut self.client, &mut self.statements, SELECT_KEYS)?;
        let mut rows = self
            .client
            .query_raw(&statement, std::iter::empty::<i64>())
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let member: i64 = row.try_get(0).map_err(backend)?;
            let key: &str = row.try_get(1).map_err(backend)?;
            self.keys.insert(rows::member_from_sql(member), key);
        }
        Ok(WriterState {
            head,
            last_recorded_at,
            last_policy,
        })
    }

    fn find_idempotent(
        &mut self,
        member: MemberId,
        key: &str,
    ) -> Result<Option<SealedEvent>, StoreError> {
        if !self.keys.may_contain(member, key) {
            return Ok(None);
        }
        let statement = prepared(&mut self.client, &mut self.statements, SELECT_IDEMPOTENT)?;
        let row = self
            .client
            .query_opt(&statement, &[&rows::member_to_sql(member), &key])
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let (event, hash) = decode_row(&row)?;
        let prev_hash = prev_hash(&mut self.client, &mut self.statements, event.position)?;
        Ok(Some(SealedEvent {
            event,
            prev_hash,
            hash,
        }))
    }

    fn commit(&mut self, events: &[SealedEvent]) -> Result<(), StoreError> {
        // Explicit transactions either way: COMMIT is answered only once its WAL record is
        // flushed (synchronous_commit >= on), unlike an implicit one, whose outcome would
        // come after the statement's answer.
        if events.len() < COPY_BATCH_EVENTS_MIN {
            // BEGIN, the insert and COMMIT in one round trip; the answer comes after COMMIT.
            let sql = rows::insert_statement(events)?;
            self.client.batch_execute(&sql).map_err(backend)?;
        } else {
            let mut transaction = self.client.transaction().map_err(backend)?;
            let copy = transaction.copy_in(rows::COPY_EVENTS).map_err(backend)?;
            let mut writer = BinaryCopyInWriter::new(copy, &rows::EVENT_TYPES);
            rows::copy_events(&mut writer, events)?;
            writer.finish().map_err(backend)?;
            transaction.commit().map_err(backend)?;
        }
        for choice in events.iter().filter_map(SealedEvent::choice) {
            if let Some(key) = &choice.idempotency_key {
                self.keys.insert(choice.member, key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The event queries spell out EVENT_COLUMNS (SQL constants cannot be concatenated from
    // constants); decode_row reads by index, so they must agree.
    #[test]
    fn event_queries_select_the_decoded_columns() {
        for sql in [
            POLICY_EVENTS,
            DATASET_EVENTS,
            SELECT_RANGE,
            SELECT_MEMBER_CHOICES,
            SELECT_IDEMPOTENT,
        ] {
            assert!(
                sql.starts_with(&format!("SELECT {EVENT_COLUMNS} FROM events ")),
                "{sql}"
            );
        }
    }
}
