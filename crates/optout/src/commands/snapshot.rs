//! `optout snapshot export|show`: deterministic snapshots for other engines.

use std::path::{Path, PathBuf};

use optout_core::{LedgerPosition, Timestamp};
use optout_index::export::{ExportFormat, SnapshotManifest, MANIFEST_FILE};
use optout_index::file_digest::file_sha256;
use optout_index::{export_snapshot, Snapshot, SnapshotSource};
use optout_store::policy_history;
use serde_json::json;

use crate::cli::{SnapshotFormat, SnapshotTarget};
use crate::commands::{known_purpose, open_data_dir, open_data_dir_read_only, print_json};
use crate::data_dir::{DataDir, Opened};
use crate::exit::{bad_input, check_failed, CliResult, Context};
use crate::progress;

fn take(
    opened: &Opened,
    purpose: &str,
    cutoff: &str,
    position: Option<u64>,
    quiet: bool,
) -> CliResult<Snapshot> {
    let cutoff = Timestamp::parse_rfc3339(cutoff).context_bad_input("--cutoff")?;
    let policies = policy_history(&opened.ledger)?;
    let purpose = known_purpose(&policies, purpose)?;
    let bar = progress::bar(None, "", quiet);
    bar.set_message("reading the ledger");
    let snapshot = Snapshot::build(
        &opened.ledger,
        &purpose,
        cutoff,
        position.map(LedgerPosition),
    );
    bar.finish_and_clear();
    snapshot.map_err(|error| match error {
        optout_index::IndexError::PositionBeyondHead { .. } => bad_input(error),
        other => anyhow::Error::from(other).into(),
    })
}

fn counts(snapshot: &Snapshot) -> serde_json::Value {
    let source = match snapshot.source {
        SnapshotSource::FullScan { events } => {
            json!({ "kind": "full_scan", "events_read": events })
        }
        SnapshotSource::MemberIndex { members } => {
            json!({ "kind": "member_index", "members_read": members })
        }
        SnapshotSource::Checkpoint {
            cutoff,
            position,
            events,
            backdated_members,
        } => json!({
            "kind": "checkpoint",
            "checkpoint_cutoff": cutoff,
            "checkpoint_position": position,
            "events_read": events,
            "backdated_members_reread": backdated_members,
        }),
    };
    json!({
        "source": source,
        "purpose": snapshot.purpose,
        "cutoff": snapshot.cutoff,
        "position": snapshot.position,
        "ledger_hash": snapshot.head_hash,
        "policy_version": snapshot.policy_version,
        "explicit_allowed": snapshot.explicit.allowed().len(),
        "explicit_denied": snapshot.explicit.denied().len(),
        "bitmap_bytes": snapshot.explicit.serialized_bytes(),
    })
}

pub fn export(
    data_dir: &DataDir,
    target: &SnapshotTarget,
    format: SnapshotFormat,
    out: &Path,
    quiet: bool,
) -> CliResult {
    let opened = open_data_dir_read_only(data_dir)?;
    if out.join(MANIFEST_FILE).exists() {
        return Err(bad_input(anyhow::anyhow!(
            "{} already holds a snapshot; choose an empty directory",
            out.display()
        )));
    }
    let snapshot = take(
        &opened,
        &target.purpose,
        &target.cutoff,
        target.position,
        quiet,
    )?;
    let format = match format {
        SnapshotFormat::Roaring => ExportFormat::Roaring,
        SnapshotFormat::Parquet => ExportFormat::Parquet,
    };
    let manifest = export_snapshot(&snapshot, format, out, &opened.signer, opened.clock.now())
        .map_err(anyhow::Error::from)?;
    let mut summary = counts(&snapshot);
    if let Some(object) = summary.as_object_mut() {
        object.insert("out".into(), json!(out));
        object.insert("files".into(), json!(manifest.files));
    }
    print_json(&summary)
}

pub fn checkpoint(data_dir: &DataDir, target: &SnapshotTarget, quiet: bool) -> CliResult {
    let opened = open_data_dir(data_dir)?;
    let snapshot = take(
        &opened,
        &target.purpose,
        &target.cutoff,
        target.position,
        quiet,
    )?;
    snapshot
        .save_checkpoint(&opened.ledger, opened.clock.now())
        .map_err(anyhow::Error::from)?;
    let mut summary = counts(&snapshot);
    if let Some(object) = summary.as_object_mut() {
        object.insert("checkpoint_saved".into(), json!(true));
    }
    print_json(&summary)
}

pub fn show(
    data_dir: &DataDir,
    dir: Option<&Path>,
    purpose: Option<String>,
    cutoff: Option<String>,
    position: Option<u64>,
) -> CliResult {
    if let Some(dir) = dir {
        return show_exported(dir);
    }
    let opened = open_data_dir_read_only(data_dir)?;
    let (Some(purpose), Some(cutoff)) = (purpose, cutoff) else {
        return Err(bad_input(anyhow::anyhow!(
            "--purpose and --cutoff are required without --dir"
        )));
    };
    let snapshot = take(&opened, &purpose, &cutoff, position, true)?;
    print_json(&counts(&snapshot))
}

/// Reads an exported snapshot, checking its signature and file digests.
fn show_exported(dir: &Path) -> CliResult {
    let path: PathBuf = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path)
        .context_bad_input(format!("cannot read {}", path.display()))?;
    let manifest: SnapshotManifest = serde_json::from_str(&text)
        .context_bad_input(format!("{} is not a snapshot manifest", path.display()))?;
    manifest
        .verify_signature(None)
        .map_err(|error| check_failed(anyhow::anyhow!("{}: {error}", path.display())))?;
    for file in &manifest.files {
        let (_, digest) = file_sha256(&dir.join(&file.name))
            .context_bad_input(format!("cannot read {}", dir.join(&file.name).display()))?;
        if digest != file.sha256 {
            return Err(check_failed(anyhow::anyhow!(
                "{}: SHA-256 {digest} differs from the manifest's {}",
                file.name,
                file.sha256
            )));
        }
    }
    print_json(&json!({
        "purpose": manifest.purpose,
        "cutoff": manifest.cutoff,
        "position": manifest.position,
        "ledger_hash": manifest.ledger_hash,
        "policy_version": manifest.policy_version,
        "files": manifest.files,
        "signature_valid": true,
        "public_key": manifest.public_key,
    }))
}
