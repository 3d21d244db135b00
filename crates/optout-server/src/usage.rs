//! Which recorded datasets included a member (`GET /v1/me/usage`).
//!
//! A dataset event in the ledger names its manifest only by SHA-256; the manifest (and
//! the included-member set it lists, a portable Roaring file) lives wherever the gate
//! wrote it. The service looks for manifests in `DIR/datasets/*/manifest.json` and
//! trusts one only when its digest is the event's, its signature is the ledger key's,
//! its dataset id is the event's, and the member set file's digest and count are the
//! manifest's. A dataset that cannot be checked this way is reported as unchecked with
//! the reason, never as "did not include you": saying no without proof would be a lie.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use optout_core::{DatasetRecord, LedgerPosition, MemberId, PublicKey};
use optout_gate::manifest::MANIFEST_FILE;
use optout_gate::DatasetManifest;
use optout_index::file_digest::file_sha256;
use roaring::RoaringTreemap;

use crate::dto::{DatasetSummary, UncheckedDataset, UsageResponse};
use crate::problem::ApiError;
use crate::state::AppState;

/// Why a dataset could not be checked; each is a stable `reason` in the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchecked {
    pub reason: &'static str,
    pub detail: String,
}

impl Unchecked {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Unchecked {
            reason,
            detail: detail.into(),
        }
    }
}

/// Included-member sets of datasets, found and checked once, then kept (up to a number of
/// bytes, oldest dropped first).
pub struct DatasetSets {
    cached_bytes_max: usize,
    cache: Mutex<SetCache>,
}

#[derive(Default)]
struct SetCache {
    /// Manifest files seen, by path: (modified, length) when hashed, and the digest.
    manifests: HashMap<PathBuf, (Option<SystemTime>, u64, String)>,
    /// Checked member sets by manifest digest with their size, oldest first in `order`.
    sets: HashMap<String, (Arc<RoaringTreemap>, usize)>,
    order: VecDeque<String>,
    bytes: usize,
}

impl DatasetSets {
    pub fn new(cached_bytes_max: usize) -> Self {
        DatasetSets {
            cached_bytes_max,
            cache: Mutex::new(SetCache::default()),
        }
    }

    /// The included-member set of the dataset `record`, checked against the ledger key.
    pub fn member_set(
        &self,
        datasets_dir: Option<&Path>,
        record: &DatasetRecord,
        ledger_key: &PublicKey,
    ) -> Result<Arc<RoaringTreemap>, Unchecked> {
        if let Some(set) = self.cached(&record.manifest_sha256) {
            return Ok(set);
        }
        let datasets_dir = datasets_dir.ok_or_else(|| {
            Unchecked::new(
                "no_data_directory",
                "the service runs without a data directory to find dataset manifests in",
            )
        })?;
        let manifest_path = self
            .locate(datasets_dir, &record.manifest_sha256)
            .ok_or_else(|| {
                Unchecked::new(
                    "manifest_not_found",
                    format!(
                        "no {MANIFEST_FILE} with SHA-256 {} under {}/*/",
                        record.manifest_sha256,
                        datasets_dir.display()
                    ),
                )
            })?;
        let set = Arc::new(load_member_set(&manifest_path, record, ledger_key)?);
        self.remember(&record.manifest_sha256, Arc::clone(&set));
        Ok(set)
    }

    fn cached(&self, manifest_sha256: &str) -> Option<Arc<RoaringTreemap>> {
        let cache = self.cache.lock().ok()?;
        cache
            .sets
            .get(manifest_sha256)
            .map(|(set, _)| Arc::clone(set))
    }

    fn remember(&self, manifest_sha256: &str, set: Arc<RoaringTreemap>) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let bytes = set.serialized_size();
        if bytes > self.cached_bytes_max || cache.sets.contains_key(manifest_sha256) {
            return;
        }
        while cache.bytes + bytes > self.cached_bytes_max {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some((_, freed)) = cache.sets.remove(&oldest) {
                cache.bytes = cache.bytes.saturating_sub(freed);
            }
        }
        cache.bytes += bytes;
        cache.sets.insert(manifest_sha256.to_string(), (set, bytes));
        cache.order.push_back(manifest_sha256.to_string());
    }

    /// The manifest with this digest among `datasets_dir/*/manifest.json`. A manifest is
    /// hashed again only when its length or modification time changed.
    fn locate(&self, datasets_dir: &Path, manifest_sha256: &str) -> Option<PathBuf> {
        let entries = std::fs::read_dir(datasets_dir).ok()?;
        let mut found = None;
        for entry in entries.flatten() {
            let path = entry.path().join(MANIFEST_FILE);
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            let stamp = (metadata.modified().ok(), metadata.len());
            let known = self.cache.lock().ok().and_then(|cache| {
                cache
                    .manifests
                    .get(&path)
                    .filter(|(modified, length, _)| (*modified, *length) == stamp)
                    .map(|(_, _, digest)| digest.clone())
            });
            let digest = match known {
                Some(digest) => digest,
                None => {
                    let Ok((_, digest)) = file_sha256(&path) else {
                        continue;
                    };
                    if let Ok(mut cache) = self.cache.lock() {
                        cache
                            .manifests
                            .insert(path.clone(), (stamp.0, stamp.1, digest.clone()));
                    }
                    digest
                }
            };
            if digest == manifest_sha256 {
                found = Some(path);
                break;
            }
        }
        found
    }
}

