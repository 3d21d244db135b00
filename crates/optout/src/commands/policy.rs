//! `optout policy load|show`: validate a policy file and append it as the next version.

use std::path::Path;

use optout_core::{LedgerPosition, PolicyDocument, PolicyRecord};
use optout_store::{policy_history, Ledger, NewEvent};
use serde_json::json;

use crate::commands::{open_data_dir, open_data_dir_read_only, print_json};
use crate::data_dir::DataDir;
use crate::exit::{CliResult, Context};

pub fn read_policy_file(path: &Path) -> CliResult<PolicyDocument> {
    let text = std::fs::read_to_string(path)
        .context_bad_input(format!("cannot read policy file {}", path.display()))?;
    PolicyDocument::parse(&text, &path.display().to_string()).context_bad_input("invalid policy")
}

pub fn append_policy(ledger: &dyn Ledger, document: &PolicyDocument) -> CliResult<LedgerPosition> {
    let appended = ledger.append(vec![NewEvent::Policy(PolicyRecord {
        version: document.version,
        effective_from: document.effective_from,
        document: document.text.clone(),
    })])?;
    appended
        .first()
        .map(|appended| appended.event.position())
        .ok_or_else(|| anyhow::anyhow!("the ledger appended nothing").into())
}

pub fn load(data_dir: &DataDir, file: &Path) -> CliResult {
    let document = read_policy_file(file)?;
    let opened = open_data_dir(data_dir)?;
    let history = policy_history(&opened.ledger)?;
    history
        .check_next(&document)
        .context_bad_input(format!("cannot load {}", file.display()))?;
    let position = append_policy(&opened.ledger, &document)?;
    print_json(&json!({
        "policy_version": document.version,
        "effective_from": document.effective_from,
        "position": position,
        "purposes": document.purposes.keys().collect::<Vec<_>>(),
    }))
}

pub fn show(data_dir: &DataDir) -> CliResult {
    let opened = open_data_dir_read_only(data_dir)?;
    let history = policy_history(&opened.ledger)?;
    for version in history.versions() {
        let purposes: Vec<_> = version
            .purposes
            .values()
            .map(|purpose| {
                json!({
                    "purpose": purpose.purpose,
                    "title": purpose.title,
                    "default": purpose.default_rule.mode(),
                    "rules": purpose.rules.iter().map(|(code, rule)| (code.to_string(), rule.mode())).collect::<std::collections::BTreeMap<_, _>>(),
                    "allowed_fields": purpose.allowed_fields,
                })
            })
            .collect();
        print_json(&json!({
            "version": version.version,
            "effective_from": version.effective_from,
            "purposes": purposes,
        }))?;
    }
    Ok(())
}
