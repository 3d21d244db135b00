//! `manifest.json`: what a gate run produced, signed by the ledger's key.
//!
//! It names the dataset, the snapshot it honoured (purpose, cutoff, ledger position and
//! hash, policy version), every input with its size and SHA-256, every output with its
//! rows and SHA-256, the fields kept, the counts by reason, and the set of members
//! included (`included_members.roaring64`, a 64-bit portable Roaring bitmap). The
//! signature covers the manifest's content serialized compactly in field order with the
//! signature empty (`signed_bytes`), under the domain `optout-dataset-v1`.
//!
//! The manifest is written last: a directory with a manifest is a complete dataset.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use optout_core::signing::SignatureError;
use optout_core::{
    EventHash, LedgerPosition, LedgerSigner, PolicyHistory, PolicyVersion, PublicKey, Purpose,
    Rule, Timestamp,
};
use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::GateError;
use crate::input::{digest_file, FileFormat};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MEMBERS_FILE: &str = "included_members.roaring64";
pub const MANIFEST_FORMAT: &str = "optout-dataset-v1";
const SIGNATURE_DOMAIN: &str = "optout-dataset-v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotReference {
    pub cutoff: Timestamp,
    pub position: LedgerPosition,
    /// The hash of the ledger event at `position`.
    pub ledger_hash: EventHash,
    pub policy_version: Option<PolicyVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingDeadline {
    /// `default` (every jurisdiction without its own rule) or the codes of a rule.
    pub jurisdictions: String,
    pub deadline: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRecord {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRecord {
    /// File name inside the dataset directory.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSetRecord {
    pub name: String,
    pub members: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsRecord {
    pub rows_in: u64,
    pub rows_kept: u64,
    /// Kept rows whose member was already kept in an earlier row.
    pub duplicate_rows_kept: u64,
    /// Dropped rows by reason; every reason is listed.
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetManifest {
    pub format: String,
    pub dataset_id: String,
    pub purpose: Purpose,
    pub snapshot: SnapshotReference,
    /// Rules whose opt-out deadline had not passed at the cutoff: there, only explicit
    /// opt-ins were kept.
    pub before_deadline: Vec<PendingDeadline>,
    pub fields: Vec<String>,
    pub id_column: String,
    pub jurisdiction_column: String,
    pub output_format: FileFormat,
    pub inputs: Vec<InputRecord>,
    pub outputs: Vec<OutputRecord>,
    pub members: MemberSetRecord,
    pub counts: CountsRecord,
    pub created_at: Timestamp,
    pub public_key: PublicKey,
    pub signature: String,
}

impl DatasetManifest {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = String::new();
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    pub fn sign(&mut self, signer: &LedgerSigner) {
        self.public_key = signer.public_key();
        self.signature = signer.sign(SIGNATURE_DOMAIN, &self.signed_bytes());
    }

    /// Checks the signature, and that the key is `expected` when one is given.
    pub fn verify_signature(&self, expected: Option<&PublicKey>) -> Result<(), SignatureError> {
        if let Some(expected) = expected {
            if expected != &self.public_key {
                return Err(SignatureError::WrongKey {
                    signed_by: self.public_key.to_hex(),
                    expected: expected.to_hex(),
                });
            }
        }
        self.public_key
            .verify(SIGNATURE_DOMAIN, &self.signed_bytes(), &self.signature)
    }

    pub fn read(path: &Path) -> Result<(DatasetManifest, String), GateError> {
        let bytes = fs::read(path).map_err(|error| GateError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?;
        let manifest = serde_json::from_slice(&bytes).map_err(|error| GateError::Corrupt {
            path: path.to_path_buf(),
            format: "dataset manifest",
            reason: error.to_string(),
        })?;
        Ok((manifest, hex::encode(Sha256::digest(&bytes))))
    }
}

/// The opt-out deadlines still ahead at `cutoff` in the policy in force then.
pub fn pending_deadlines(
    policies: &PolicyHistory,
    purpose: &Purpose,
    cutoff: Timestamp,
) -> Vec<PendingDeadline> {
    let Some(policy) = policies
        .in_force_at(cutoff)
        .and_then(|policy| policy.purpose(purpose))
    else {
        return Vec::new();
    };
    let pending = |rule: &Rule| match rule {
        Rule::OptOut {
            default_effective_from,
            ..
        } if cutoff < *default_effective_from => Some(*default_effective_from),
        _ => None,
    };
    let mut deadlines = Vec::new();
    if let Some(deadline) = pending(&policy.default_rule) {
        deadlines.push(PendingDeadline {
            jurisdictions: "default".into(),
            deadline,
        });
    }
    let mut by_deadline: BTreeMap<Timestamp, Vec<String>> = BTreeMap::new();
    for (jurisdiction, rule) in &policy.rules {
        if let Some(deadline) = pending(rule) {
            by_deadline
                .entry(deadline)
                .or_default()
                .push(jurisdiction.to_string());
        }
    }
    for (deadline, codes) in by_deadline {
        deadlines.push(PendingDeadline {
            jurisdictions: codes.join(","),
            deadline,
        });
    }
    deadlines
}

/// Writes the included member set as a portable 64-bit Roaring bitmap, synced.
pub fn write_member_set(
    directory: &Path,
    members: &RoaringTreemap,
) -> Result<(MemberSetRecord, PathBuf), GateError> {
    let path = directory.join(MEMBERS_FILE);
    let temporary = crate::output::temporary_path(directory, MEMBERS_FILE);
    let io = |error| GateError::Write {
        path: temporary.clone(),
        error,
    };
    let file = File::create(&temporary).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    members.serialize_into(&mut out).map_err(io)?;
    let file = out.into_inner().map_err(|error| io(error.into_error()))?;
    file.sync_all().map_err(io)?;
    let (bytes, sha256) = digest_file(&temporary).map_err(io)?;
    fs::rename(&temporary, &path).map_err(|error| GateError::Write {
        path: path.clone(),
        error,
    })?;
    Ok((
        MemberSetRecord {
            name: MEMBERS_FILE.into(),
            members: members.len(),
            bytes,
            sha256,
        },
        path,
    ))
}

/// A signed manifest written under its temporary name: `publish` renames it into place
/// (after the dataset event is in the ledger).
pub struct PendingManifest {
    pub manifest: DatasetManifest,
    pub sha256: String,
    temporary: PathBuf,
    path: PathBuf,
}

impl PendingManifest {
    pub fn write(directory: &Path, manifest: DatasetManifest) -> Result<Self, GateError> {
        let path = directory.join(MANIFEST_FILE);
        let temporary = crate::output::temporary_path(directory, MANIFEST_FILE);
        let io = |error| GateError::Write {
            path: temporary.clone(),
            error,
        };
        let mut text = serde_json::to_vec_pretty(&manifest).map_err(|error| io(error.into()))?;
        text.push(b'\n');
        let mut file = File::create(&temporary).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(PendingManifest {
            manifest,
            sha256: hex::encode(Sha256::digest(&text)),
            temporary,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn publish(self) -> Result<PathBuf, GateError> {
        fs::rename(&self.temporary, &self.path).map_err(|error| GateError::Write {
            path: self.path.clone(),
            error,
        })?;
        if let Some(parent) = self.path.parent() {
            if let Ok(directory) = File::open(parent) {
                let _ = directory.sync_all();
            }
        }
        Ok(self.path)
    }

    /// Removes the temporary manifest (the run failed after it was written).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.temporary);
    }
}
