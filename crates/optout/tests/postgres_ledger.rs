//! The binary on a PostgreSQL ledger (`--ledger URL --ledger-schema NAME`, or
//! `OPTOUT_LEDGER` / `OPTOUT_LEDGER_SCHEMA`): init, choose and status from the command
//! line, a member's change through the served API, the single-writer lock while the
//! server runs, and the chain verified at the end.
//!
//! Needs a PostgreSQL server at `OPTOUT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); without one the test is skipped, except
//! under CI=true, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod serve_support;

use common::{missing, Scratch};
use serve_support::{member_token, Server};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema for this test alone, dropped at the end.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    fn create() -> Option<TestSchema> {
        let url = std::env::var("OPTOUT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        if let Err(error) = postgres::Client::connect(&url, postgres::NoTls) {
            return missing(&format!(
                "the PostgreSQL ledger test needs a server at {url} ({error}); set OPTOUT_TEST_POSTGRES_URL"
            ));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("optout_cli_{}_{nanos}", std::process::id());
        Some(TestSchema { url, name })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

#[test]
fn the_cli_and_the_service_run_on_a_postgres_ledger() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let scratch = Scratch::new();
    let with_ledger = |args: &[&str]| {
        let mut all = vec!["--ledger", &schema.url, "--ledger-schema", &schema.name];
        all.extend_from_slice(args);
        scratch.run(&all)
    };

    let init = with_ledger(&["init"]).success().json();
    assert_eq!(init["head"]["position"], 1, "{init}");
    assert!(
        !scratch.data.join("ledger.sqlite").exists(),
        "no SQLite file when the ledger is in PostgreSQL"
    );
    let receipt = with_ledger(&["choose", "4294967297", "ai_training", "deny"])
        .success()
        .json();
    assert_eq!(receipt["position"], 2);
    let status = with_ledger(&[
        "status",
        "4294967297",
        "--purpose",
        "ai_training",
        "--jurisdiction",
        "US",
    ])
    .success()
    .json();
    assert_eq!(status["allowed"], false, "{status}");

    // The service on the same ledger, configured through the environment.
    let server = Server::start(
        &scratch.data,
        &[
            ("OPTOUT_LEDGER", schema.url.as_str()),
            ("OPTOUT_LEDGER_SCHEMA", schema.name.as_str()),
        ],
    );
    let token = member_token(&scratch.data, 4_294_967_297, "US");
    let changed = server
        .request(
            "PUT",
            "/v1/me/settings/ai_training",
            Some(&token),
            &[],
            Some(r#"{"allowed": true}"#),
        )
        .unwrap();
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.json()["position"], 3);

    // One writer per ledger: the command line cannot append while the server holds it.
    let refused = with_ledger(&["choose", "5", "ai_training", "deny"]);
    assert_ne!(refused.code, 0, "a second writer must be refused");
    assert!(
        refused.stderr.to_lowercase().contains("writer"),
        "the error names the other writer: {}",
        refused.stderr
    );
    // Commands that only read open the ledger read-only and run beside the writer.
    let beside = with_ledger(&[
        "status",
        "4294967297",
        "--purpose",
        "ai_training",
        "--jurisdiction",
        "US",
    ])
    .success()
    .json();
    assert_eq!(
        beside["allowed"], true,
        "the served change is visible: {beside}"
    );
    let verified_beside = with_ledger(&["ledger", "verify"]).success().json();
    assert_eq!(verified_beside["events"], 3, "{verified_beside}");
    assert_eq!(server.terminate(), Some(0));

    let verified = with_ledger(&["ledger", "verify"]).success().json();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["events"], 3, "{verified}");

    // Only `init` creates a ledger: a mistyped schema is an error, not a new empty ledger.
    let typo = format!("{}_typo", schema.name);
    let mistyped = scratch.run(&[
        "--ledger",
        &schema.url,
        "--ledger-schema",
        &typo,
        "status",
        "1",
        "--purpose",
        "ai_training",
    ]);
    assert_ne!(mistyped.code, 0, "{}", mistyped.stderr);
    assert!(
        mistyped.stderr.contains("holds no optout ledger"),
        "{}",
        mistyped.stderr
    );
    let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    let created = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&typo],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(created, 0, "the mistyped schema was not created");

    // And `init` never puts a new key over an existing ledger.
    let other = Scratch::new();
    let again = other.run(&[
        "--ledger",
        &schema.url,
        "--ledger-schema",
        &schema.name,
        "init",
    ]);
    assert_ne!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("already holds a ledger"),
        "{}",
        again.stderr
    );
    assert!(
        !other.data.join("signing.key").exists(),
        "no key was written"
    );
}
