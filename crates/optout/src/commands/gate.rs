//! `optout gate`: builds a training dataset that honours every choice as of a cutoff.
//!
//! Everything the caller can get wrong is checked before any row is read: the cutoff
//! (not in the future), the purpose, the fields (inside the allow-list of the policy in
//! force at the cutoff), the inputs' columns and types, the output directory (new or
//! empty). Then the snapshot is taken, rows are streamed through it on every core, the
//! included member set and the signed manifest are written, the dataset event is appended
//! to the ledger, and only then is the manifest renamed into place: a directory with a
//! `manifest.json` is a complete dataset that the ledger knows about.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use optout_core::{DatasetRecord, LedgerPosition, PolicyHistory, Purpose, Timestamp};
use optout_gate::manifest::{
    pending_deadlines, write_member_set, CountsRecord, MemberSetRecord, OutputRecord,
    SnapshotReference, MANIFEST_FORMAT,
};
use optout_gate::{
    ConsentFilter, DatasetManifest, Enforcement, FileFormat, GateError, GatePlan, GateRequest,
    PendingManifest,
};
use optout_index::{IndexError, Snapshot};
use optout_store::{policy_history, Ledger, NewEvent};
use serde_json::json;

use crate::cli::{DatasetFormat, GateArgs};
use crate::commands::{known_purpose, open_data_dir, print_json};
use crate::data_dir::{DataDir, Opened};
use crate::exit::{bad_input, CliError, CliResult, Context};
use crate::progress;

/// Maps a gate error to its exit code: the caller's mistakes exit 2, the rest 1.
pub fn gate_error(error: GateError) -> CliError {
    if error.is_bad_input() {
        bad_input(error)
    } else {
        anyhow::Error::from(error).into()
    }
}

/// The cutoff as given, refused when it is in the future: a dataset can only honour
/// choices that could already have been made.
pub fn past_cutoff(text: &str, now: Timestamp) -> CliResult<Timestamp> {
    let cutoff = Timestamp::parse_rfc3339(text).context_bad_input("--cutoff")?;
    if cutoff > now {
        return Err(bad_input(anyhow::anyhow!(
            "--cutoff {cutoff} is in the future (now {now}); choices made before a future \
             cutoff may still change, so no dataset can honour it yet"
        )));
    }
    Ok(cutoff)
}

/// The purpose's allowed fields in the policy in force at the cutoff.
pub fn allowed_fields(
    policies: &PolicyHistory,
    purpose: &Purpose,
    cutoff: Timestamp,
) -> CliResult<Vec<String>> {
    policies
        .in_force_at(cutoff)
        .and_then(|policy| policy.purpose(purpose))
        .map(|policy| policy.allowed_fields.clone())
        .ok_or_else(|| {
            bad_input(anyhow::anyhow!(
                "no policy version in force at {cutoff} defines purpose {purpose}, so no field may be used"
            ))
        })
}

pub fn snapshot_at(
    opened: &Opened,
    purpose: &Purpose,
    cutoff: Timestamp,
    position: Option<u64>,
    quiet: bool,
) -> CliResult<Snapshot> {
    let bar = progress::bar(None, "", quiet);
    bar.set_message("reading the ledger");
    let snapshot = Snapshot::build(
        &opened.ledger,
        purpose,
        cutoff,
        position.map(LedgerPosition),
    );
    bar.finish_and_clear();
    snapshot.map_err(|error| match error {
        IndexError::PositionBeyondHead { .. } => bad_input(error),
        other => anyhow::Error::from(other).into(),
    })
}

