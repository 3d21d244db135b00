//! Mapping between events and table rows, the same typed columns as the SQLite backend.
//! PostgreSQL has no unsigned integers, so member ids (u64) are stored bit-for-bit as
//! `bigint` (ids above 2^63 are negative in SQL and come back unchanged); positions and
//! policy versions fit a `bigint` as they are.

use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Event, EventBody, EventHash, Jurisdiction, LedgerPosition, MemberId,
    PolicyRecord, PolicyVersion, Purpose, SealedEvent, Source, Timestamp,
};
use optout_store::columns::{corrupt, dataset_document, dataset_from_columns, required};
use optout_store::StoreError;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Row;

use crate::backend;

/// The columns of `events`, in the order `decode_row` reads them (spelled out in each
/// query in lib.rs; a test checks they agree).
#[cfg(test)]
pub(crate) const EVENT_COLUMNS: &str = "position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash";

/// `COPY` of whole events in the binary format: no text parsing on the server.
pub(crate) const COPY_EVENTS: &str = "COPY events (position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash) FROM STDIN (FORMAT binary)";

/// The head of the one-statement insert of a small batch (see `insert_statement`).
const INSERT_EVENTS: &str = "INSERT INTO events (position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash) VALUES ";

/// The column types of `COPY_EVENTS`, in order.
pub(crate) const EVENT_TYPES: [Type; 17] = [
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::BOOL,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::BYTEA,
];

pub(crate) fn member_to_sql(member: MemberId) -> i64 {
    i64::from_ne_bytes(member.get().to_ne_bytes())
}

pub(crate) fn member_from_sql(value: i64) -> MemberId {
    MemberId(u64::from_ne_bytes(value.to_ne_bytes()))
}

pub(crate) fn position_to_sql(position: LedgerPosition) -> Result<i64, StoreError> {
    i64::try_from(position.get()).map_err(|_| {
        StoreError::Backend(format!(
            "position {position} exceeds PostgreSQL's bigint range"
        ))
    })
}

/// A bound for `position <= $n`: positions beyond i64 include everything.
pub(crate) fn position_bound_to_sql(position: LedgerPosition) -> i64 {
    i64::try_from(position.get()).unwrap_or(i64::MAX)
}

pub(crate) fn position_from_sql(value: i64) -> Result<LedgerPosition, StoreError> {
    u64::try_from(value)
        .map(LedgerPosition)
        .map_err(|_| StoreError::Corrupt {
            position: LedgerPosition(0),
            problem: format!("negative position {value}"),
        })
}

pub(crate) fn hash_from_bytes(
    position: LedgerPosition,
    bytes: &[u8],
) -> Result<EventHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(EventHash)
        .map_err(|_| StoreError::Corrupt {
            position,
            problem: format!("stored hash has {} bytes, not 32", bytes.len()),
        })
}

/// One event as the values of the 17 columns, owned so they can be borrowed as `ToSql`.
pub(crate) struct EventRow<'a> {
    position: i64,
    recorded_at_us: i64,
    kind: &'static str,
    member: Option<i64>,
    purpose: Option<&'a str>,
    allowed: Option<bool>,
    at_us: Option<i64>,
    source: Option<&'static str>,
    actor: Option<&'a str>,
    policy_version: Option<i64>,
    notice_version: Option<&'a str>,
    notice_language: Option<&'a str>,
    jurisdiction: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    effective_from_us: Option<i64>,
    document: Option<String>,
    hash: &'a [u8],
}

