//! `optout demo`: walks through the ledger on the embedded store. It creates (or reuses)
//! a data directory, records a deterministic population's choices, checks a few members'
//! consent, issues and verifies a receipt, and verifies the whole chain.

use optout_core::consent::decide_from_history;
use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Jurisdiction, LedgerPosition, MemberId, PolicyDocument, Purpose, Receipt, Source,
    Timestamp,
};
use optout_store::{member_history, policy_history, verify_ledger, ChoiceTime, Ledger, NewEvent};

use crate::cli::DemoArgs;
use crate::commands::policy::append_policy;
use crate::data_dir::DataDir;
use crate::exit::CliResult;
use crate::progress;

/// splitmix64: a deterministic stream, so every run generates the same population.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

const COUNTRIES: [&str; 10] = ["US", "IN", "BR", "DE", "FR", "GB", "CA", "CH", "JP", "NG"];

fn country_of(member: u64) -> Jurisdiction {
    let index = (member % COUNTRIES.len() as u64) as usize;
    Jurisdiction::parse(COUNTRIES.get(index).copied().unwrap_or("US"))
        .unwrap_or_else(|_| unreachable!("static codes are valid"))
}

pub fn run(args: &DemoArgs, quiet: bool) -> CliResult {
    let data_dir = DataDir::new(&args.dir);
    let fresh = !data_dir.is_initialized();
    let opened = if fresh {
        data_dir.create()?
    } else {
        data_dir.open()?
    };
    let ledger = &opened.ledger;
    println!("optout demo — data directory {}", args.dir.display());
    if fresh {
        let position = append_policy(ledger, &PolicyDocument::default_policy())?;
        println!(
            "  created it with a new signing key; default policy recorded at position {position}"
        );
        generate(ledger, args.members, quiet)?;
    } else {
        println!("  reusing it (delete the directory to start over)");
    }
    let policies = policy_history(ledger)?;
    let purpose = Purpose::new("ai_training").map_err(anyhow::Error::from)?;
    let head = ledger.head()?;
    println!(
        "  ledger head: position {}",
        head.map_or(0, |h| h.position.get())
    );

    println!("\nEffective consent for ai_training:");
    let moments = [
        ("2023-10-20T00:00:00Z", "before the deadline"),
        ("2023-11-01T00:00:00Z", "after the deadline"),
    ];
    for member in [1u64, 2, 4, 6, 8] {
        let jurisdiction = country_of(member);
        let choices = member_history(ledger, MemberId(member), &purpose, LedgerPosition(u64::MAX))?;
        for (time, label) in moments {
            let at = Timestamp::parse_rfc3339(time).map_err(anyhow::Error::from)?;
            let decision =
                decide_from_history(&policies, &purpose, Some(jurisdiction), at, &choices);
            println!(
                "  member {member} ({jurisdiction}), {label:<19}: {:<11} ({})",
                if decision.allowed {
                    "allowed"
                } else {
                    "not allowed"
                },
                decision.reason.name()
            );
        }
    }

    println!("\nMember 42 turns the setting off:");
    let choice = NewEvent::Choice {
        choice: ChoiceRecord {
            member: MemberId(42),
            purpose: purpose.clone(),
            allowed: false,
            at: opened.clock.now(),
            source: Source::Web,
            actor: Actor::member(),
            policy_version: policies.latest().map(|policy| policy.version),
            notice_version: None,
            notice_language: None,
            jurisdiction: Some(country_of(42)),
            idempotency_key: None,
        },
        time: ChoiceTime::Now,
    };
    let appended = ledger.append(vec![choice])?;
    let receipt = appended
        .first()
        .and_then(|appended| Receipt::for_event(&appended.event, &opened.signer))
        .ok_or_else(|| anyhow::anyhow!("no receipt"))?;
    println!(
        "  receipt: {}",
        serde_json::to_string_pretty(&receipt).map_err(anyhow::Error::from)?
    );
    receipt
        .verify(Some(&opened.signer.public_key()))
        .map_err(anyhow::Error::from)?;
    println!(
        "  the receipt's signature verifies with {}",
        data_dir.path().join("signing.pub").display()
    );

    let bar = progress::bar(ledger.head()?.map(|h| h.position.get()), "events", quiet);
    bar.set_message("verifying");
    let verified =
        verify_ledger(ledger, |count| bar.set_position(count)).map_err(anyhow::Error::from)?;
    bar.finish_and_clear();
    println!(
        "\nLedger verified: {} events, head hash {}",
        verified.map_or(0, |h| h.position.get()),
        verified.map(|h| h.hash.to_hex()).unwrap_or_default()
    );
    let dir = args.dir.display();
    println!("\nTry next:");
    println!("  optout --data-dir {dir} status 1 --purpose ai_training --jurisdiction US");
    println!("  optout --data-dir {dir} choose 7 ai_training deny");
    println!("  optout --data-dir {dir} ledger checkpoint > cp.json && optout --data-dir {dir} ledger export ledger.jsonl");
    println!("  optout ledger verify --export ledger.jsonl --checkpoint cp.json");
    Ok(())
}

