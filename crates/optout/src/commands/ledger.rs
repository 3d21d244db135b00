//! `optout ledger verify|checkpoint|export`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use optout_core::Checkpoint;
use optout_store::{export_ledger, verify_export, verify_ledger, Ledger};
use serde_json::json;

use crate::cli::VerifyArgs;
use crate::commands::{open_data_dir_read_only, print_json, read_public_key};
use crate::data_dir::{sync_parent, temporary_name, DataDir};
use crate::exit::{check_failed, CliResult, Context};
use crate::progress;

pub fn verify(data_dir: &DataDir, args: &VerifyArgs, quiet: bool) -> CliResult {
    if let Some(export) = &args.export {
        return verify_export_file(export, args, quiet);
    }
    let opened = open_data_dir_read_only(data_dir)?;
    let total = opened.ledger.head()?.map(|head| head.position.get());
    let bar = progress::bar(total, "events", quiet);
    bar.set_message("verifying");
    let result = verify_ledger(&opened.ledger, |checked| bar.set_position(checked));
    bar.finish_and_clear();
    match result {
        Ok(head) => print_json(
            &json!({ "verified": true, "events": head.map_or(0, |h| h.position.get()), "head": head }),
        ),
        Err(error) => Err(check_failed(anyhow::Error::from(error))),
    }
}

fn verify_export_file(export: &Path, args: &VerifyArgs, quiet: bool) -> CliResult {
    let checkpoint = args
        .checkpoint
        .as_deref()
        .map(|path| -> CliResult<Checkpoint> {
            let text = std::fs::read_to_string(path)
                .context_bad_input(format!("cannot read checkpoint {}", path.display()))?;
            serde_json::from_str(&text)
                .context_bad_input(format!("{} is not a checkpoint", path.display()))
        })
        .transpose()?;
    let key = args.key.as_deref().map(read_public_key).transpose()?;
    let file =
        File::open(export).context_bad_input(format!("cannot open export {}", export.display()))?;
    let bar = progress::bar(None, "events", quiet);
    bar.set_message("verifying export");
    let result = verify_export(
        &mut BufReader::with_capacity(1 << 20, file),
        checkpoint.as_ref(),
        key.as_ref(),
        |lines| bar.set_position(lines),
    );
    bar.finish_and_clear();
    match result {
        Ok(head) => print_json(&json!({
            "verified": true,
            "export": export,
            "events": head.map_or(0, |h| h.position.get()),
            "head": head,
            "checkpoint": checkpoint.map(|c| c.position),
        })),
        Err(error) => Err(check_failed(anyhow::anyhow!(
            "{}: {error}",
            export.display()
        ))),
    }
}

pub fn checkpoint(data_dir: &DataDir) -> CliResult {
    let opened = open_data_dir_read_only(data_dir)?;
    let head = opened.ledger.head()?.ok_or_else(|| {
        check_failed(anyhow::anyhow!(
            "the ledger is empty: nothing to checkpoint"
        ))
    })?;
    let checkpoint = Checkpoint::sign(head.position, head.hash, opened.clock.now(), &opened.signer);
    print_json(&checkpoint)
}

pub fn export(data_dir: &DataDir, path: &Path, quiet: bool) -> CliResult {
    let opened = open_data_dir_read_only(data_dir)?;
    let total = opened.ledger.head()?.map(|head| head.position.get());
    let temporary = temporary_name(path);
    let file = File::create(&temporary)
        .context_bad_input(format!("cannot create {}", temporary.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let bar = progress::bar(total, "events", quiet);
    bar.set_message("exporting");
    let written = export_ledger(&opened.ledger, &mut out, |count| bar.set_position(count));
    bar.finish_and_clear();
    let finish = written.map_err(anyhow::Error::from).and_then(|head| {
        out.flush()?;
        let file = out.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        sync_parent(path);
        Ok(head)
    });
    match finish {
        Ok(head) => print_json(
            &json!({ "export": path, "events": head.map_or(0, |h| h.position.get()), "head": head }),
        ),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error
                .context(format!("cannot export to {}", path.display()))
                .into())
        }
    }
}
