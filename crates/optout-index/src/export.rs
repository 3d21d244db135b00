//! Snapshot export for engines that are not optout (Spark, Trino, DuckDB, Polars).
//!
//! A snapshot directory holds the members whose latest explicit choice as of the cutoff
//! allows (`explicit_allowed.*`) and denies (`explicit_denied.*`), as 64-bit portable
//! Roaring bitmaps (the layout CRoaring, pyroaring's `BitMap64` and Iceberg v3 / Delta
//! deletion vectors use) or as Parquet with one `member_id` UInt64 column, plus
//! `snapshot.json`: what the snapshot is (purpose, cutoff, ledger position and hash,
//! policy version), the rule per jurisdiction resolved at the cutoff, the files with their
//! SHA-256, and an ed25519 signature. `docs/snapshots.md` gives the SQL that applies it.
//!
//! Every file is written under a temporary name and renamed when complete;
//! `snapshot.json` comes last, so a directory with a manifest is a complete snapshot.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use optout_core::canonical::CanonicalObject;
use optout_core::{
    EventHash, Jurisdiction, LedgerPosition, LedgerSigner, PolicyVersion, PublicKey, Purpose,
    Timestamp,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decision_table::ExplicitState;
use crate::file_digest::file_sha256;
use crate::snapshot::Snapshot;

const SIGNATURE_DOMAIN: &str = "optout-snapshot-v1";
pub const MANIFEST_FILE: &str = "snapshot.json";
pub const RULES_FILE: &str = "jurisdiction_rules.csv";
/// Ids per Parquet row group.
const PARQUET_ROW_GROUP_IDS: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Roaring,
    Parquet,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Roaring => "roaring64",
            ExportFormat::Parquet => "parquet",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write Parquet {}: {error}", path.display())]
    Parquet { path: PathBuf, error: String },
    #[error("{} already holds a snapshot (snapshot.json); choose an empty directory", path.display())]
    NotEmpty { path: PathBuf },
}

/// The rule for one jurisdiction at the cutoff: the answer for each explicit state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JurisdictionRule {
    pub jurisdiction: String,
    /// opt_out, opt_in, excluded, or none (no policy or purpose in force).
    pub mode: String,
    pub allowed_without_choice: bool,
    pub allowed_with_explicit_allow: bool,
    pub allowed_with_explicit_deny: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFile {
    pub name: String,
    /// `explicit_allowed`, `explicit_denied` or `jurisdiction_rules`.
    pub set: String,
    /// Members in the set (rows, for the rules).
    pub members: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// `snapshot.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    pub purpose: Purpose,
    pub cutoff: Timestamp,
    pub position: LedgerPosition,
    pub ledger_hash: EventHash,
    pub policy_version: Option<PolicyVersion>,
    pub format: ExportFormat,
    pub files: Vec<ExportedFile>,
    /// Every assigned ISO 3166-1 code; a jurisdiction not listed (or missing) is not allowed.
    pub jurisdictions: Vec<JurisdictionRule>,
    pub created_at: Timestamp,
    pub public_key: PublicKey,
    pub signature: String,
}

impl SnapshotManifest {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut rules = Sha256::new();
        for rule in &self.jurisdictions {
            rules.update(format!(
                "{} {} {} {} {}\n",
                rule.jurisdiction,
                rule.mode,
                rule.allowed_without_choice,
                rule.allowed_with_explicit_allow,
                rule.allowed_with_explicit_deny
            ));
        }
        let mut files = Sha256::new();
        for file in &self.files {
            files.update(format!(
                "{} {} {} {}\n",
                file.name, file.set, file.members, file.sha256
            ));
        }
        let mut object = CanonicalObject::new();
        object
            .text("purpose", self.purpose.as_str())
            .signed("cutoff_us", self.cutoff.as_micros())
            .unsigned("position", self.position.get())
            .text("ledger_hash", self.ledger_hash.to_hex())
            .text("files_sha256", hex::encode(files.finalize()))
            .text("jurisdictions_sha256", hex::encode(rules.finalize()))
            .signed("created_at_us", self.created_at.as_micros())
            .text("public_key", self.public_key.to_hex());
        if let Some(version) = self.policy_version {
            object.unsigned("policy_version", u64::from(version.0));
        }
        object.to_bytes()
    }

    pub fn verify_signature(
        &self,
        expected: Option<&PublicKey>,
    ) -> Result<(), optout_core::signing::SignatureError> {
        if let Some(expected) = expected {
            if expected != &self.public_key {
                return Err(optout_core::signing::SignatureError::WrongKey {
                    signed_by: self.public_key.to_hex(),
                    expected: expected.to_hex(),
                });
            }
        }
        self.public_key
            .verify(SIGNATURE_DOMAIN, &self.signed_bytes(), &self.signature)
    }
}

/// The rule per assigned jurisdiction, resolved from the snapshot's decision table.
pub fn jurisdiction_rules(snapshot: &Snapshot) -> Vec<JurisdictionRule> {
    let purpose_policy = snapshot
        .policies
        .in_force_at(snapshot.cutoff)
        .and_then(|policy| policy.purpose(&snapshot.purpose));
    Jurisdiction::assigned()
        .map(|code| JurisdictionRule {
            jurisdiction: code.to_string(),
            mode: purpose_policy
                .map_or("none", |policy| policy.rule_for(code).mode().as_str())
                .to_string(),
            allowed_without_choice: snapshot.table.allowed(Some(code), ExplicitState::None),
            allowed_with_explicit_allow: snapshot.table.allowed(Some(code), ExplicitState::Allowed),
            allowed_with_explicit_deny: snapshot.table.allowed(Some(code), ExplicitState::Denied),
        })
        .collect()
}