impl<'a> EventRow<'a> {
    pub(crate) fn new(sealed: &'a SealedEvent) -> Result<Self, StoreError> {
        let event = &sealed.event;
        let mut row = EventRow {
            position: position_to_sql(event.position)?,
            recorded_at_us: event.recorded_at.as_micros(),
            kind: event.body.kind(),
            member: None,
            purpose: None,
            allowed: None,
            at_us: None,
            source: None,
            actor: None,
            policy_version: None,
            notice_version: None,
            notice_language: None,
            jurisdiction: None,
            idempotency_key: None,
            effective_from_us: None,
            document: None,
            hash: sealed.hash.0.as_slice(),
        };
        match &event.body {
            EventBody::Choice(choice) => {
                row.member = Some(member_to_sql(choice.member));
                row.purpose = Some(choice.purpose.as_str());
                row.allowed = Some(choice.allowed);
                row.at_us = Some(choice.at.as_micros());
                row.source = Some(choice.source.as_str());
                row.actor = Some(choice.actor.as_str());
                row.policy_version = choice.policy_version.map(|version| i64::from(version.0));
                row.notice_version = choice.notice_version.as_deref();
                row.notice_language = choice.notice_language.as_deref();
                row.jurisdiction = choice.jurisdiction.as_ref().map(Jurisdiction::as_str);
                row.idempotency_key = choice.idempotency_key.as_deref();
            }
            EventBody::Policy(policy) => {
                row.policy_version = Some(i64::from(policy.version.0));
                row.effective_from_us = Some(policy.effective_from.as_micros());
                row.document = Some(policy.document.clone());
            }
            EventBody::Dataset(dataset) => {
                row.purpose = Some(dataset.purpose.as_str());
                row.at_us = Some(dataset.cutoff.as_micros());
                row.document = Some(dataset_document(dataset)?);
            }
        }
        Ok(row)
    }

    /// The values in column order, for the binary `COPY`.
    pub(crate) fn values(&self) -> [&(dyn ToSql + Sync); 17] {
        [
            &self.position,
            &self.recorded_at_us,
            &self.kind,
            &self.member,
            &self.purpose,
            &self.allowed,
            &self.at_us,
            &self.source,
            &self.actor,
            &self.policy_version,
            &self.notice_version,
            &self.notice_language,
            &self.jurisdiction,
            &self.idempotency_key,
            &self.effective_from_us,
            &self.document,
            &self.hash,
        ]
    }

    /// Appends the row as a parenthesised list of SQL literals.
    fn write_literals(&self, sql: &mut String) -> Result<(), StoreError> {
        sql.push('(');
        push_integer(sql, Some(self.position));
        sql.push(',');
        push_integer(sql, Some(self.recorded_at_us));
        sql.push(',');
        push_text(sql, Some(self.kind))?;
        sql.push(',');
        push_integer(sql, self.member);
        sql.push(',');
        push_text(sql, self.purpose)?;
        sql.push(',');
        sql.push_str(match self.allowed {
            Some(true) => "true",
            Some(false) => "false",
            None => "NULL",
        });
        sql.push(',');
        push_integer(sql, self.at_us);
        sql.push(',');
        push_text(sql, self.source)?;
        sql.push(',');
        push_text(sql, self.actor)?;
        sql.push(',');
        push_integer(sql, self.policy_version);
        sql.push(',');
        push_text(sql, self.notice_version)?;
        sql.push(',');
        push_text(sql, self.notice_language)?;
        sql.push(',');
        push_text(sql, self.jurisdiction)?;
        sql.push(',');
        push_text(sql, self.idempotency_key)?;
        sql.push(',');
        push_integer(sql, self.effective_from_us);
        sql.push(',');
        push_text(sql, self.document.as_deref())?;
        sql.push_str(",'\\x");
        for byte in self.hash {
            sql.push_str(&format!("{byte:02x}"));
        }
        sql.push_str("'::bytea)");
        Ok(())
    }
}

/// `BEGIN; INSERT INTO events ... VALUES (...), ...; COMMIT` for a small batch: sent as one
/// simple query, it costs one round trip where a prepared statement per event inside
/// `BEGIN`/`COMMIT` costs two more than the number of events, and a `COPY` four. Values are
/// SQL literals: integers and booleans as such, text quoted with `'` doubled (the writer
/// session has `standard_conforming_strings = on`, so a backslash is an ordinary character)
/// and refused if it holds a NUL, the hash as a hex `bytea`.
pub(crate) fn insert_statement(events: &[SealedEvent]) -> Result<String, StoreError> {
    let mut sql = String::with_capacity(64 + INSERT_EVENTS.len() + events.len() * 256);
    sql.push_str("BEGIN;");
    sql.push_str(INSERT_EVENTS);
    for (index, sealed) in events.iter().enumerate() {
        if index > 0 {
            sql.push(',');
        }
        EventRow::new(sealed)?.write_literals(&mut sql)?;
    }
    sql.push_str(";COMMIT;");
    Ok(sql)
}

fn push_integer(sql: &mut String, value: Option<i64>) {
    match value {
        Some(value) => sql.push_str(&value.to_string()),
        None => sql.push_str("NULL"),
    }
}

