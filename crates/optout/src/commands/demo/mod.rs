//! `optout demo`: the whole product on one machine. It creates (or reuses) a data
//! directory with the default policy and a deterministic population's choices, writes the
//! population's profiles, builds a sample training dataset through the gate, shows a few
//! members' effective consent, verifies the ledger, and then serves the HTTP API and the
//! settings page with sign-in links for demo members and a ready `curl` line.

mod population;
mod profiles;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;

use optout_core::consent::decide_from_history;
use optout_core::event::Actor;
use optout_core::{
    ChoiceRecord, Clock, LedgerPosition, MemberId, PolicyDocument, PolicyHistory, Purpose, Receipt,
    Source, Timestamp,
};
use optout_server::ServerConfig;
use optout_store::{member_history, policy_history, verify_ledger, ChoiceTime, Ledger, NewEvent};

use crate::cli::{DemoArgs, GateArgs};
use crate::commands::policy::append_policy;
use crate::commands::serve::serve_until_signal;
use crate::data_dir::{DataDir, Opened};
use crate::exit::{CliResult, Context};
use crate::progress;
use population::{country_of, in_opt_in_region, record_choices};

const PURPOSE: &str = "ai_training";
const PROFILES_FILE: &str = "profiles/profiles.parquet";
const DATASET_DIR: &str = "datasets/ai_training-sample";
/// Demo tokens last a day: long enough to play, short enough not to linger.
const TOKEN_TTL_SECONDS: i64 = 24 * 3600;

pub fn run(args: &DemoArgs, quiet: bool) -> CliResult {
    let data_dir = DataDir::new(&args.dir);
    let fresh = !data_dir.is_initialized();
    let opened = if fresh {
        data_dir.create()?
    } else {
        data_dir.open()?
    };
    let purpose = Purpose::new(PURPOSE).map_err(anyhow::Error::from)?;
    println!("optout demo — data directory {}", args.dir.display());
    if fresh {
        let position = append_policy(&opened.ledger, &PolicyDocument::default_policy())?;
        println!(
            "  created it with a new signing key; default policy recorded at position {position}"
        );
        let recorded = record_choices(&opened.ledger, args.members, quiet)?;
        println!(
            "  recorded {recorded} choices of {} generated members (an opt-out rush before the deadline, some flips)",
            args.members
        );
        member_turns_it_off(&opened, &purpose)?;
    } else {
        println!("  reusing it (delete the directory to start over)");
    }
    let members = population_size(&opened.ledger)?.max(args.members);
    let policies = policy_history(&opened.ledger)?;
    let examples = example_members(&opened.ledger, &purpose, members)?;
    show_consent(&opened.ledger, &policies, &purpose, &examples)?;

    let profiles = args.dir.join(PROFILES_FILE);
    if !profiles.exists() {
        profiles::write_profiles(&profiles, members, quiet)?;
        println!(
            "\nWrote {members} member profiles to {}",
            profiles.display()
        );
    }
    sample_dataset(&data_dir, &profiles, &args.dir.join(DATASET_DIR), quiet)?;

    let bar = progress::bar(
        opened.ledger.head()?.map(|head| head.position.get()),
        "events",
        quiet,
    );
    bar.set_message("verifying the ledger");
    let verified = verify_ledger(&opened.ledger, |count| bar.set_position(count))
        .map_err(anyhow::Error::from)?;
    bar.finish_and_clear();
    println!(
        "\nLedger verified: {} events, head hash {}",
        verified.map_or(0, |head| head.position.get()),
        verified.map(|head| head.hash.to_hex()).unwrap_or_default()
    );

    if args.no_serve {
        print_next_steps(&args.dir);
        return Ok(());
    }
    serve(&data_dir, opened, args, &examples)
}

/// One member turns the setting off through the web, and checks the signed receipt: what
/// the service does for every change.
fn member_turns_it_off(opened: &Opened, purpose: &Purpose) -> CliResult {
    let member = 42;
    let policies = policy_history(&opened.ledger)?;
    let choice = NewEvent::Choice {
        choice: ChoiceRecord {
            member: MemberId(member),
            purpose: purpose.clone(),
            allowed: false,
            at: opened.clock.now(),
            source: Source::Web,
            actor: Actor::member(),
            policy_version: policies.latest().map(|policy| policy.version),
            notice_version: None,
            notice_language: None,
            jurisdiction: Some(country_of(member)),
            idempotency_key: None,
        },
        time: ChoiceTime::Now,
    };
    let appended = opened.ledger.append(vec![choice])?;
    let receipt = appended
        .first()
        .and_then(|appended| Receipt::for_event(&appended.event, &opened.signer))
        .ok_or_else(|| anyhow::anyhow!("the ledger returned no event for the choice"))?;
    receipt
        .verify(Some(&opened.signer.public_key()))
        .map_err(anyhow::Error::from)?;
    println!(
        "  member {member} turned {purpose} off just now; its signed receipt (position {}) verifies",
        receipt.position.get()
    );
    Ok(())
}

