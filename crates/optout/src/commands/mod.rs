//! One module per command; `dispatch` routes the parsed command line to it.

pub mod choose;
pub mod demo;
pub mod gate;
pub mod import;
pub mod init;
pub mod ledger;
pub mod policy;
pub mod receipt;
pub mod serve;
pub mod snapshot;
pub mod status;
pub mod token;
pub mod verify;

use std::path::Path;

use optout_core::{Jurisdiction, MemberId, PolicyHistory, PublicKey, Purpose};
use serde::Serialize;

use crate::cli::{Cli, Command, LedgerCommand, PolicyCommand, ReceiptCommand, SnapshotCommand};
use crate::data_dir::{DataDir, Opened};
use crate::exit::{bad_input, CliResult, Context};

pub fn dispatch(cli: Cli) -> CliResult {
    let data_dir = match &cli.ledger {
        None => DataDir::new(&cli.data_dir),
        Some(url) => {
            DataDir::with_postgres(&cli.data_dir, url, &cli.ledger_schema).map_err(bad_input)?
        }
    };
    let quiet = cli.quiet;
    match cli.command {
        Command::Init { policy } => init::run(&data_dir, policy.as_deref()),
        Command::Policy(PolicyCommand::Load { file }) => policy::load(&data_dir, &file),
        Command::Policy(PolicyCommand::Show) => policy::show(&data_dir),
        Command::Choose(args) => choose::run(&data_dir, &args),
        Command::Status(args) => status::run(&data_dir, &args),
        Command::Import(args) => import::run(&data_dir, &args, quiet),
        Command::Ledger(LedgerCommand::Verify(args)) => ledger::verify(&data_dir, &args, quiet),
        Command::Ledger(LedgerCommand::Checkpoint) => ledger::checkpoint(&data_dir),
        Command::Ledger(LedgerCommand::Export { file }) => ledger::export(&data_dir, &file, quiet),
        Command::Receipt(ReceiptCommand::Verify { receipt, key }) => {
            receipt::verify(&receipt, &key)
        }
        Command::Snapshot(SnapshotCommand::Export {
            target,
            format,
            out,
        }) => snapshot::export(&data_dir, &target, format, &out, quiet),
        Command::Snapshot(SnapshotCommand::Checkpoint { target }) => {
            snapshot::checkpoint(&data_dir, &target, quiet)
        }
        Command::Snapshot(SnapshotCommand::Show {
            dir,
            purpose,
            cutoff,
            position,
        }) => snapshot::show(&data_dir, dir.as_deref(), purpose, cutoff, position),
        Command::Demo(args) => demo::run(&args, quiet),
        Command::Gate(args) => gate::run(&data_dir, &args, quiet),
        Command::Verify(args) => verify::run(&data_dir, &args, quiet),
        Command::Serve(args) => serve::run(&data_dir, &args),
        Command::Token(command) => token::run(&data_dir, &command),
    }
}

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &impl Serialize) -> CliResult {
    let text = serde_json::to_string(value).map_err(anyhow::Error::from)?;
    println!("{text}");
    Ok(())
}

/// Prints a value as indented JSON on stdout.
pub fn print_json_pretty(value: &impl Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?;
    println!("{text}");
    Ok(())
}

/// Opens the data directory; a directory that was never initialized is bad usage (exit 2).
pub fn open_data_dir(data_dir: &DataDir) -> CliResult<Opened> {
    if !data_dir.is_initialized() {
        return Err(bad_input(data_dir.not_initialized()));
    }
    Ok(data_dir.open()?)
}

/// [`open_data_dir`] for commands that only read the ledger (no writer lock on PostgreSQL).
pub fn open_data_dir_read_only(data_dir: &DataDir) -> CliResult<Opened> {
    if !data_dir.is_initialized() {
        return Err(bad_input(data_dir.not_initialized()));
    }
    Ok(data_dir.open_read_only()?)
}

/// An optional `--jurisdiction` value.
pub fn parse_jurisdiction(text: Option<&str>) -> CliResult<Option<Jurisdiction>> {
    text.map(Jurisdiction::parse)
        .transpose()
        .context_bad_input("--jurisdiction")
}

pub fn parse_member(text: &str) -> CliResult<MemberId> {
    text.parse::<MemberId>().context_bad_input("MEMBER")
}

/// A purpose name that some recorded policy version defines.
pub fn known_purpose(policies: &PolicyHistory, name: &str) -> CliResult<Purpose> {
    let purpose = Purpose::new(name).context_bad_input("PURPOSE")?;
    let defined = policies.defined_purposes();
    if !defined.contains(&purpose) {
        let known: Vec<String> = defined.into_iter().map(Purpose::to_string).collect();
        return Err(bad_input(anyhow::anyhow!(
            "unknown purpose \"{purpose}\": the policy defines {}",
            known.join(", ")
        )));
    }
    Ok(purpose)
}

/// A public key given as hex or as the path of a file holding it.
pub fn read_public_key(argument: &str) -> CliResult<PublicKey> {
    let path = Path::new(argument);
    let text = if path.is_file() {
        std::fs::read_to_string(path)
            .context_bad_input(format!("cannot read key file {}", path.display()))?
    } else {
        argument.to_string()
    };
    text.trim()
        .parse::<PublicKey>()
        .context_bad_input(format!("--key {argument:?}"))
}
