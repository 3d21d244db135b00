//! What the SQL backends share about keeping events as typed columns: how a missing or
//! malformed column is reported, and the layout of a dataset event's `document` column
//! (one layout, so exports and tools read every backend alike).

use optout_core::{DatasetRecord, LedgerPosition, Purpose, Timestamp};

use crate::StoreError;

/// A stored row that cannot be the event it claims to be.
pub fn corrupt(position: LedgerPosition, problem: impl ToString) -> StoreError {
    StoreError::Corrupt {
        position,
        problem: problem.to_string(),
    }
}

/// The value of a column the event's kind requires.
pub fn required<T>(
    position: LedgerPosition,
    value: Option<T>,
    column: &str,
) -> Result<T, StoreError> {
    value.ok_or_else(|| corrupt(position, format!("column {column} is null")))
}

/// The dataset fields without a column of their own, as JSON in `document`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetDetails {
    dataset_id: String,
    snapshot_position: u64,
    manifest_sha256: String,
    rows_written: u64,
    members_included: u64,
}

/// The `document` column of a dataset event.
pub fn dataset_document(dataset: &DatasetRecord) -> Result<String, StoreError> {
    serde_json::to_string(&DatasetDetails {
        dataset_id: dataset.dataset_id.clone(),
        snapshot_position: dataset.snapshot_position.get(),
        manifest_sha256: dataset.manifest_sha256.clone(),
        rows_written: dataset.rows_written,
        members_included: dataset.members_included,
    })
    .map_err(|error| StoreError::Backend(error.to_string()))
}

/// A dataset event from its `purpose`, `at_us` (the cutoff) and `document` columns.
pub fn dataset_from_columns(
    position: LedgerPosition,
    purpose: Option<&str>,
    cutoff_us: Option<i64>,
    document: Option<&str>,
) -> Result<DatasetRecord, StoreError> {
    let details: DatasetDetails = serde_json::from_str(required(position, document, "document")?)
        .map_err(|error| corrupt(position, error))?;
    Ok(DatasetRecord {
        dataset_id: details.dataset_id,
        purpose: Purpose::new(required(position, purpose, "purpose")?)
            .map_err(|error| corrupt(position, error))?,
        cutoff: Timestamp::from_micros(required(position, cutoff_us, "at_us")?),
        snapshot_position: LedgerPosition(details.snapshot_position),
        manifest_sha256: details.manifest_sha256,
        rows_written: details.rows_written,
        members_included: details.members_included,
    })
}