/// The highest member id with a choice: the population a reused directory was made with.
fn population_size(ledger: &dyn Ledger) -> CliResult<u64> {
    let mut highest = 0u64;
    ledger.scan_choices(LedgerPosition(u64::MAX), &mut |choice| {
        highest = highest.max(choice.member.0);
    })?;
    Ok(highest)
}

/// A demo member to sign in as, and why they are interesting.
struct Example {
    member: u64,
    story: &'static str,
}

/// Three members worth looking at: one who opted out, one in an opt-in region who never
/// chose (their data is not used), one elsewhere who never chose (the default applies).
fn example_members(
    ledger: &dyn Ledger,
    purpose: &Purpose,
    members: u64,
) -> CliResult<Vec<Example>> {
    let mut opted_out = None;
    let mut opt_in_silent = None;
    let mut opt_out_silent = None;
    for member in 1..=members.min(10_000) {
        if opted_out.is_some() && opt_in_silent.is_some() && opt_out_silent.is_some() {
            break;
        }
        let history = member_history(ledger, MemberId(member), purpose, LedgerPosition(u64::MAX))?;
        let opt_in_region = in_opt_in_region(member);
        match history.last() {
            Some(last) if !last.allowed && !opt_in_region && opted_out.is_none() => {
                opted_out = Some(member);
            }
            None if opt_in_region && opt_in_silent.is_none() => opt_in_silent = Some(member),
            None if !opt_in_region && opt_out_silent.is_none() => opt_out_silent = Some(member),
            _ => {}
        }
    }
    Ok([
        (opted_out, "opted out"),
        (opt_in_silent, "opt-in region, never chose: not used"),
        (opt_out_silent, "never chose: the default applies"),
    ]
    .into_iter()
    .filter_map(|(member, story)| member.map(|member| Example { member, story }))
    .collect())
}

fn show_consent(
    ledger: &dyn Ledger,
    policies: &PolicyHistory,
    purpose: &Purpose,
    examples: &[Example],
) -> CliResult {
    println!("\nEffective consent for {purpose}, by the policy and each member's choices:");
    let now = optout_core::SystemClock.now().to_rfc3339();
    let moments = [
        ("2023-10-20T00:00:00Z", "before the deadline"),
        ("2023-11-01T00:00:00Z", "after the deadline"),
        (now.as_str(), "now"),
    ];
    for example in examples {
        println!(
            "  member {} ({}, {}):",
            example.member,
            country_of(example.member),
            example.story
        );
        let jurisdiction = country_of(example.member);
        let choices = member_history(
            ledger,
            MemberId(example.member),
            purpose,
            LedgerPosition(u64::MAX),
        )?;
        for (time, label) in moments {
            let at = Timestamp::parse_rfc3339(time).map_err(anyhow::Error::from)?;
            let decision = decide_from_history(policies, purpose, Some(jurisdiction), at, &choices);
            println!(
                "    {label:<19}: {:<11} ({})",
                if decision.allowed {
                    "allowed"
                } else {
                    "not allowed"
                },
                decision.reason.name()
            );
        }
    }
    Ok(())
}

/// Builds the sample training dataset through the gate, unless a complete one (with its
/// manifest) is already there; an incomplete one from an interrupted run is replaced.
fn sample_dataset(data_dir: &DataDir, profiles: &Path, output: &Path, quiet: bool) -> CliResult {
    let manifest = output.join("manifest.json");
    if manifest.exists() {
        println!("\nSample training dataset: reusing {}", output.display());
        return Ok(());
    }
    if output.exists() {
        fs::remove_dir_all(output).with_context(|| {
            format!("cannot remove the incomplete dataset {}", output.display())
        })?;
    }
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    println!(
        "\nBuilding a sample training dataset through the gate ({} → {}):",
        profiles.display(),
        output.display()
    );
    let cutoff = optout_core::SystemClock
        .now()
        .saturating_add_micros(-1_000_000);
    let args = GateArgs {
        purpose: PURPOSE.into(),
        cutoff: cutoff.to_rfc3339(),
        input: vec![profiles.to_path_buf()],
        output: output.to_path_buf(),
        fields: None,
        id_column: "member_id".into(),
        jurisdiction_column: "country".into(),
        format: None,
        position: None,
        strict: false,
        threads: None,
        no_consent: false,
    };
    let summary = crate::commands::gate::build(data_dir, &args, quiet)?;
    print_gate_summary(&summary);
    Ok(())
}

