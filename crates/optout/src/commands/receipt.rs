//! `optout receipt verify`: check a receipt's signature against the ledger's public key.

use std::path::Path;

use optout_core::Receipt;
use serde_json::json;

use crate::commands::{print_json, read_public_key};
use crate::exit::{check_failed, CliResult, Context};

pub fn verify(path: &Path, key: &str) -> CliResult {
    let key = read_public_key(key)?;
    let text = std::fs::read_to_string(path)
        .context_bad_input(format!("cannot read receipt {}", path.display()))?;
    let receipt: Receipt = serde_json::from_str(&text)
        .context_bad_input(format!("{} is not a receipt", path.display()))?;
    receipt.verify(Some(&key)).map_err(|error| {
        check_failed(anyhow::anyhow!(
            "receipt {} does not verify: {error}",
            path.display()
        ))
    })?;
    print_json(&json!({
        "valid": true,
        "position": receipt.position,
        "member": receipt.member,
        "purpose": receipt.purpose,
        "allowed": receipt.allowed,
        "at": receipt.at,
    }))
}
