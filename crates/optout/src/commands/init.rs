//! `optout init`: a new data directory with a signing key and the first policy version.

use std::path::Path;

use optout_core::PolicyDocument;
use optout_store::Ledger;
use serde_json::json;

use crate::commands::policy::{append_policy, read_policy_file};
use crate::commands::print_json;
use crate::data_dir::DataDir;
use crate::exit::{bad_input, CliResult};

pub fn run(data_dir: &DataDir, policy_file: Option<&Path>) -> CliResult {
    // Validate the policy before creating anything, so bad input changes nothing.
    let document = match policy_file {
        Some(path) => read_policy_file(path)?,
        None => PolicyDocument::default_policy(),
    };
    let opened = data_dir.create().map_err(bad_input)?;
    let appended = append_policy(&opened.ledger, &document)?;
    let head = opened.ledger.head()?;
    print_json(&json!({
        "data_dir": data_dir.path(),
        "public_key": opened.signer.public_key(),
        "policy_version": document.version,
        "policy_position": appended,
        "head": head,
    }))
}