fn push_text(sql: &mut String, value: Option<&str>) -> Result<(), StoreError> {
    let Some(value) = value else {
        sql.push_str("NULL");
        return Ok(());
    };
    if value.contains('\0') {
        return Err(StoreError::Rejected(
            "text with a NUL character cannot be stored".into(),
        ));
    }
    sql.push('\'');
    for character in value.chars() {
        if character == '\'' {
            sql.push('\'');
        }
        sql.push(character);
    }
    sql.push('\'');
    Ok(())
}

/// Streams events into a `COPY ... FROM STDIN (FORMAT binary)`.
pub(crate) fn copy_events(
    writer: &mut BinaryCopyInWriter<'_>,
    events: &[SealedEvent],
) -> Result<(), StoreError> {
    for sealed in events {
        let row = EventRow::new(sealed)?;
        writer.write(&row.values()).map_err(backend)?;
    }
    Ok(())
}

/// Rebuilds the event and its stored hash from a row selected with `EVENT_COLUMNS`.
pub(crate) fn decode_row(row: &Row) -> Result<(Event, EventHash), StoreError> {
    let position = position_from_sql(row.try_get(0).map_err(backend)?)?;
    let get_error = |error: postgres::Error| corrupt(position, error);
    let recorded_at = Timestamp::from_micros(row.try_get(1).map_err(get_error)?);
    let kind: &str = row.try_get(2).map_err(get_error)?;
    let body = match kind {
        "choice" => {
            let member: Option<i64> = row.try_get(3).map_err(get_error)?;
            let purpose: Option<&str> = row.try_get(4).map_err(get_error)?;
            let allowed: Option<bool> = row.try_get(5).map_err(get_error)?;
            let at: Option<i64> = row.try_get(6).map_err(get_error)?;
            let source: Option<&str> = row.try_get(7).map_err(get_error)?;
            let actor: Option<&str> = row.try_get(8).map_err(get_error)?;
            let policy_version: Option<i64> = row.try_get(9).map_err(get_error)?;
            let jurisdiction: Option<&str> = row.try_get(12).map_err(get_error)?;
            EventBody::Choice(ChoiceRecord {
                member: member_from_sql(required(position, member, "member")?),
                purpose: Purpose::new(required(position, purpose, "purpose")?)
                    .map_err(|error| corrupt(position, error))?,
                allowed: required(position, allowed, "allowed")?,
                at: Timestamp::from_micros(required(position, at, "at_us")?),
                source: required(position, source, "source")?
                    .parse::<Source>()
                    .map_err(|error| corrupt(position, error))?,
                actor: Actor::new(required(position, actor, "actor")?)
                    .map_err(|error| corrupt(position, error))?,
                policy_version: policy_version
                    .map(|version| u32::try_from(version).map(PolicyVersion))
                    .transpose()
                    .map_err(|error| corrupt(position, error))?,
                notice_version: row.try_get(10).map_err(get_error)?,
                notice_language: row.try_get(11).map_err(get_error)?,
                jurisdiction: jurisdiction
                    .map(Jurisdiction::parse)
                    .transpose()
                    .map_err(|error| corrupt(position, error))?,
                idempotency_key: row.try_get(13).map_err(get_error)?,
            })
        }
        "policy" => {
            let version: Option<i64> = row.try_get(9).map_err(get_error)?;
            let effective_from: Option<i64> = row.try_get(14).map_err(get_error)?;
            EventBody::Policy(PolicyRecord {
                version: PolicyVersion(
                    u32::try_from(required(position, version, "policy_version")?)
                        .map_err(|error| corrupt(position, error))?,
                ),
                effective_from: Timestamp::from_micros(required(
                    position,
                    effective_from,
                    "effective_from_us",
                )?),
                document: required(position, row.try_get(15).map_err(get_error)?, "document")?,
            })
        }
        "dataset" => EventBody::Dataset(dataset_from_columns(
            position,
            row.try_get(4).map_err(get_error)?,
            row.try_get(6).map_err(get_error)?,
            row.try_get(15).map_err(get_error)?,
        )?),
        other => return Err(corrupt(position, format!("unknown event kind {other:?}"))),
    };
    let hash_bytes: &[u8] = row.try_get(16).map_err(get_error)?;
    let hash = hash_from_bytes(position, hash_bytes)?;
    Ok((
        Event {
            position,
            recorded_at,
            body,
        },
        hash,
    ))
}
