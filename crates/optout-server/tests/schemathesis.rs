//! Schemathesis (PyPI) against the real server: the service is served on a free loopback
//! port over a temporary data directory, and schemathesis generates requests from
//! `/openapi.json` (valid and invalid ones) for every operation, once with a member
//! token for `/v1/me` and once with a service token holding every scope for the rest.
//! It must find no server error and no response outside the document (schema, status
//! code, content type). Bounded examples keep it well under a minute.
//!
//! Needs `OPTOUT_TEST_PYTHON` with schemathesis (scripts/test.sh installs it): with
//! `CI=true` a missing schemathesis fails the test, otherwise the test is skipped with a
//! message. `OPTOUT_SCHEMATHESIS_SEED` replays a run; the seed used is printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;
use std::sync::Arc;

use optout_core::policy::DEFAULT_POLICY_TOML;
use optout_core::{
    Actor, ChoiceRecord, Clock, LedgerSigner, MemberId, PolicyDocument, PolicyRecord, Purpose,
    Source, SystemClock,
};
use optout_server::token::{TokenKey, TokenRules, TokenVerifier, SCOPES};
use optout_server::{serve, AppState, ServerLimits};
use optout_sqlite::SqliteLedger;
use optout_store::{ChoiceTime, Ledger, NewEvent};

/// What must hold of every response (`OPTOUT_SCHEMATHESIS_CHECKS` overrides). Not
/// `positive_data_acceptance`: some valid-looking requests are refused on purpose, and
/// the schema cannot say so (a `consent:check` with fewer jurisdictions than members, a
/// member id written as `7.0`, a snapshot position beyond the head).
const CHECKS: &str = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance,negative_data_rejection,missing_required_header,ignored_auth";

/// Test cases per operation and phase (`OPTOUT_SCHEMATHESIS_EXAMPLES` overrides, for
/// deeper runs by hand).
const EXAMPLES_PER_OPERATION: u32 = 20;
const DEFAULT_SEED: u64 = 20_261_129;
const TOKEN_SEED: [u8; 32] = [3; 32];

/// The Python with schemathesis, or None (after failing in CI).
fn python_with_schemathesis() -> Option<String> {
    let python = std::env::var("OPTOUT_TEST_PYTHON").ok();
    let usable = python.as_deref().is_some_and(|python| {
        Command::new(python)
            .args(["-c", "import schemathesis"])
            .status()
            .is_ok_and(|status| status.success())
    });
    if usable {
        return python;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true but OPTOUT_TEST_PYTHON ({python:?}) has no schemathesis: run the tests through scripts/test.sh"
    );
    eprintln!(
        "skipped: schemathesis is not installed in OPTOUT_TEST_PYTHON ({python:?}); scripts/test.sh installs it"
    );
    None
}

/// A ledger with the default policy and a few choices, so responses have content.
fn seeded_ledger(dir: &std::path::Path) -> Arc<SqliteLedger> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ledger = Arc::new(SqliteLedger::open(&dir.join("ledger.sqlite"), clock).unwrap());
    let document = PolicyDocument::parse(DEFAULT_POLICY_TOML, "default policy").unwrap();
    ledger
        .append(vec![NewEvent::Policy(PolicyRecord {
            version: document.version,
            effective_from: document.effective_from,
            document: DEFAULT_POLICY_TOML.to_string(),
        })])
        .unwrap();
    let choices = (1..=20u64)
        .map(|member| NewEvent::Choice {
            choice: ChoiceRecord {
                member: MemberId(member),
                purpose: Purpose::new("ai_training").unwrap(),
                allowed: member % 3 == 0,
                at: SystemClock.now(),
                source: Source::Web,
                actor: Actor::member(),
                policy_version: Some(document.version),
                notice_version: None,
                notice_language: None,
                jurisdiction: None,
                idempotency_key: None,
            },
            time: ChoiceTime::Now,
        })
        .collect();
    ledger.append(choices).unwrap();
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let Some(python) = python_with_schemathesis() else {
        return;
    };
    let seed = std::env::var("OPTOUT_SCHEMATHESIS_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let examples = std::env::var("OPTOUT_SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(EXAMPLES_PER_OPERATION);
    let checks = std::env::var("OPTOUT_SCHEMATHESIS_CHECKS").unwrap_or_else(|_| CHECKS.to_string());
    eprintln!("schemathesis seed {seed} (OPTOUT_SCHEMATHESIS_SEED={seed} replays it)");

    let dir = tempfile::tempdir().unwrap();
    let ledger = seeded_ledger(dir.path());
    let key = TokenKey::from_seed(TOKEN_SEED);
    let verifier =
        TokenVerifier::new(TokenRules::default()).with_eddsa_public_key(key.public_key());
    let limits = ServerLimits {
        // Schemathesis is one client sending thousands of requests; rate limits are
        // tested elsewhere (security.rs).
        member_requests_per_second: 100_000,
        member_requests_burst: 100_000,
        service_requests_per_second: 100_000,
        service_requests_burst: 100_000,
        ..ServerLimits::default()
    };
    let state = AppState::new(
        ledger,
        Arc::new(LedgerSigner::from_seed([1; 32])),
        Arc::new(SystemClock),
        verifier,
        limits,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let issuer = key.issuer(TokenRules::default());
    let now = SystemClock.now();
    let member_token = issuer
        .member(
            MemberId(3),
            optout_core::Jurisdiction::parse("US").ok(),
            now,
            3600,
        )
        .unwrap();
    let scopes: Vec<String> = SCOPES.iter().map(|scope| scope.to_string()).collect();
    let service_token = issuer.service("schemathesis", &scopes, now, 3600).unwrap();
    let schema = format!("http://{address}/openapi.json");

    // The stateful phase follows the document's links, which start at POST /v1/snapshots.
    let runs = [
        (
            "member",
            member_token,
            "--include-path-regex",
            "examples,coverage,fuzzing",
        ),
        (
            "service",
            service_token,
            "--exclude-path-regex",
            "examples,coverage,fuzzing,stateful",
        ),
    ];
    let mut failures = Vec::new();
    for (who, token, filter, phases) in runs {
        let python = python.clone();
        let schema = schema.clone();
        let checks = checks.clone();
        let reports = dir.path().join(format!("schemathesis-{who}"));
        let workdir = dir.path().to_path_buf();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .args(["-m", "schemathesis.cli", "run", &schema])
                .args(["--checks", &checks])
                .args(["--max-examples", &examples.to_string()])
                .args(["--seed", &seed.to_string()])
                .args(["--phases", phases])
                .args(["--workers", "2"])
                .args(["--request-timeout", "20"])
                .args([filter, "^/v1/me/"])
                .args(["--header", &format!("Authorization: Bearer {token}")])
                .arg("--report-dir")
                .arg(&reports)
                // Its example cache goes to the working directory: keep it out of the tree.
                .current_dir(&workdir)
                .env("NO_COLOR", "1")
                .env("SCHEMATHESIS_HOOKS", "")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        eprintln!("--- schemathesis ({who} token) ---\n{stdout}{stderr}");
        if !output.status.success() {
            failures.push(format!("{who} token: exit {:?}", output.status.code()));
        }
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert!(
        failures.is_empty(),
        "schemathesis found problems ({}); its output is above; replay with OPTOUT_SCHEMATHESIS_SEED={seed}",
        failures.join(", ")
    );
}
