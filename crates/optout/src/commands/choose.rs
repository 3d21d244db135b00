//! `optout choose`: record a member's choice and print its signed receipt.
//!
//! The hidden `--repeat`/`--concurrency` flags append many choices and print each receipt
//! the moment it is durable; the crash tests kill this process at random and then check
//! that every printed receipt is in the ledger.

use std::io::Write;
use std::sync::Mutex;

use optout_core::event::Actor;
use optout_core::{ChoiceRecord, MemberId, PolicyHistory, Purpose, Receipt, Source};
use optout_store::{policy_history, ChoiceTime, Ledger, NewEvent};

use crate::cli::{ChooseArgs, Decision};
use crate::commands::{known_purpose, open_data_dir, parse_jurisdiction, parse_member, print_json};
use crate::data_dir::{DataDir, Opened};
use crate::exit::{CliResult, Context};

pub fn run(data_dir: &DataDir, args: &ChooseArgs) -> CliResult {
    let member = parse_member(&args.member)?;
    let source: Source = args.source.parse().context_bad_input("--source")?;
    let actor = match &args.actor {
        Some(actor) => Actor::new(actor).context_bad_input("--actor")?,
        None => default_actor()?,
    };
    let jurisdiction = parse_jurisdiction(args.jurisdiction.as_deref())?;
    let opened = open_data_dir(data_dir)?;
    let policies = policy_history(&opened.ledger)?;
    let purpose = known_purpose(&policies, &args.purpose)?;
    let template = ChoiceRecord {
        member,
        purpose: purpose.clone(),
        allowed: args.decision == Decision::Allow,
        at: opened.clock.now(),
        source,
        actor,
        policy_version: None,
        notice_version: None,
        notice_language: None,
        jurisdiction,
        idempotency_key: args.idempotency_key.clone(),
    };
    let template = with_notice(template, &policies, &purpose, &opened);
    if args.repeat <= 1 {
        let receipt = append_one(&opened, template)?;
        return print_json(&receipt);
    }
    repeat(&opened, &template, args.repeat, args.concurrency.max(1))
}

fn default_actor() -> CliResult<Actor> {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    Actor::new(&format!("admin:{user}")).context_bad_input("$USER")
}

/// Records which policy version and notice were in force when the choice was made.
fn with_notice(
    mut choice: ChoiceRecord,
    policies: &PolicyHistory,
    purpose: &Purpose,
    opened: &Opened,
) -> ChoiceRecord {
    if let Some(policy) = policies.in_force_at(opened.clock.now()) {
        choice.policy_version = Some(policy.version);
        if let Some(purpose_policy) = policy.purpose(purpose) {
            choice.notice_version = Some(purpose_policy.notice.version.clone());
            choice.notice_language = Some(purpose_policy.notice.language.clone());
        }
    }
    choice
}

fn append_one(opened: &Opened, choice: ChoiceRecord) -> CliResult<Receipt> {
    let appended = opened.ledger.append(vec![NewEvent::Choice {
        choice,
        time: ChoiceTime::Now,
    }])?;
    appended
        .first()
        .and_then(|appended| Receipt::for_event(&appended.event, &opened.signer))
        .ok_or_else(|| anyhow::anyhow!("the ledger returned no choice event").into())
}

fn repeat(opened: &Opened, template: &ChoiceRecord, count: u64, threads: u64) -> CliResult {
    let stdout = Mutex::new(std::io::stdout());
    let first_member = template.member.get();
    std::thread::scope(|scope| -> CliResult {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let stdout = &stdout;
                scope.spawn(move || -> CliResult {
                    let mut index = thread;
                    while index < count {
                        let mut choice = template.clone();
                        choice.member = MemberId(first_member.wrapping_add(index));
                        choice.allowed = index % 3 != 0;
                        choice.idempotency_key = None;
                        let receipt = append_one(opened, choice)?;
                        let line = serde_json::to_string(&receipt).map_err(anyhow::Error::from)?;
                        let mut out = stdout
                            .lock()
                            .map_err(|_| anyhow::anyhow!("stdout lock poisoned"))?;
                        writeln!(out, "{line}").map_err(anyhow::Error::from)?;
                        out.flush().map_err(anyhow::Error::from)?;
                        index += threads;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("an appending thread panicked"))??;
        }
        Ok(())
    })
}