/// Reads the manifest at `path` and its member set, checking each against the event.
fn load_member_set(
    manifest_path: &Path,
    record: &DatasetRecord,
    ledger_key: &PublicKey,
) -> Result<RoaringTreemap, Unchecked> {
    let invalid = |detail: String| Unchecked::new("manifest_invalid", detail);
    let (manifest, digest) =
        DatasetManifest::read(manifest_path).map_err(|error| invalid(error.to_string()))?;
    if digest != record.manifest_sha256 {
        return Err(invalid(format!(
            "{} changed: its SHA-256 is now {digest}",
            manifest_path.display()
        )));
    }
    manifest
        .verify_signature(Some(ledger_key))
        .map_err(|error| invalid(format!("signature: {error}")))?;
    if manifest.dataset_id != record.dataset_id {
        return Err(invalid(format!(
            "the manifest is for dataset {:?}, the ledger event for {:?}",
            manifest.dataset_id, record.dataset_id
        )));
    }
    // The name comes from a signed manifest, but a plain file name is still required so
    // that no manifest can point the service outside its dataset's directory.
    let name = &manifest.members.name;
    let plain = Path::new(name).file_name().and_then(|file| file.to_str()) == Some(name.as_str());
    let directory = manifest_path.parent().filter(|_| plain).ok_or_else(|| {
        invalid(format!(
            "member set name {name:?} is not a file name in the dataset's directory"
        ))
    })?;
    let set_path = directory.join(name);
    let unreadable = |detail: String| Unchecked::new("member_set_unreadable", detail);
    let (_, set_digest) = file_sha256(&set_path)
        .map_err(|error| unreadable(format!("{}: {error}", set_path.display())))?;
    if set_digest != manifest.members.sha256 {
        return Err(Unchecked::new(
            "member_set_mismatch",
            format!(
                "{}: SHA-256 {set_digest} differs from the manifest's {}",
                set_path.display(),
                manifest.members.sha256
            ),
        ));
    }
    let file = std::fs::File::open(&set_path)
        .map_err(|error| unreadable(format!("{}: {error}", set_path.display())))?;
    let set = RoaringTreemap::deserialize_from(std::io::BufReader::new(file))
        .map_err(|error| unreadable(format!("{}: {error}", set_path.display())))?;
    if set.len() != manifest.members.members || set.len() != record.members_included {
        return Err(Unchecked::new(
            "member_set_mismatch",
            format!(
                "{} holds {} members; the manifest says {}, the ledger event {}",
                set_path.display(),
                set.len(),
                manifest.members.members,
                record.members_included
            ),
        ));
    }
    Ok(set)
}

/// The datasets recorded in the ledger, split into those that included the member,
/// those that did not, and those that could not be checked.
pub fn usage(state: &AppState, member: MemberId) -> Result<UsageResponse, ApiError> {
    let ledger = state.ledger();
    let ledger_position = ledger
        .head()?
        .map_or(LedgerPosition(0), |head| head.position);
    let records = ledger.dataset_records()?;
    let datasets_dir = state.shared().files.datasets_dir();
    let ledger_key = state.shared().signer.public_key();
    let mut included = Vec::new();
    let mut unchecked = Vec::new();
    let mut not_included = 0;
    for (position, record) in &records {
        let summary = DatasetSummary::new(*position, record);
        match state
            .shared()
            .datasets
            .member_set(datasets_dir.as_deref(), record, &ledger_key)
        {
            Ok(set) if set.contains(member.get()) => included.push(summary),
            Ok(_) => not_included += 1,
            Err(why) => {
                // The full detail names files on the server: for the operator's log only.
                tracing::warn!(
                    dataset = %record.dataset_id,
                    reason = why.reason,
                    detail = %why.detail,
                    "dataset could not be checked for a member's usage"
                );
                unchecked.push(UncheckedDataset {
                    dataset: summary,
                    reason: why.reason,
                    detail: public_detail(why.reason).to_string(),
                })
            }
        }
    }
    Ok(UsageResponse {
        member,
        ledger_position,
        datasets_recorded: records.len(),
        included,
        not_included,
        unchecked,
    })
}

/// What a member is told about a dataset that could not be checked: the reason in words,
/// without the server's paths (those go to the log).
fn public_detail(reason: &str) -> &'static str {
    match reason {
        "no_data_directory" => "the service has no data directory to find dataset manifests in",
        "manifest_not_found" => "the dataset's manifest was not found on this service",
        "manifest_invalid" => "the dataset's manifest does not match the ledger or its signature",
        "member_set_unreadable" => "the dataset's member list could not be read",
        "member_set_mismatch" => "the dataset's member list does not match its manifest",
        _ => "the dataset could not be checked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: std::ops::Range<u64>) -> Arc<RoaringTreemap> {
        Arc::new(members.collect())
    }

    #[test]
    fn the_cache_keeps_the_newest_sets_within_its_bytes() {
        let small = set(0..10);
        let bytes = small.serialized_size();
        let sets = DatasetSets::new(bytes * 2);
        sets.remember("a", Arc::clone(&small));
        sets.remember("b", Arc::clone(&small));
        assert!(sets.cached("a").is_some() && sets.cached("b").is_some());
        sets.remember("c", small);
        assert!(sets.cached("a").is_none(), "the oldest went first");
        assert!(sets.cached("b").is_some() && sets.cached("c").is_some());
        sets.remember("huge", set(0..100_000));
        assert!(
            sets.cached("huge").is_none(),
            "larger than the whole budget"
        );
        assert!(sets.cached("c").is_some(), "and nothing was dropped for it");
    }
}
