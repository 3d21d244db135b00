//! The embedded ledger: one SQLite database file in WAL mode with `synchronous=FULL`, so a
//! committed transaction survives a crash of the process or the machine. One writer
//! connection lives on the group-commit thread; reads use their own connection.
//!
//! Events are stored as typed columns (compact, queryable by member); the canonical
//! encoding and hash are recomputed from them when verifying, so a change to any stored
//! column breaks the chain at that position.

mod read_ahead;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use optout_core::{ChainHead, Clock, LedgerPosition, MemberId, PolicyRecord, Purpose, SealedEvent};
use optout_store::{
    Appended, ChoiceAt, ChoiceFacts, CommitLog, GroupCommitWriter, IndexCheckpoint, Ledger,
    NewEvent, StoreError, WriterLimits, WriterMetrics, WriterState,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::rows::{decode_row, insert_event, EVENT_COLUMNS};

/// The SQLite-backed ledger.
pub struct SqliteLedger {
    path: PathBuf,
    writer: GroupCommitWriter,
    reader: Mutex<Connection>,
}

impl SqliteLedger {
    /// Opens (creating if needed) the ledger database at `path`.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with_limits(path, clock, WriterLimits::default())
    }

    pub fn open_with_limits(
        path: &Path,
        clock: Arc<dyn Clock>,
        limits: WriterLimits,
    ) -> Result<Self, StoreError> {
        let write_connection = schema::open_connection(path)?;
        schema::migrate(&write_connection)?;
        let reader = schema::open_connection(path)?;
        let writer = GroupCommitWriter::start(
            SqliteCommitLog {
                connection: write_connection,
            },
            clock,
            limits,
        )?;
        Ok(SqliteLedger {
            path: path.to_path_buf(),
            writer,
            reader: Mutex::new(reader),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writer_metrics(&self) -> &WriterMetrics {
        self.writer.metrics()
    }

    /// Waits for queued writes and stops the writer.
    pub fn close(&self) {
        self.writer.shutdown();
    }

    /// Every event of one kind, in ledger order, as the record `pick` takes from its body.
    /// The kind is spelled into the SQL (not bound) so the partial index on policies is used.
    fn events_of_kind<T>(
        &self,
        kind: &'static str,
        pick: impl Fn(optout_core::EventBody) -> Option<T>,
    ) -> Result<Vec<(LedgerPosition, T)>, StoreError> {
        self.read(|connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE kind = '{kind}' ORDER BY position"
                ))
                .map_err(backend)?;
            let mut rows = statement.query([]).map_err(backend)?;
            let mut records = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let (event, _) = decode_row(row)?;
                if let Some(record) = pick(event.body) {
                    records.push((event.position, record));
                }
            }
            Ok(records)
        })
    }

    /// Whole-ledger scans (snapshots without a checkpoint, reports) read on a connection
    /// of their own: on the shared reader they would hold back, for the length of the
    /// scan, the short reads every request makes (index catch-up, member history).
    fn scan<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let connection = schema::open_connection(&self.path)?;
        work(&connection)
    }

    /// [`Self::scan`], for queries that read most of the file: see [`read_ahead`].
    fn scan_reading_ahead<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        read_ahead::while_reading_ahead(&self.path, || self.scan(work))
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let connection = self
            .reader
            .lock()
            .map_err(|_| StoreError::Backend("reader connection lock poisoned".into()))?;
        work(&connection)
    }
}

pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl Ledger for SqliteLedger {
    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        self.writer.append(events)
    }

    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.read(read_head)
    }

    fn read_range(
        &self,
        from: LedgerPosition,
        limit: usize,
    ) -> Result<Vec<SealedEvent>, StoreError> {
        self.read(|connection| {
            let prev_position = from.get().saturating_sub(1);
            let mut prev_hash = if prev_position == 0 {
                optout_core::EventHash::GENESIS
            } else {
                connection
                    .query_row(
                        "SELECT hash FROM events WHERE position = ?1",
                        [rows::position_to_sql(LedgerPosition(prev_position))?],
                        |row| row.get::<_, Vec<u8>>(0),
                    )
                    .optional()
                    .map_err(backend)?
                    .map(|bytes| rows::hash_from_bytes(LedgerPosition(prev_position), &bytes))
                    .transpose()?
                    .unwrap_or(optout_core::EventHash::GENESIS)
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2"
                ))
                .map_err(backend)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut rows = statement
                .query(params![rows::position_to_sql(from)?, limit])
                .map_err(backend)?;
            let mut events = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let (event, hash) = decode_row(row)?;
                events.push(SealedEvent {
                    event,
                    prev_hash,
                    hash,
                });
                prev_hash = hash;
            }
            Ok(events)
        })
    }

    fn member_choices(
        &self,
        member: MemberId,
        purpose: &Purpose,
    ) -> Result<Vec<ChoiceAt>, StoreError> {
        self.read(|connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE kind = 'choice' AND member = ?1 AND purpose = ?2 ORDER BY position"
                ))
                .map_err(backend)?;
            let mut rows = statement
                .query(params![rows::member_to_sql(member), purpose.as_str()])
                .map_err(backend)?;
            let mut choices = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
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

    fn scan_choices(
        &self,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        self.scan_reading_ahead(|connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT position, member, purpose, allowed, at_us FROM events \
                     WHERE kind = 'choice' AND position <= ?1 ORDER BY position",
                )
                .map_err(backend)?;
            let mut rows = statement
                .query([rows::position_to_sql(up_to).unwrap_or(i64::MAX)])
                .map_err(backend)?;
            // Purposes repeat on every row; parse each distinct name once.
            let mut purposes: Vec<(String, Purpose)> = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                let position = rows::position_from_sql(row.get(0).map_err(backend)?)?;
                let corrupt = |problem: String| StoreError::Corrupt { position, problem };
                let member: i64 = row.get(1).map_err(|error| corrupt(error.to_string()))?;
                let name = row
                    .get_ref(2)
                    .map_err(|error| corrupt(error.to_string()))?
                    .as_str()
                    .map_err(|error| corrupt(error.to_string()))?;
                let index = match purposes.iter().position(|(known, _)| known == name) {
                    Some(index) => index,
                    None => {
                        let purpose =
                            Purpose::new(name).map_err(|error| corrupt(error.to_string()))?;
                        purposes.push((name.to_string(), purpose));
                        purposes.len() - 1
                    }
                };
                let allowed: bool = row.get(3).map_err(|error| corrupt(error.to_string()))?;
                let at: i64 = row.get(4).map_err(|error| corrupt(error.to_string()))?;
                if let Some((_, purpose)) = purposes.get(index) {
                    visit(ChoiceFacts {
                        position,
                        member: rows::member_from_sql(member),
                        purpose,
                        allowed,
                        at: optout_core::Timestamp::from_micros(at),
                    });
                }
            }
            Ok(())
        })
    }

    fn scan_choices_since(
        &self,
        purpose: &Purpose,
        since_cutoff: optout_core::Timestamp,
        since_position: LedgerPosition,
        cutoff: optout_core::Timestamp,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(ChoiceFacts),
    ) -> Result<(), StoreError> {
        self.scan(|connection| {
            let since_position = rows::position_to_sql(since_position)?;
            let up_to = rows::position_to_sql(up_to).unwrap_or(i64::MAX);
            // Newer than the checkpoint's cutoff (by the time index), then appended after
            // its position with an older time (backdated, by position range).
            let queries = [
                (
                    "SELECT position, member, allowed, at_us FROM events INDEXED BY events_choices_by_time \
                     WHERE kind = 'choice' AND purpose = ?1 AND at_us > ?2 AND at_us <= ?3 AND position <= ?4",
                    since_cutoff.as_micros(),
                    up_to,
                ),
                (
                    // NOT INDEXED: walk the position (rowid) range, not every choice
                    // up to the cutoff by the time index.
                    "SELECT position, member, allowed, at_us FROM events NOT INDEXED \
                     WHERE kind = 'choice' AND purpose = ?1 AND at_us <= ?2 AND at_us <= ?3 AND position > ?4 AND position <= ?5",
                    since_cutoff.as_micros(),
                    up_to,
                ),
            ];
            for (index, (sql, since_at, up_to)) in queries.into_iter().enumerate() {
                let mut statement = connection.prepare_cached(sql).map_err(backend)?;
                let mut result = if index == 0 {
                    statement.query(params![purpose.as_str(), since_at, cutoff.as_micros(), up_to])
                } else {
                    statement.query(params![purpose.as_str(), since_at, cutoff.as_micros(), since_position, up_to])
                }
                .map_err(backend)?;
                while let Some(row) = result.next().map_err(backend)? {
                    let position = rows::position_from_sql(row.get(0).map_err(backend)?)?;
                    let member: i64 = row.get(1).map_err(backend)?;
                    let allowed: bool = row.get(2).map_err(backend)?;
                    let at: i64 = row.get(3).map_err(backend)?;
                    visit(ChoiceFacts {
                        position,
                        member: rows::member_from_sql(member),
                        purpose,
                        allowed,
                        at: optout_core::Timestamp::from_micros(at),
                    });
                }
            }
            Ok(())
        })
    }

    fn latest_choices_by_member(
        &self,
        purpose: &Purpose,
        cutoff: optout_core::Timestamp,
        up_to: LedgerPosition,
        visit: &mut dyn FnMut(MemberId, bool),
    ) -> Result<bool, StoreError> {
        self.scan_reading_ahead(|connection| {
            // Walks the index alone (it covers every column asked for), in its order: a
            // member's rows are adjacent and in (time, position) order, so each member's
            // last row is its latest choice.
            let mut statement = connection
                .prepare_cached(
                    "SELECT member, allowed FROM events INDEXED BY events_latest_choice \
                     WHERE kind = 'choice' AND purpose = ?1 AND at_us <= ?2 AND position <= ?3 \
                     ORDER BY member, at_us, position",
                )
                .map_err(backend)?;
            let up_to = rows::position_to_sql(up_to).unwrap_or(i64::MAX);
            let mut rows = statement
                .query(params![purpose.as_str(), cutoff.as_micros(), up_to])
                .map_err(backend)?;
            // Members are stored as i64, so ids from 2^63 up (negative there) come first;
            // they are held back and visited last, to keep ascending u64 order.
            let mut high_ids = Vec::new();
            let mut latest: Option<(i64, bool)> = None;
            let mut emit = |(member, allowed): (i64, bool), high_ids: &mut Vec<(i64, bool)>| {
                if member < 0 {
                    high_ids.push((member, allowed));
                } else {
                    visit(rows::member_from_sql(member), allowed);
                }
            };
            while let Some(row) = rows.next().map_err(backend)? {
                let member: i64 = row.get(0).map_err(backend)?;
                let allowed: bool = row.get(1).map_err(backend)?;
                if let Some(previous) = latest.filter(|(previous, _)| *previous != member) {
                    emit(previous, &mut high_ids);
                }
                latest = Some((member, allowed));
            }
            if let Some(last) = latest {
                emit(last, &mut high_ids);
            }
            for (member, allowed) in high_ids {
                visit(rows::member_from_sql(member), allowed);
            }
            Ok(true)
        })
    }

    fn save_index_checkpoint(&self, checkpoint: &IndexCheckpoint) -> Result<(), StoreError> {
        self.read(|connection| {
            connection
                .execute(
                    "INSERT OR REPLACE INTO index_checkpoints \
                     (purpose, cutoff_us, position, ledger_hash, allowed, denied, created_at_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        checkpoint.purpose.as_str(),
                        checkpoint.cutoff.as_micros(),
                        rows::position_to_sql(checkpoint.position)?,
                        checkpoint.ledger_hash.0.as_slice(),
                        checkpoint.allowed,
                        checkpoint.denied,
                        checkpoint.created_at.as_micros(),
                    ],
                )
                .map(|_| ())
                .map_err(backend)
        })
    }

    fn find_index_checkpoint(
        &self,
        purpose: &Purpose,
        cutoff: optout_core::Timestamp,
        up_to: LedgerPosition,
    ) -> Result<Option<IndexCheckpoint>, StoreError> {
        self.read(|connection| {
            let found = connection
                .query_row(
                    "SELECT cutoff_us, position, ledger_hash, allowed, denied, created_at_us FROM index_checkpoints \
                     WHERE purpose = ?1 AND cutoff_us <= ?2 AND position <= ?3 \
                     ORDER BY position DESC, cutoff_us DESC LIMIT 1",
                    params![purpose.as_str(), cutoff.as_micros(), rows::position_to_sql(up_to).unwrap_or(i64::MAX)],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, Vec<u8>>(2)?,
                            row.get::<_, Vec<u8>>(3)?,
                            row.get::<_, Vec<u8>>(4)?,
                            row.get::<_, i64>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let Some((cutoff_us, position, hash, allowed, denied, created_at)) = found else {
                return Ok(None);
            };
            let position = rows::position_from_sql(position)?;
            Ok(Some(IndexCheckpoint {
                purpose: purpose.clone(),
                cutoff: optout_core::Timestamp::from_micros(cutoff_us),
                position,
                ledger_hash: rows::hash_from_bytes(position, &hash)?,
                allowed,
                denied,
                created_at: optout_core::Timestamp::from_micros(created_at),
            }))
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

    fn policy_records(&self) -> Result<Vec<(LedgerPosition, PolicyRecord)>, StoreError> {
        self.events_of_kind("policy", |body| match body {
            optout_core::EventBody::Policy(policy) => Some(policy),
            _ => None,
        })
    }
}

fn read_head(connection: &Connection) -> Result<Option<ChainHead>, StoreError> {
    connection
        .query_row(
            "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()
        .map_err(backend)?
        .map(|(position, hash)| {
            let position = rows::position_from_sql(position)?;
            Ok(ChainHead {
                position,
                hash: rows::hash_from_bytes(position, &hash)?,
            })
        })
        .transpose()
}

/// The writer thread's side: the write connection.
struct SqliteCommitLog {
    connection: Connection,
}

impl CommitLog for SqliteCommitLog {
    fn recover(&mut self) -> Result<WriterState, StoreError> {
        let head = read_head(&self.connection)?;
        let last_recorded_at = self
            .connection
            .query_row(
                "SELECT recorded_at_us FROM events ORDER BY position DESC LIMIT 1",
                [],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map_err(backend)?
            .map(optout_core::Timestamp::from_micros);
        let last_policy = self
            .connection
            .query_row(
                "SELECT policy_version, effective_from_us FROM events WHERE kind = 'policy' ORDER BY position DESC LIMIT 1",
                [],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()
            .map_err(backend)?
            .map(|(version, from)| {
                Ok::<_, StoreError>((
                    optout_core::PolicyVersion(u32::try_from(version).map_err(|_| StoreError::Backend("stored policy version out of range".into()))?),
                    optout_core::Timestamp::from_micros(from),
                ))
            })
            .transpose()?;
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
        let found = {
            let mut statement = self
                .connection
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE member = ?1 AND idempotency_key = ?2"
                ))
                .map_err(backend)?;
            let mut rows = statement
                .query(params![rows::member_to_sql(member), key])
                .map_err(backend)?;
            match rows.next().map_err(backend)? {
                Some(row) => Some(decode_row(row)?),
                None => None,
            }
        };
        let Some((event, hash)) = found else {
            return Ok(None);
        };
        let prev_position = event.position.get().saturating_sub(1);
        let prev_hash = if prev_position == 0 {
            optout_core::EventHash::GENESIS
        } else {
            let bytes: Vec<u8> = self
                .connection
                .query_row(
                    "SELECT hash FROM events WHERE position = ?1",
                    [rows::position_to_sql(LedgerPosition(prev_position))?],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            rows::hash_from_bytes(LedgerPosition(prev_position), &bytes)?
        };
        Ok(Some(SealedEvent {
            event,
            prev_hash,
            hash,
        }))
    }

    fn commit(&mut self, events: &[SealedEvent]) -> Result<(), StoreError> {
        let transaction = self.connection.transaction().map_err(backend)?;
        {
            let mut statement = transaction
                .prepare_cached(rows::INSERT_EVENT)
                .map_err(backend)?;
            for event in events {
                insert_event(&mut statement, event)?;
            }
        }
        // With WAL and synchronous=FULL, COMMIT returns after the WAL is fsynced.
        transaction.commit().map_err(backend)
    }
}