fn chosen_fields(args: &GateArgs, allowed: &[String], purpose: &Purpose) -> CliResult<Vec<String>> {
    let Some(requested) = &args.fields else {
        return Ok(allowed.to_vec());
    };
    let mut fields: Vec<String> = Vec::with_capacity(requested.len());
    for field in requested.iter().map(|field| field.trim()) {
        if field.is_empty() || field == args.id_column || fields.iter().any(|f| f == field) {
            continue;
        }
        if !allowed.iter().any(|allowed| allowed == field) {
            return Err(gate_error(GateError::FieldNotAllowed {
                field: field.to_string(),
                purpose: purpose.to_string(),
                allowed: allowed.join(", "),
            }));
        }
        fields.push(field.to_string());
    }
    Ok(fields)
}

fn dataset_id(purpose: &Purpose, now: Timestamp) -> CliResult<String> {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random)
        .map_err(|error| anyhow::anyhow!("no randomness from the OS: {error}"))?;
    let stamp: String = now
        .to_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(15)
        .collect();
    Ok(format!("{purpose}-{stamp}Z-{}", hex::encode(random)))
}

pub fn run(data_dir: &DataDir, args: &GateArgs, quiet: bool) -> CliResult {
    print_json(&build(data_dir, args, quiet)?)
}

