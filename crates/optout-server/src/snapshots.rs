//! Snapshots the service takes and keeps for download (`/v1/snapshots`).
//!
//! A snapshot is effective consent for a purpose at a cutoff as recorded up to a ledger
//! position, so (purpose, cutoff, position, format) decides its content forever; its id is
//! a digest of those four, and asking again for the same four returns the snapshot already
//! taken instead of a second copy. Each is exported with optout-index's export code into
//! `DIR/snapshots/ID/` (the Roaring or Parquet member sets, `jurisdiction_rules.csv` and
//! the signed `snapshot.json`): built under a temporary name and renamed when complete,
//! so a directory named by an id is always a whole snapshot. One snapshot is built at a
//! time: each reads the ledger and holds its bitmaps in memory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use optout_core::{LedgerPosition, Purpose, Timestamp};
use optout_index::export::{ExportFormat, SnapshotManifest, MANIFEST_FILE};
use optout_index::{export_snapshot, IndexError, Snapshot};
use sha2::{Digest, Sha256};

use crate::problem::ApiError;
use crate::state::AppState;

/// Hex digits of a snapshot id.
pub const SNAPSHOT_ID_HEX_DIGITS: usize = 32;

/// What a snapshot is: everything its content depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotKey {
    pub purpose: Purpose,
    pub cutoff: Timestamp,
    pub position: LedgerPosition,
    pub format: ExportFormat,
}

impl SnapshotKey {
    /// The id: the first 128 bits of a SHA-256 over the key, in hex.
    pub fn id(&self) -> String {
        let format = match self.format {
            ExportFormat::Roaring => "roaring",
            ExportFormat::Parquet => "parquet",
        };
        let digest = Sha256::digest(format!(
            "optout-snapshot-id-v1\n{}\n{}\n{}\n{format}\n",
            self.purpose.as_str(),
            self.cutoff.as_micros(),
            self.position.get()
        ));
        let mut id = hex::encode(digest);
        id.truncate(SNAPSHOT_ID_HEX_DIGITS);
        id
    }
}

/// Whether `id` has the shape of a snapshot id (so it can name a directory safely).
pub fn is_snapshot_id(id: &str) -> bool {
    id.len() == SNAPSHOT_ID_HEX_DIGITS
        && id
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Serializes snapshot builds.
#[derive(Default)]
pub struct SnapshotBuilds {
    lock: Mutex<()>,
}

/// The snapshot of `key`, taken now unless it already exists; true when it was taken.
pub fn create(state: &AppState, key: &SnapshotKey) -> Result<(SnapshotManifest, bool), ApiError> {
    let root = snapshots_dir(state)?;
    let id = key.id();
    let _build = state
        .shared()
        .snapshot_builds
        .lock
        .lock()
        // The lock guards no data, only one build at a time: a panicked build must not
        // disable snapshots until a restart.
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(existing) = read_manifest(&root, &id)? {
        return Ok((existing, false));
    }
    let kept = kept_snapshots(&root)?;
    if kept >= state.limits().snapshots_kept_max {
        return Err(ApiError::SnapshotLimitReached { kept });
    }
    let snapshot = Snapshot::build(state.ledger(), &key.purpose, key.cutoff, Some(key.position))
        .map_err(|error| match error {
            IndexError::PositionBeyondHead { requested, head } => ApiError::InvalidBody(format!(
                "position: {requested} is beyond the ledger head {head}"
            )),
            other => other.into(),
        })?;
    let partial = root.join(format!(".{id}.partial"));
    if partial.exists() {
        // Left by a build that was interrupted; nobody reads partial directories.
        fs::remove_dir_all(&partial)
            .map_err(|error| ApiError::internal(format!("{}: {error}", partial.display())))?;
    }
    let manifest = export_snapshot(
        &snapshot,
        key.format,
        &partial,
        &state.shared().signer,
        state.now(),
    )
    .map_err(ApiError::internal)?;
    let published = root.join(&id);
    fs::rename(&partial, &published)
        .map_err(|error| ApiError::internal(format!("{}: {error}", published.display())))?;
    if let Ok(directory) = fs::File::open(&root) {
        let _ = directory.sync_all();
    }
    Ok((manifest, true))
}

/// The manifest of snapshot `id`.
pub fn find(state: &AppState, id: &str) -> Result<SnapshotManifest, ApiError> {
    let root = snapshots_dir(state)?;
    read_manifest(&root, id)?.ok_or_else(|| ApiError::SnapshotNotFound(id_for_message(id)))
}

/// The path of file `name` of snapshot `id`: only `snapshot.json` and the files its
/// manifest lists, so no name can reach outside the snapshot's directory.
pub fn file_path(
    state: &AppState,
    id: &str,
    name: &str,
) -> Result<(PathBuf, Option<String>), ApiError> {
    let manifest = find(state, id)?;
    let directory = snapshots_dir(state)?.join(id);
    if name == MANIFEST_FILE {
        return Ok((directory.join(MANIFEST_FILE), None));
    }
    manifest
        .files
        .iter()
        .find(|file| file.name == name)
        .map(|file| (directory.join(&file.name), Some(file.sha256.clone())))
        .ok_or_else(|| {
            let mut names: Vec<&str> = manifest
                .files
                .iter()
                .map(|file| file.name.as_str())
                .collect();
            names.push(MANIFEST_FILE);
            ApiError::SnapshotFileNotFound {
                name: name.chars().take(64).collect(),
                known: names.join(", "),
            }
        })
}

fn snapshots_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    let root = state
        .shared()
        .files
        .snapshots_dir()
        .ok_or(ApiError::NoDataDirectory)?;
    fs::create_dir_all(&root)
        .map_err(|error| ApiError::internal(format!("{}: {error}", root.display())))?;
    Ok(root)
}

/// Snapshot directories under `root` (partial builds are not counted).
fn kept_snapshots(root: &Path) -> Result<usize, ApiError> {
    let entries = fs::read_dir(root)
        .map_err(|error| ApiError::internal(format!("{}: {error}", root.display())))?;
    Ok(entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(is_snapshot_id))
        .count())
}

fn read_manifest(root: &Path, id: &str) -> Result<Option<SnapshotManifest>, ApiError> {
    if !is_snapshot_id(id) {
        return Ok(None);
    }
    let path = root.join(id).join(MANIFEST_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ApiError::internal(format!("{}: {error}", path.display()))),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|error| ApiError::internal(format!("{}: {error}", path.display())))
}

fn id_for_message(id: &str) -> String {
    id.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_every_part_of_the_key() {
        let key = SnapshotKey {
            purpose: Purpose::new("ai_training").unwrap(),
            cutoff: Timestamp::from_micros(1),
            position: LedgerPosition(5),
            format: ExportFormat::Roaring,
        };
        let id = key.id();
        assert!(is_snapshot_id(&id));
        assert_eq!(id, key.clone().id());
        let mut other = key.clone();
        other.position = LedgerPosition(6);
        assert_ne!(other.id(), id);
        let mut other = key.clone();
        other.format = ExportFormat::Parquet;
        assert_ne!(other.id(), id);
        assert!(!is_snapshot_id("../etc"));
    }
}