/// The gate's summary in a few lines: what came in, what was kept, why the rest was not.
fn print_gate_summary(summary: &serde_json::Value) {
    let number = |pointer: &str| {
        summary
            .pointer(pointer)
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    println!(
        "  {} rows in, {} kept ({} members) in {} s",
        number("/counts/rows_in"),
        number("/counts/rows_kept"),
        number("/members_included/members"),
        summary.pointer("/seconds").cloned().unwrap_or_default()
    );
    if let Some(dropped) = summary
        .pointer("/counts/dropped")
        .and_then(|v| v.as_object())
    {
        let reasons: Vec<String> = dropped
            .iter()
            .filter_map(|(reason, count)| Some((reason, count.as_u64()?)))
            .filter(|(_, count)| *count > 0)
            .map(|(reason, count)| format!("{count} {}", reason.replace('_', " ")))
            .collect();
        println!("  dropped: {}", reasons.join(", "));
    }
    println!(
        "  only the id and the purpose's allowed fields are written (no email); dataset {} is recorded in the ledger at position {}",
        summary
            .pointer("/dataset_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default(),
        number("/ledger_position")
    );
}

fn serve(data_dir: &DataDir, opened: Opened, args: &DemoArgs, examples: &[Example]) -> CliResult {
    let mut flags = vec![("listen", args.listen.clone())];
    // The demo's terminal is for the links; request logs only when asked for.
    if std::env::var_os("OPTOUT_LOG_LEVEL").is_none() {
        flags.push(("log.level", "warn".into()));
    }
    let config = ServerConfig::load(None, |name| std::env::var(name).ok(), &flags)
        .context_bad_input("configuration")?;
    optout_server::logging::init(&config).context_bad_input("configuration")?;
    let issuer = config
        .token_issuer(data_dir.path())
        .map_err(anyhow::Error::from)?;
    let now = optout_core::SystemClock.now();
    let mut links = Vec::new();
    for example in examples {
        let jurisdiction = country_of(example.member);
        let token = issuer
            .member(
                MemberId(example.member),
                Some(jurisdiction),
                now,
                TOKEN_TTL_SECONDS,
            )
            .map_err(anyhow::Error::from)?;
        links.push((example, jurisdiction, token));
    }
    let scopes: Vec<String> = optout_server::token::SCOPES
        .into_iter()
        .map(String::from)
        .collect();
    let service_token = issuer
        .service("demo", &scopes, now, TOKEN_TTL_SECONDS)
        .map_err(anyhow::Error::from)?;
    let dir = args.dir.clone();
    serve_until_signal(data_dir, opened, config, move |address: SocketAddr| {
        let base = format!("http://{address}");
        println!("\nThe service is running on {base} (Ctrl-C stops it).");
        println!("\nSign in to the settings page as a demo member (links valid for 24 hours):");
        for (example, jurisdiction, token) in &links {
            println!(
                "  member {} ({jurisdiction}, {}):\n    {base}/settings/login?token={token}",
                example.member, example.story
            );
        }
        let members: Vec<String> = links.iter().map(|(e, _, _)| e.member.to_string()).collect();
        let countries: Vec<String> = links
            .iter()
            .map(|(_, jurisdiction, _)| format!("\"{jurisdiction}\""))
            .collect();
        println!("\nAsk the platform API which of them may be used for {PURPOSE} now:");
        println!(
            "  curl -s {base}/v1/consent:check -H 'authorization: Bearer {service_token}' \
             -H 'content-type: application/json' \
             -d '{{\"purpose\":\"{PURPOSE}\",\"members\":[{}],\"jurisdictions\":[{}]}}'",
            members.join(","),
            countries.join(",")
        );
        println!("\nChoices recorded so far, by jurisdiction (CSV):");
        println!(
            "  curl -s '{base}/v1/reports/choices?by=jurisdiction&format=csv' -H 'authorization: Bearer {service_token}'"
        );
        println!("\nThe API's OpenAPI 3.1 document: {base}/openapi.json");
        print_next_steps(&dir);
        Ok(())
    })
}

/// The cutoff recorded in the sample dataset's manifest, for the `verify` line.
fn dataset_cutoff(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join(DATASET_DIR).join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    manifest
        .get("snapshot")?
        .get("cutoff")?
        .as_str()
        .map(String::from)
}

fn print_next_steps(dir: &Path) {
    let cutoff = dataset_cutoff(dir).unwrap_or_else(|| "<the dataset's cutoff>".into());
    let dir = dir.display();
    println!("\nMore to try (docs/service.md, README):");
    println!(
        "  optout --data-dir {dir} status 42 --purpose {PURPOSE} --jurisdiction {}",
        country_of(42)
    );
    println!("  optout --data-dir {dir} verify --purpose {PURPOSE} --cutoff {cutoff} --manifest {dir}/{DATASET_DIR}/manifest.json --jurisdictions {dir}/{PROFILES_FILE} {dir}/{DATASET_DIR}");
    println!("  optout --data-dir {dir} snapshot export --purpose {PURPOSE} --cutoff 2024-01-01T00:00:00Z --format parquet --out snapshot-2024");
    println!("  optout --data-dir {dir} ledger checkpoint > cp.json && optout --data-dir {dir} ledger export ledger.jsonl");
    println!("  optout ledger verify --export ledger.jsonl --checkpoint cp.json");
    // Flush now: when serving, the next output may be minutes away.
    let _ = std::io::Write::flush(&mut std::io::stdout());
}
