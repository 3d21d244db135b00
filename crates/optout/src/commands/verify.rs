//! `optout verify`: checks a dataset against the ledger, whoever built it.
//!
//! Every row's member must be allowed as of the cutoff (at the manifest's snapshot
//! position when a manifest is given, else at the ledger head) and no column may be
//! outside the purpose's allow-list besides the id. With `--manifest`, the manifest's
//! signature (by this ledger's key), the digests of the files it lists and the dataset
//! event recording it in the ledger are checked too. Exit 1 names the number of violating
//! rows and a sample of their ids; the JSON report is printed either way.

use std::path::{Path, PathBuf};

use optout_core::Purpose;
use optout_gate::verify::{check_manifest_files, write_member_list};
use optout_gate::{
    verify_dataset, ConsentFilter, DatasetManifest, JurisdictionTable, Verdict, VerifyRequest,
};
use optout_store::{policy_history, Ledger};
use serde_json::json;

use crate::cli::DatasetVerifyArgs;
use crate::commands::gate::{gate_error, past_cutoff, snapshot_at};
use crate::commands::{known_purpose, open_data_dir_read_only, print_json};
use crate::data_dir::{DataDir, Opened};
use crate::exit::{bad_input, check_failed, CliResult};
use crate::progress;

/// What checking the manifest found.
struct ManifestCheck {
    position: u64,
    outputs: Vec<PathBuf>,
    /// The gate's inputs that still exist: where members' jurisdictions come from.
    inputs: Vec<PathBuf>,
    problems: Vec<String>,
    dataset_id: String,
}

fn check_manifest(
    opened: &Opened,
    path: &Path,
    purpose: &Purpose,
    cutoff: optout_core::Timestamp,
) -> CliResult<ManifestCheck> {
    let (manifest, sha256) = DatasetManifest::read(path).map_err(gate_error)?;
    let mut problems = Vec::new();
    if let Err(error) = manifest.verify_signature(Some(&opened.signer.public_key())) {
        problems.push(format!("manifest signature: {error}"));
    }
    if &manifest.purpose != purpose || manifest.snapshot.cutoff != cutoff {
        problems.push(format!(
            "the manifest is for purpose {} at cutoff {}, not {purpose} at {cutoff}",
            manifest.purpose, manifest.snapshot.cutoff
        ));
    }
    let directory = path.parent().unwrap_or(Path::new("."));
    problems.extend(check_manifest_files(&manifest, directory));
    let recorded = opened
        .ledger
        .dataset_records()?
        .into_iter()
        .any(|(_, record)| {
            record.manifest_sha256 == sha256 && record.dataset_id == manifest.dataset_id
        });
    if !recorded {
        problems.push(format!(
            "no dataset event in the ledger records this manifest (SHA-256 {sha256})"
        ));
    }
    let head = opened.ledger.head()?.map_or(0, |head| head.position.get());
    let mut position = manifest.snapshot.position.get();
    if position > head {
        problems.push(format!(
            "the manifest's snapshot position {position} is beyond this ledger's head {head}"
        ));
        position = head;
    }
    Ok(ManifestCheck {
        position,
        inputs: manifest
            .inputs
            .iter()
            .map(|input| PathBuf::from(&input.path))
            .filter(|path| path.exists())
            .collect(),
        outputs: manifest
            .outputs
            .iter()
            .map(|output| directory.join(&output.name))
            .collect(),
        problems,
        dataset_id: manifest.dataset_id,
    })
}