/// Writes the snapshot into `out_dir` (created if missing; must not hold a snapshot).
pub fn export_snapshot(
    snapshot: &Snapshot,
    format: ExportFormat,
    out_dir: &Path,
    signer: &LedgerSigner,
    now: Timestamp,
) -> Result<SnapshotManifest, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ExportError::Io { path, error }
    };
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let manifest_path = out_dir.join(MANIFEST_FILE);
    if manifest_path.exists() {
        return Err(ExportError::NotEmpty {
            path: out_dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    for (set, bitmap) in [
        ("explicit_allowed", snapshot.explicit.allowed()),
        ("explicit_denied", snapshot.explicit.denied()),
    ] {
        let name = format!("{set}.{}", format.extension());
        let path = out_dir.join(&name);
        let temporary = out_dir.join(format!(".{name}.partial"));
        match format {
            ExportFormat::Roaring => write_roaring(&bitmap, &temporary)?,
            ExportFormat::Parquet => write_parquet(&bitmap, &temporary)?,
        }
        let (bytes, sha256) = digest_file(&temporary)?;
        fs::rename(&temporary, &path).map_err(io(&path))?;
        files.push(ExportedFile {
            name,
            set: set.to_string(),
            members: bitmap.len(),
            bytes,
            sha256,
        });
    }
    let jurisdictions = jurisdiction_rules(snapshot);
    files.push(write_rules_csv(&jurisdictions, out_dir)?);
    let mut manifest = SnapshotManifest {
        purpose: snapshot.purpose.clone(),
        cutoff: snapshot.cutoff,
        position: snapshot.position,
        ledger_hash: snapshot.head_hash,
        policy_version: snapshot.policy_version,
        format,
        files,
        jurisdictions,
        created_at: now,
        public_key: signer.public_key(),
        signature: String::new(),
    };
    manifest.signature = signer.sign(SIGNATURE_DOMAIN, &manifest.signed_bytes());
    let text = serde_json::to_vec_pretty(&manifest).map_err(|error| ExportError::Io {
        path: manifest_path.clone(),
        error: error.into(),
    })?;
    let temporary = out_dir.join(format!(".{MANIFEST_FILE}.partial"));
    write_synced(&temporary, &text)?;
    fs::rename(&temporary, &manifest_path).map_err(io(&manifest_path))?;
    if let Ok(directory) = File::open(out_dir) {
        let _ = directory.sync_all();
    }
    Ok(manifest)
}

/// `jurisdiction_rules.csv`: the rule table for SQL engines (one row per assigned code).
fn write_rules_csv(
    rules: &[JurisdictionRule],
    out_dir: &Path,
) -> Result<ExportedFile, ExportError> {
    let name = RULES_FILE.to_string();
    let mut text = String::from(
        "jurisdiction,mode,allowed_without_choice,allowed_with_explicit_allow,allowed_with_explicit_deny\n",
    );
    for rule in rules {
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            rule.jurisdiction,
            rule.mode,
            rule.allowed_without_choice,
            rule.allowed_with_explicit_allow,
            rule.allowed_with_explicit_deny
        ));
    }
    let temporary = out_dir.join(format!(".{name}.partial"));
    write_synced(&temporary, text.as_bytes())?;
    let (bytes, sha256) = digest_file(&temporary)?;
    let path = out_dir.join(&name);
    fs::rename(&temporary, &path).map_err(|error| ExportError::Io { path, error })?;
    Ok(ExportedFile {
        name,
        set: "jurisdiction_rules".to_string(),
        members: rules.len() as u64,
        bytes,
        sha256,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let io = |error| ExportError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

fn write_roaring(bitmap: &RoaringTreemap, path: &Path) -> Result<(), ExportError> {
    let io = |error| ExportError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    bitmap.serialize_into(&mut out).map_err(io)?;
    let file = out.into_inner().map_err(|error| io(error.into_error()))?;
    file.sync_all().map_err(io)
}

fn write_parquet(bitmap: &RoaringTreemap, path: &Path) -> Result<(), ExportError> {
    let parquet_error = |error: parquet::errors::ParquetError| ExportError::Parquet {
        path: path.to_path_buf(),
        error: error.to_string(),
    };
    let io = |error| ExportError::Io {
        path: path.to_path_buf(),
        error,
    };
    let schema = Arc::new(Schema::new(vec![Field::new(
        "member_id",
        DataType::UInt64,
        false,
    )]));
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(parquet_error)?,
        ))
        .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_IDS))
        .build();
    let file = File::create(path).map_err(io)?;
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties)).map_err(parquet_error)?;
    let mut ids = bitmap.iter().peekable();
    while ids.peek().is_some() {
        let chunk: Vec<u64> = ids.by_ref().take(PARQUET_ROW_GROUP_IDS).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(UInt64Array::from(chunk))],
        )
        .map_err(|error| ExportError::Parquet {
            path: path.to_path_buf(),
            error: error.to_string(),
        })?;
        writer.write(&batch).map_err(parquet_error)?;
    }
    let file = writer.into_inner().map_err(parquet_error)?;
    file.sync_all().map_err(io)
}

fn digest_file(path: &Path) -> Result<(u64, String), ExportError> {
    file_sha256(path).map_err(|error| ExportError::Io {
        path: path.to_path_buf(),
        error,
    })
}
