//! Connections and the table layout. Every connection sets `search_path` to the ledger's
//! schema, so the SQL elsewhere names tables without a schema. Migrations run in one
//! transaction under a transaction-level advisory lock, so nodes starting together do not
//! race to create the same tables.

use optout_store::StoreError;
use postgres::{Client, NoTls};

use crate::backend;
use crate::config::PostgresConfig;
use crate::error::PostgresError;

/// The layout this build writes and reads.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Each step brings the schema from version `index` to `index + 1`.
const MIGRATIONS: [&str; 1] = [CREATE_EVENTS];

/// Version 1: the events table (typed columns like the SQLite backend, plus the hash),
/// its indexes, and index checkpoints.
///
/// `events` is never updated, so `fillfactor = 100` packs pages full. Member ids are u64
/// stored bit-for-bit in `bigint`.
///
/// Every choice updates `events_by_member` at a random place, the cost that bounds a large
/// ledger's write rate once the index outgrows memory, so it holds the member id alone (a
/// member has few events; the purpose is filtered in the table). Keyed choices also update
/// the unique `events_by_idempotency_key`, which the writer's key filter reads at start.
const CREATE_EVENTS: &str = "
CREATE TABLE events (
    position          bigint PRIMARY KEY CHECK (position > 0),
    recorded_at_us    bigint NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('choice', 'policy', 'dataset')),
    member            bigint,
    purpose           text,
    allowed           boolean,
    at_us             bigint,
    source            text,
    actor             text,
    policy_version    bigint,
    notice_version    text,
    notice_language   text,
    jurisdiction      text,
    idempotency_key   text,
    effective_from_us bigint,
    document          text,
    hash              bytea NOT NULL CHECK (octet_length(hash) = 32)
) WITH (fillfactor = 100);
CREATE INDEX events_by_member ON events (member) WHERE member IS NOT NULL;
CREATE UNIQUE INDEX events_by_idempotency_key ON events (member, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_policies ON events (position) WHERE kind = 'policy';
CREATE INDEX events_datasets ON events (position) WHERE kind = 'dataset';
CREATE INDEX events_choices_by_time ON events (purpose, at_us) WHERE kind = 'choice';
CREATE TABLE index_checkpoints (
    purpose        text NOT NULL,
    cutoff_us      bigint NOT NULL,
    position       bigint NOT NULL,
    ledger_hash    bytea NOT NULL,
    allowed        bytea NOT NULL,
    denied         bytea NOT NULL,
    created_at_us  bigint NOT NULL,
    PRIMARY KEY (purpose, position, cutoff_us)
);
";

/// Connects, names the session (visible in `pg_stat_activity`) and selects the schema.
pub(crate) fn connect(config: &PostgresConfig, role: &str) -> Result<Client, PostgresError> {
    let connect_error = |reason: String| PostgresError::Connect {
        url: config.redacted_url(),
        reason,
    };
    let mut settings: postgres::Config = config
        .url
        .parse()
        .map_err(|error: postgres::Error| connect_error(error.to_string()))?;
    settings.application_name(&format!("optout-{role}"));
    let mut client = settings
        .connect(NoTls)
        .map_err(|error| connect_error(error.to_string()))?;
    client
        .batch_execute(&format!("SET search_path TO {}", config.schema.quoted()))
        .map_err(backend)?;
    Ok(client)
}

/// Never commit with less than a local flush of the WAL, whatever the server's default:
/// `off` would acknowledge choices a crash can lose. Stronger settings (`remote_write`,
/// `remote_apply` for synchronous standbys) are kept.
pub(crate) fn require_durable_commits(client: &mut Client) -> Result<(), StoreError> {
    // Small batches are sent as SQL literals quoted for standard strings (rows.rs).
    client
        .batch_execute("SET standard_conforming_strings TO on")
        .map_err(backend)?;
    let row = client
        .query_one("SHOW synchronous_commit", &[])
        .map_err(backend)?;
    let setting: &str = row.try_get(0).map_err(backend)?;
    if setting == "off" {
        client
            .batch_execute("SET synchronous_commit TO on")
            .map_err(backend)?;
    }
    Ok(())
}

/// The layout version of the ledger in the schema; None when there is none yet.
fn current_version(
    client: &mut Client,
    config: &PostgresConfig,
) -> Result<Option<i32>, StoreError> {
    let table = format!("{}.schema_version", config.schema.quoted());
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(backend)?;
    let exists: bool = row.try_get(0).map_err(backend)?;
    if !exists {
        return Ok(None);
    }
    client
        .query_opt("SELECT version FROM schema_version", &[])
        .map_err(backend)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(backend)
}

/// For a node that only reads: the schema must hold a ledger of this build's layout, which
/// only the writer creates or migrates (a reader needs no privilege to create anything).
pub(crate) fn check_version(
    client: &mut Client,
    config: &PostgresConfig,
) -> Result<(), PostgresError> {
    match current_version(client, config)? {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) if found > SCHEMA_VERSION => Err(PostgresError::SchemaTooNew {
            schema: config.schema.as_str().to_string(),
            found,
            supported: SCHEMA_VERSION,
        }),
        found => Err(PostgresError::NotInitialised {
            schema: config.schema.as_str().to_string(),
            found: found.unwrap_or(0),
            expected: SCHEMA_VERSION,
        }),
    }
}

