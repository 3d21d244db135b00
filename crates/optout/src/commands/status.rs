//! `optout status`: a member's effective consent for a purpose, at a time, with the reason.

use optout_core::consent::decide_from_history;
use optout_core::{LedgerPosition, Timestamp};
use optout_store::{member_history, policy_history, Ledger};
use serde_json::json;

use crate::cli::StatusArgs;
use crate::commands::{
    known_purpose, open_data_dir_read_only, parse_jurisdiction, parse_member, print_json,
};
use crate::data_dir::DataDir;
use crate::exit::{CliResult, Context};

pub fn run(data_dir: &DataDir, args: &StatusArgs) -> CliResult {
    let member = parse_member(&args.member)?;
    let jurisdiction = parse_jurisdiction(args.jurisdiction.as_deref())?;
    let at = args
        .at
        .as_deref()
        .map(Timestamp::parse_rfc3339)
        .transpose()
        .context_bad_input("--at")?;
    let opened = open_data_dir_read_only(data_dir)?;
    let at = at.unwrap_or_else(|| opened.clock.now());
    let policies = policy_history(&opened.ledger)?;
    let purpose = known_purpose(&policies, &args.purpose)?;
    let choices = member_history(&opened.ledger, member, &purpose, LedgerPosition(u64::MAX))?;
    let decision = decide_from_history(&policies, &purpose, jurisdiction, at, &choices);
    let head = opened.ledger.head()?;
    print_json(&json!({
        "member": member,
        "purpose": purpose,
        "jurisdiction": jurisdiction,
        "at": at,
        "allowed": decision.allowed,
        "reason": decision.reason.name(),
        "detail": decision.reason,
        "policy_version": decision.policy_version,
        "explicit_choices": choices.len(),
        "ledger_position": head.map(|head| head.position),
    }))
}
