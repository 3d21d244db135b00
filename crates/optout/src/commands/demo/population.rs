//! The demo's synthetic population: who lives where, and who chose what when. Everything
//! is a function of the member id and one fixed seed, so every run (and every machine)
//! generates the same members, the same choices and the same profiles.

use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Jurisdiction, MemberId, PolicyVersion, Purpose, Source, Timestamp,
};
use optout_store::{ChoiceTime, Ledger, NewEvent};

use crate::exit::CliResult;
use crate::progress;
pub use optout_core::splitmix::SplitMix64 as Sequence;

/// Where members live, in per-mille: roughly a large professional network's spread, with
/// a quarter of the members in opt-in jurisdictions (EU, Switzerland, the UK).
const COUNTRIES: [(&str, u64); 16] = [
    ("US", 300),
    ("IN", 190),
    ("BR", 90),
    ("DE", 70),
    ("FR", 55),
    ("GB", 55),
    ("CA", 40),
    ("MX", 30),
    ("IT", 25),
    ("ES", 20),
    ("JP", 20),
    ("AU", 20),
    ("NL", 15),
    ("NG", 25),
    ("CH", 10),
    ("ID", 35),
];

/// The member's country: fixed per member, drawn from [`COUNTRIES`].
pub fn country_of(member: u64) -> Jurisdiction {
    let mut roll = Sequence(member ^ 0x5EED_C0DE).next() % 1_000;
    let mut code = "US";
    for (country, share) in COUNTRIES {
        if roll < share {
            code = country;
            break;
        }
        roll -= share;
    }
    Jurisdiction::parse(code).unwrap_or_else(|_| unreachable!("static codes are valid"))
}

/// Whether the member's jurisdiction must opt in under the default policy.
pub fn in_opt_in_region(member: u64) -> bool {
    matches!(
        country_of(member).as_str(),
        "DE" | "FR" | "GB" | "IT" | "ES" | "NL" | "CH"
    )
}

/// Records the population's choices: most members never choose; about one in seven opts
/// out (or, in opt-in regions, in), half of them in a rush over the last two days before
/// the deadline, and one in fifty flips twice more later.
pub fn record_choices(ledger: &dyn Ledger, members: u64, quiet: bool) -> CliResult<u64> {
    let purpose = Purpose::new("ai_training").map_err(anyhow::Error::from)?;
    let notified = Timestamp::parse_rfc3339("2023-10-16T00:00:00Z").map_err(anyhow::Error::from)?;
    let deadline = Timestamp::parse_rfc3339("2023-10-30T00:00:00Z").map_err(anyhow::Error::from)?;
    let day = 86_400_000_000i64;
    let mut random = Sequence(42);
    let bar = progress::bar(Some(members), "members", quiet);
    bar.set_message("recording choices");
    let mut recorded = 0u64;
    let mut pending = Vec::new();
    for member in 1..=members {
        let roll = random.below(100);
        let choices: u64 = match roll {
            0..=11 => 1,
            12..=13 => 3,
            _ => 0,
        };
        // Each choice flips the member's value, starting from their jurisdiction's default
        // (off in opt-in regions, on elsewhere): the first choice is an opt-in or an opt-out.
        let mut allowed = !in_opt_in_region(member);
        let mut at = notified;
        for index in 0..choices {
            allowed = !allowed;
            at = if index > 0 {
                // A flip comes one day to four months after the member's previous choice.
                at.saturating_add_micros(day + random.below(120 * day as u64) as i64)
            } else if random.below(2) == 0 {
                deadline.saturating_add_micros(-(random.below(2 * day as u64) as i64) - 1)
            } else {
                notified.saturating_add_micros(random.below(400 * day as u64) as i64)
            };
            pending.push(NewEvent::Choice {
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
                    policy_version: Some(PolicyVersion(1)),
                    notice_version: None,
                    notice_language: None,
                    jurisdiction: Some(country_of(member)),
                    idempotency_key: None,
                },
                time: ChoiceTime::At(at),
            });
        }
        if pending.len() >= 10_000 || member == members {
            recorded += pending.len() as u64;
            ledger.append(std::mem::take(&mut pending))?;
            bar.set_position(member);
        }
    }
    bar.finish_and_clear();
    Ok(recorded)
}