pub fn run(data_dir: &DataDir, args: &DatasetVerifyArgs, quiet: bool) -> CliResult {
    let opened = open_data_dir_read_only(data_dir)?;
    let now = opened.clock.now();
    let cutoff = past_cutoff(&args.cutoff, now)?;
    let policies = policy_history(&opened.ledger)?;
    let purpose = known_purpose(&policies, &args.purpose)?;
    let allowed_fields = policies
        .in_force_at(cutoff)
        .and_then(|policy| policy.purpose(&purpose))
        .map(|policy| policy.allowed_fields.clone())
        .unwrap_or_default();
    let manifest = args
        .manifest
        .as_deref()
        .map(|path| check_manifest(&opened, path, &purpose, cutoff))
        .transpose()?;
    let paths = match (&manifest, args.paths.is_empty()) {
        (Some(manifest), true) => manifest.outputs.clone(),
        (None, true) => {
            return Err(bad_input(anyhow::anyhow!(
                "give the dataset's files or directories, or --manifest"
            )))
        }
        (_, false) => args.paths.clone(),
    };
    let snapshot = snapshot_at(
        &opened,
        &purpose,
        cutoff,
        manifest.as_ref().map(|manifest| manifest.position),
        quiet,
    )?;
    let filter = ConsentFilter::new(&snapshot);
    // Without --jurisdictions, a gate-built dataset takes them from the gate's inputs.
    let jurisdiction_sources = match (&manifest, args.jurisdictions.is_empty()) {
        (Some(manifest), true) => manifest.inputs.clone(),
        _ => args.jurisdictions.clone(),
    };
    let table = JurisdictionTable::load(
        &jurisdiction_sources,
        &args.id_column,
        &args.jurisdiction_column,
    )
    .map_err(gate_error)?;
    let request = VerifyRequest {
        paths,
        id_column: args.id_column.clone(),
        jurisdiction_column: args.jurisdiction_column.clone(),
        jurisdictions: jurisdiction_sources,
        allowed_fields,
    };
    let bar = progress::bar(None, "rows", quiet);
    bar.set_message("verifying");
    let report = verify_dataset(&filter, &table, &request, &|rows| bar.inc(rows));
    bar.finish_and_clear();
    let report = match report {
        Ok(report) => report,
        // A dataset whose files no longer match its manifest is a failed check, even when
        // the change also makes a file unreadable.
        Err(error) if manifest.as_ref().is_some_and(|m| !m.problems.is_empty()) => {
            let problems = manifest.map(|m| m.problems).unwrap_or_default();
            return Err(check_failed(anyhow::anyhow!(
                "verification failed: {}; and {error}",
                problems.join("; ")
            )));
        }
        Err(error) => return Err(gate_error(error)),
    };

    let retraction = match &args.since_cutoff {
        Some(path) => {
            let current = snapshot_at(&opened, &purpose, now, None, quiet)?;
            let opted_out_since = &report.members & current.explicit.denied().as_ref();
            write_member_list(path, &opted_out_since).map_err(gate_error)?;
            Some(json!({ "file": path, "members": opted_out_since.len() }))
        }
        None => None,
    };
    let violating_rows = report.violating_rows();
    let unplaced_failing = report.unplaced_rows > 0 && !args.explicit_only;
    let manifest_problems = manifest
        .as_ref()
        .map(|manifest| manifest.problems.clone())
        .unwrap_or_default();
    let passed = violating_rows == 0
        && report.columns_outside_allow_list.is_empty()
        && !unplaced_failing
        && manifest_problems.is_empty();
    let violations: serde_json::Map<String, serde_json::Value> = Verdict::ALL
        .iter()
        .filter(|verdict| report.violations.get(**verdict) > 0)
        .map(|verdict| {
            (
                verdict.name().to_string(),
                json!(report.violations.get(*verdict)),
            )
        })
        .collect();
    print_json(&json!({
        "verified": passed,
        "purpose": purpose,
        "cutoff": cutoff,
        "snapshot_position": snapshot.position,
        "dataset_id": manifest.as_ref().map(|manifest| manifest.dataset_id.clone()),
        "files": report.files,
        "rows": report.rows,
        "members": report.members.len(),
        "violating_rows": violating_rows,
        "violations": violations,
        "sample_ids": report.sample_ids,
        "unplaced_rows": report.unplaced_rows,
        "explicit_only": args.explicit_only,
        "columns_outside_allow_list": report.columns_outside_allow_list,
        "manifest_problems": manifest_problems,
        "since_cutoff": retraction,
    }))?;
    if passed {
        return Ok(());
    }
    let mut reasons = Vec::new();
    if violating_rows > 0 {
        reasons.push(format!(
            "{violating_rows} rows of members not allowed at {cutoff} (sample ids: {})",
            report.sample_ids.join(", ")
        ));
    }
    if !report.columns_outside_allow_list.is_empty() {
        reasons.push(format!(
            "columns outside the allow-list: {}",
            report.columns_outside_allow_list.join("; ")
        ));
    }
    if unplaced_failing {
        reasons.push(format!(
            "{} rows whose member's jurisdiction is unknown (give --jurisdictions, or --explicit-only to check explicit opt-outs only)",
            report.unplaced_rows
        ));
    }
    reasons.extend(manifest_problems);
    Err(check_failed(anyhow::anyhow!(
        "verification failed: {}",
        reasons.join("; ")
    )))
}