/// Builds the dataset (or, with `--no-consent`, the plain copy) and returns the summary
/// `run` prints.
pub fn build(data_dir: &DataDir, args: &GateArgs, quiet: bool) -> CliResult<serde_json::Value> {
    let started = Instant::now();
    let opened = open_data_dir(data_dir)?;
    let now = opened.clock.now();
    let cutoff = past_cutoff(&args.cutoff, now)?;
    let policies = policy_history(&opened.ledger)?;
    let purpose = known_purpose(&policies, &args.purpose)?;
    let allowed = allowed_fields(&policies, &purpose, cutoff)?;
    let fields = chosen_fields(args, &allowed, &purpose)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let plan = GatePlan::new(GateRequest {
        inputs: args.input.clone(),
        output_dir: args.output.clone(),
        fields: fields.clone(),
        id_column: args.id_column.clone(),
        jurisdiction_column: args.jurisdiction_column.clone(),
        format: args.format.map(|format| match format {
            DatasetFormat::Parquet => FileFormat::Parquet,
            DatasetFormat::Jsonl => FileFormat::JsonLines,
        }),
        strict: args.strict,
        threads: threads.max(1),
    })
    .map_err(gate_error)?;
    if args.no_consent {
        return plain_copy(&plan, started, quiet);
    }
    // The inputs' digests need no snapshot: they are taken on the other core meanwhile,
    // until the snapshot is ready; the workers finish them.
    let snapshot_ready = AtomicBool::new(false);
    let (snapshot, digested) = std::thread::scope(|scope| {
        let digests = scope.spawn(|| plan.digest_inputs_until(&snapshot_ready));
        let snapshot = snapshot_at(&opened, &purpose, cutoff, args.position, quiet);
        snapshot_ready.store(true, Ordering::Relaxed);
        let digested = digests.join().unwrap_or(Err(GateError::WorkerPanicked));
        (snapshot, digested)
    });
    let snapshot = snapshot?;
    digested.map_err(gate_error)?;
    let filter = ConsentFilter::new(&snapshot);
    let bar = progress::bar(plan.rows_total(), "rows", quiet);
    bar.set_message("gating");
    let built = plan.run(&Enforcement::Consent(&filter), &|rows| bar.inc(rows));
    bar.finish_and_clear();
    let mut built = built.map_err(gate_error)?;

    let (members, members_path) =
        write_member_set(&args.output, &built.included).map_err(gate_error)?;
    built.track(members_path);
    let before_deadline = pending_deadlines(&policies, &purpose, cutoff);
    let counts = CountsRecord {
        rows_in: built.counts.rows_in(),
        rows_kept: built.counts.kept(),
        duplicate_rows_kept: built.duplicate_rows_kept(),
        dropped: built.counts.dropped_by_reason(),
    };
    let mut manifest = DatasetManifest {
        format: MANIFEST_FORMAT.into(),
        dataset_id: dataset_id(&purpose, now)?,
        purpose: purpose.clone(),
        snapshot: SnapshotReference {
            cutoff,
            position: snapshot.position,
            ledger_hash: snapshot.head_hash,
            policy_version: snapshot.policy_version,
        },
        before_deadline: before_deadline.clone(),
        fields,
        id_column: args.id_column.clone(),
        jurisdiction_column: args.jurisdiction_column.clone(),
        output_format: plan.output_format(),
        inputs: built.inputs.clone(),
        outputs: built
            .parts
            .iter()
            .map(|part| OutputRecord {
                name: part.name.clone(),
                rows: part.rows,
                bytes: part.bytes,
                sha256: part.sha256.clone(),
            })
            .collect(),
        members: members.clone(),
        counts: counts.clone(),
        created_at: now,
        public_key: opened.signer.public_key(),
        signature: String::new(),
    };
    manifest.sign(&opened.signer);
    let pending = PendingManifest::write(&args.output, manifest).map_err(gate_error)?;
    let record = DatasetRecord {
        dataset_id: pending.manifest.dataset_id.clone(),
        purpose: purpose.clone(),
        cutoff,
        snapshot_position: snapshot.position,
        manifest_sha256: pending.sha256.clone(),
        rows_written: built.rows_written(),
        members_included: members.members,
    };
    let appended = match opened.ledger.append(vec![NewEvent::Dataset(record)]) {
        Ok(appended) => appended,
        Err(error) => {
            pending.discard();
            return Err(CliError::from(error));
        }
    };
    let manifest_sha256 = pending.sha256.clone();
    let dataset_id = pending.manifest.dataset_id.clone();
    let outputs = pending.manifest.outputs.clone();
    let manifest_path = pending.publish().map_err(gate_error)?;
    built.keep();
    if !before_deadline.is_empty() {
        eprintln!(
            "note: the cutoff {cutoff} is before the opt-out deadline of {}: the default does not count there yet, so only members who opted in were kept",
            before_deadline
                .iter()
                .map(|pending| format!("{} ({})", pending.jurisdictions, pending.deadline))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "dataset_id": dataset_id,
        "output": args.output,
        "manifest": manifest_path,
        "manifest_sha256": manifest_sha256,
        "ledger_position": appended.first().map(|appended| appended.event.position()),
        "purpose": purpose,
        "snapshot": {
            "cutoff": cutoff,
            "position": snapshot.position,
            "ledger_hash": snapshot.head_hash,
            "policy_version": snapshot.policy_version,
        },
        "before_deadline": before_deadline,
        "counts": counts,
        "members_included": members_summary(&members),
        "outputs": outputs,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "rows_per_second": rows_per_second(counts.rows_in, seconds),
    }))
}

fn members_summary(members: &MemberSetRecord) -> serde_json::Value {
    json!({ "members": members.members, "file": members.name, "sha256": members.sha256 })
}

fn rows_per_second(rows: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (rows as f64 / seconds) as u64
    } else {
        0
    }
}

/// `--no-consent`: the same read and write path with every row kept, for benchmarks.
fn plain_copy(plan: &GatePlan, started: Instant, quiet: bool) -> CliResult<serde_json::Value> {
    let bar = progress::bar(plan.rows_total(), "rows", quiet);
    bar.set_message("copying");
    let built = plan.run(&Enforcement::PlainCopy, &|rows| bar.inc(rows));
    bar.finish_and_clear();
    let built = built.map_err(gate_error)?;
    let rows = built.rows_written();
    let outputs: Vec<_> = built
        .parts
        .iter()
        .map(|part| json!({ "name": part.name, "rows": part.rows, "bytes": part.bytes }))
        .collect();
    built.keep();
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "plain_copy": true,
        "output": plan.request().output_dir,
        "rows_written": rows,
        "outputs": outputs,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "rows_per_second": rows_per_second(rows, seconds),
    }))
}