/// A deterministic population: most members never choose; some opt out (a rush in the
/// last days before the deadline), a few flip, opt-in jurisdictions mostly stay off.
fn generate(ledger: &dyn Ledger, members: u64, quiet: bool) -> CliResult {
    let purpose = Purpose::new("ai_training").map_err(anyhow::Error::from)?;
    let notified = Timestamp::parse_rfc3339("2023-10-16T00:00:00Z").map_err(anyhow::Error::from)?;
    let deadline = Timestamp::parse_rfc3339("2023-10-30T00:00:00Z").map_err(anyhow::Error::from)?;
    let day = 86_400_000_000i64;
    let mut random = Sequence(42);
    let mut events = Vec::new();
    for member in 1..=members {
        let roll = random.below(100);
        let opt_in_region = matches!(country_of(member).as_str(), "DE" | "FR" | "GB" | "CH");
        let choices: u64 = match roll {
            0..=11 => 1,
            12..=13 => 3,
            _ => 0,
        };
        // Each choice flips the member's value, starting from their jurisdiction's default
        // (off in opt-in regions, on elsewhere): the first choice is an opt-in or an opt-out.
        let mut allowed = !opt_in_region;
        for index in 0..choices {
            allowed = !allowed;
            // Half of the choices land in the last two days before the deadline.
            let at = if random.below(2) == 0 {
                deadline.saturating_add_micros(-(random.below(2 * day as u64) as i64) - 1)
            } else {
                notified.saturating_add_micros(
                    random.below(400 * day as u64) as i64 + index as i64 * day,
                )
            };
            events.push(NewEvent::Choice {
                choice: ChoiceRecord {
                    member: MemberId(member),
                    purpose: purpose.clone(),
                    allowed,
                    at,
                    source: match random.below(4) {
                        0 => Source::Web,
                        1 => Source::Mobile,
                        2 => Source::Api,
                        _ => Source::Gpc,
                    },
                    actor: Actor::member(),
                    policy_version: Some(optout_core::PolicyVersion(1)),
                    notice_version: None,
                    notice_language: None,
                    jurisdiction: Some(country_of(member)),
                    idempotency_key: None,
                },
                time: ChoiceTime::At(at),
            });
        }
    }
    let bar = progress::bar(Some(events.len() as u64), "choices", quiet);
    bar.set_message("recording");
    let total = events.len();
    let mut remaining = events;
    while !remaining.is_empty() {
        let rest = remaining.split_off(remaining.len().min(1_000));
        let count = remaining.len() as u64;
        ledger.append(remaining)?;
        bar.inc(count);
        remaining = rest;
    }
    bar.finish_and_clear();
    println!("  recorded {total} generated choices of {members} members");
    Ok(())
}
