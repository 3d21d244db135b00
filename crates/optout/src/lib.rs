//! The `optout` binary's library: command-line parsing, the data directory, and one module
//! per command. Commands print JSON on stdout for other tools and tests to read, human
//! messages and progress on stderr, and exit 0 (ok), 1 (a check failed) or 2 (bad usage or
//! bad input, with a message saying what and where).

pub mod cli;
pub mod commands;
pub mod data_dir;
pub mod exit;
pub mod ledger_store;
pub mod progress;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command, and maps its outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(exit::EXIT_BAD_INPUT),
            };
        }
    };
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("optout: {}", error.display_chain());
            ExitCode::from(error.code)
        }
    }
}
