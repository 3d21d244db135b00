//! Mapping between events and table rows. Member ids are u64 and SQLite integers are
//! i64, so ids are stored bit-for-bit as i64 (ids above 2^63 become negative in SQL and
//! come back unchanged).

use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Event, EventBody, EventHash, Jurisdiction, LedgerPosition, MemberId,
    PolicyRecord, PolicyVersion, Purpose, SealedEvent, Source, Timestamp,
};
use optout_store::columns::{corrupt, dataset_document, dataset_from_columns, required};
use optout_store::StoreError;
use rusqlite::{params, CachedStatement, Row};

use crate::backend;

pub(crate) const EVENT_COLUMNS: &str = "position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (position, recorded_at_us, kind, member, purpose, allowed, at_us, source, actor, policy_version, notice_version, notice_language, jurisdiction, idempotency_key, effective_from_us, document, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

pub(crate) fn member_to_sql(member: MemberId) -> i64 {
    i64::from_ne_bytes(member.get().to_ne_bytes())
}

pub(crate) fn member_from_sql(value: i64) -> MemberId {
    MemberId(u64::from_ne_bytes(value.to_ne_bytes()))
}

pub(crate) fn position_to_sql(position: LedgerPosition) -> Result<i64, StoreError> {
    i64::try_from(position.get()).map_err(|_| {
        StoreError::Backend(format!(
            "position {position} exceeds SQLite's integer range"
        ))
    })
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

pub(crate) fn insert_event(
    statement: &mut CachedStatement<'_>,
    sealed: &SealedEvent,
) -> Result<(), StoreError> {
    let event = &sealed.event;
    let position = position_to_sql(event.position)?;
    let recorded_at = event.recorded_at.as_micros();
    let kind = event.body.kind();
    let hash = sealed.hash.0.as_slice();
    let inserted = match &event.body {
        EventBody::Choice(choice) => statement.execute(params![
            position,
            recorded_at,
            kind,
            member_to_sql(choice.member),
            choice.purpose.as_str(),
            choice.allowed,
            choice.at.as_micros(),
            choice.source.as_str(),
            choice.actor.as_str(),
            choice.policy_version.map(|version| i64::from(version.0)),
            choice.notice_version,
            choice.notice_language,
            choice.jurisdiction.as_ref().map(Jurisdiction::as_str),
            choice.idempotency_key,
            None::<i64>,
            None::<String>,
            hash,
        ]),
        EventBody::Policy(policy) => statement.execute(params![
            position,
            recorded_at,
            kind,
            None::<i64>,
            None::<String>,
            None::<bool>,
            None::<i64>,
            None::<String>,
            None::<String>,
            i64::from(policy.version.0),
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            policy.effective_from.as_micros(),
            policy.document,
            hash,
        ]),
        EventBody::Dataset(dataset) => statement.execute(params![
            position,
            recorded_at,
            kind,
            None::<i64>,
            dataset.purpose.as_str(),
            None::<bool>,
            dataset.cutoff.as_micros(),
            None::<String>,
            None::<String>,
            None::<i64>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<i64>,
            dataset_document(dataset)?,
            hash,
        ]),
    };
    inserted.map(|_| ()).map_err(backend)
}

/// Rebuilds the event and its stored hash from a row selected with `EVENT_COLUMNS`.
pub(crate) fn decode_row(row: &Row<'_>) -> Result<(Event, EventHash), StoreError> {
    let position = position_from_sql(row.get(0).map_err(backend)?)?;
    let get_error = |error: rusqlite::Error| corrupt(position, error);
    let recorded_at = Timestamp::from_micros(row.get(1).map_err(get_error)?);
    let kind: String = row.get(2).map_err(get_error)?;
    let body = match kind.as_str() {
        "choice" => {
            let member: Option<i64> = row.get(3).map_err(get_error)?;
            let purpose: Option<String> = row.get(4).map_err(get_error)?;
            let allowed: Option<bool> = row.get(5).map_err(get_error)?;
            let at: Option<i64> = row.get(6).map_err(get_error)?;
            let source: Option<String> = row.get(7).map_err(get_error)?;
            let actor: Option<String> = row.get(8).map_err(get_error)?;
            let policy_version: Option<i64> = row.get(9).map_err(get_error)?;
            let jurisdiction: Option<String> = row.get(12).map_err(get_error)?;
            EventBody::Choice(ChoiceRecord {
                member: member_from_sql(required(position, member, "member")?),
                purpose: Purpose::new(&required(position, purpose, "purpose")?)
                    .map_err(|error| corrupt(position, error))?,
                allowed: required(position, allowed, "allowed")?,
                at: Timestamp::from_micros(required(position, at, "at_us")?),
                source: required(position, source, "source")?
                    .parse::<Source>()
                    .map_err(|error| corrupt(position, error))?,
                actor: Actor::new(&required(position, actor, "actor")?)
                    .map_err(|error| corrupt(position, error))?,
                policy_version: policy_version
                    .map(|version| u32::try_from(version).map(PolicyVersion))
                    .transpose()
                    .map_err(|error| corrupt(position, error))?,
                notice_version: row.get(10).map_err(get_error)?,
                notice_language: row.get(11).map_err(get_error)?,
                jurisdiction: jurisdiction
                    .map(|code| Jurisdiction::parse(&code))
                    .transpose()
                    .map_err(|error| corrupt(position, error))?,
                idempotency_key: row.get(13).map_err(get_error)?,
            })
        }
        "policy" => {
            let version: Option<i64> = row.get(9).map_err(get_error)?;
            let effective_from: Option<i64> = row.get(14).map_err(get_error)?;
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
                document: required(position, row.get(15).map_err(get_error)?, "document")?,
            })
        }
        "dataset" => {
            let purpose: Option<String> = row.get(4).map_err(get_error)?;
            let cutoff: Option<i64> = row.get(6).map_err(get_error)?;
            let document: Option<String> = row.get(15).map_err(get_error)?;
            EventBody::Dataset(dataset_from_columns(
                position,
                purpose.as_deref(),
                cutoff,
                document.as_deref(),
            )?)
        }
        other => return Err(corrupt(position, format!("unknown event kind {other:?}"))),
    };
    let hash_bytes: Vec<u8> = row.get(16).map_err(get_error)?;
    let hash = hash_from_bytes(position, &hash_bytes)?;
    Ok((
        Event {
            position,
            recorded_at,
            body,
        },
        hash,
    ))
}