/// Creates the schema and brings its tables to `SCHEMA_VERSION`. A schema already at this
/// version is left alone, so after the first start the writer needs no DDL privilege.
pub(crate) fn migrate(client: &mut Client, config: &PostgresConfig) -> Result<(), PostgresError> {
    if current_version(client, config)? == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    let schema = config.schema.as_str();
    let mut transaction = client.transaction().map_err(backend)?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('optout-migrate:' || $1, 0))",
            &[&schema],
        )
        .map_err(backend)?;
    transaction
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             SET LOCAL search_path TO {schema};
             CREATE TABLE IF NOT EXISTS schema_version (
                 singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                 version   integer NOT NULL
             );",
            schema = config.schema.quoted()
        ))
        .map_err(backend)?;
    let found: i32 = transaction
        .query_opt("SELECT version FROM schema_version", &[])
        .map_err(backend)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(backend)?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(PostgresError::SchemaTooNew {
            schema: schema.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let pending = MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0));
    for step in pending {
        transaction.batch_execute(step).map_err(backend)?;
    }
    if found < SCHEMA_VERSION {
        transaction
            .execute(
                "INSERT INTO schema_version (version) VALUES ($1)
                 ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
                &[&SCHEMA_VERSION],
            )
            .map_err(backend)?;
    }
    transaction.commit().map_err(backend)?;
    Ok(())
}

/// Takes the ledger's session-level writer lock on `client`, or says who holds it.
///
/// The lock lives as long as the session: if the writer's connection drops, PostgreSQL
/// releases it and another process may become the writer; the old writer's next commit
/// then fails on its closed connection and poisons it (and the primary key on `position`
/// would refuse a second event at a position even if it did not).
pub(crate) fn lock_writer(
    client: &mut Client,
    config: &PostgresConfig,
) -> Result<(), PostgresError> {
    let schema = config.schema.as_str();
    let row = client
        .query_one(
            "SELECT key, pg_try_advisory_lock(key) FROM (SELECT hashtextextended('optout-ledger-writer:' || $1, 0) AS key) AS k",
            &[&schema],
        )
        .map_err(backend)?;
    let key: i64 = row.try_get(0).map_err(backend)?;
    let locked: bool = row.try_get(1).map_err(backend)?;
    if locked {
        return Ok(());
    }
    Err(PostgresError::WriterLocked {
        schema: schema.to_string(),
        holder: describe_lock_holder(client, key).unwrap_or_else(|| "holder unknown".into()),
    })
}

/// Releases the writer lock (dropping the connection would too, but only once the server
/// notices; an explicit unlock lets the next writer in at once).
pub(crate) fn unlock_writer(client: &mut Client, config: &PostgresConfig) {
    let _ = client.execute(
        "SELECT pg_advisory_unlock(hashtextextended('optout-ledger-writer:' || $1, 0))",
        &[&config.schema.as_str()],
    );
}

/// "PostgreSQL backend pid N, application optout-writer, client 10.0.0.7" for the session
/// holding the advisory lock `key` (a bigint key is split into classid and objid).
fn describe_lock_holder(client: &mut Client, key: i64) -> Option<String> {
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let high = i64::from(u32::try_from(bits >> 32).ok()?);
    let low = i64::from(u32::try_from(bits & 0xffff_ffff).ok()?);
    let row = client
        .query_opt(
            "SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'),
                    coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::bigint = $1 AND l.objid::bigint = $2
             LIMIT 1",
            &[&high, &low],
        )
        .ok()??;
    let pid: i32 = row.try_get(0).ok()?;
    let application: &str = row.try_get(1).ok()?;
    let client_address: &str = row.try_get(2).ok()?;
    let since: &str = row.try_get(3).ok()?;
    Some(format!(
        "PostgreSQL backend pid {pid}, application {application:?}, client {client_address}, connected since {since}"
    ))
}
