//! `optout import`: historical choices from Parquet, CSV or JSON Lines.
//!
//! Two passes: the first validates every row of every file and reports each invalid one
//! with its file, row and reason; if any is invalid nothing is imported (unless
//! `--skip-invalid`). The second appends the valid rows in file order, keeping their
//! original times, in large durable batches.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use optout_core::event::Actor;
use optout_core::{ChoiceRecord, PolicyHistory, Purpose};
use optout_import::{
    read_choices, validate_choices, Format, ImportedChoice, InvalidRow, ReadError,
};
use optout_store::{policy_history, ChoiceTime, Ledger, NewEvent, StoreError};
use serde_json::json;

use crate::cli::{ImportArgs, ImportFormat};
use crate::commands::{open_data_dir, print_json};
use crate::data_dir::DataDir;
use crate::exit::{bad_input, CliError, CliResult};
use crate::progress;

/// Invalid rows printed before the rest are only counted.
const INVALID_ROWS_SHOWN_MAX: usize = 20;
/// Rows appended per durable transaction.
const IMPORT_BATCH_ROWS: usize = 50_000;

pub fn run(data_dir: &DataDir, args: &ImportArgs, quiet: bool) -> CliResult {
    let files = args
        .files
        .iter()
        .map(|path| Ok((path.clone(), file_format(path, args.format)?)))
        .collect::<CliResult<Vec<(PathBuf, Format)>>>()?;
    let opened = open_data_dir(data_dir)?;
    let policies = policy_history(&opened.ledger)?;
    let known: BTreeSet<Purpose> = policies.defined_purposes().into_iter().cloned().collect();

    let (valid_rows, invalid) = validate_all(&files, &known, quiet)?;
    if !invalid.rows.is_empty() || invalid.more > 0 {
        for row in &invalid.rows {
            eprintln!("invalid: {row}");
        }
        if invalid.more > 0 {
            eprintln!("invalid: … and {} more rows", invalid.more);
        }
        let count = invalid.rows.len() + invalid.more;
        if !args.skip_invalid {
            return Err(bad_input(anyhow::anyhow!(
                "{count} invalid rows; nothing was imported (fix them, or pass --skip-invalid to import the {valid_rows} valid rows)"
            )));
        }
    }

    let bar = progress::bar(Some(valid_rows), "rows", quiet);
    bar.set_message("importing");
    let mut imported = 0u64;
    let mut first_position = None;
    let mut last_position = None;
    for (path, format) in &files {
        let actor = import_actor(path)?;
        let result = read_choices(
            path,
            *format,
            &known,
            IMPORT_BATCH_ROWS,
            |batch: Vec<ImportedChoice>| -> Result<(), StoreError> {
                let count = batch.len() as u64;
                let events = batch
                    .into_iter()
                    .map(|row| to_event(row, &policies, &actor))
                    .collect();
                let appended = opened.ledger.append(events)?;
                if let (Some(first), Some(last)) = (appended.first(), appended.last()) {
                    first_position.get_or_insert(first.event.position());
                    last_position = Some(last.event.position());
                }
                imported += count;
                bar.set_position(imported);
                Ok(())
            },
            |_: InvalidRow| {},
        );
        match result {
            Ok(_) => {}
            Err(ReadError::Import(error)) => return Err(bad_input(error)),
            Err(ReadError::Callback(error)) => {
                return Err(CliError::from(error));
            }
        }
    }
    bar.finish_and_clear();
    print_json(&json!({
        "imported": imported,
        "skipped_invalid": invalid.rows.len() + invalid.more,
        "first_position": first_position,
        "last_position": last_position,
        "head": opened.ledger.head()?,
    }))
}

fn file_format(path: &Path, given: Option<ImportFormat>) -> CliResult<Format> {
    match given {
        Some(ImportFormat::Parquet) => Ok(Format::Parquet),
        Some(ImportFormat::Csv) => Ok(Format::Csv),
        Some(ImportFormat::Jsonl) => Ok(Format::JsonLines),
        None => Format::from_path(path).map_err(bad_input),
    }
}

#[derive(Default)]
struct InvalidRows {
    rows: Vec<InvalidRow>,
    more: usize,
}

/// The first pass: counts valid rows and collects the invalid ones.
fn validate_all(
    files: &[(PathBuf, Format)],
    known: &BTreeSet<Purpose>,
    quiet: bool,
) -> CliResult<(u64, InvalidRows)> {
    let bar = progress::bar(None, "files", quiet);
    bar.set_message("validating");
    let mut invalid = InvalidRows::default();
    let mut valid_rows = 0u64;
    for (path, format) in files {
        let summary = validate_choices(path, *format, known, |row| {
            if invalid.rows.len() < INVALID_ROWS_SHOWN_MAX {
                invalid.rows.push(row);
            } else {
                invalid.more += 1;
            }
        })
        .map_err(bad_input)?;
        valid_rows += summary.rows_valid;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((valid_rows, invalid))
}

fn import_actor(path: &Path) -> CliResult<Actor> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    Actor::new(&format!("import:{name}")).map_err(bad_input)
}

fn to_event(row: ImportedChoice, policies: &PolicyHistory, actor: &Actor) -> NewEvent {
    NewEvent::Choice {
        choice: ChoiceRecord {
            member: row.member,
            purpose: row.purpose,
            allowed: row.allowed,
            at: row.at,
            source: row.source,
            actor: actor.clone(),
            // The policy in force when the choice was made; which notice the member saw
            // then is not known to an import, so none is claimed.
            policy_version: policies.in_force_at(row.at).map(|policy| policy.version),
            notice_version: None,
            notice_language: None,
            jurisdiction: None,
            idempotency_key: None,
        },
        time: ChoiceTime::At(row.at),
    }
}
