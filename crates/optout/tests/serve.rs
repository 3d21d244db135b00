//! The `optout serve` and `optout token` command-line contract, end to end: tokens printed
//! by `optout token` work against a real server on loopback, receipts it returns verify
//! with `optout receipt verify`, SIGTERM stops it cleanly with the ledger intact, and bad
//! configuration is exit 2 with a message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod serve_support;

use common::{path_str, Scratch};
use serve_support::Server;

#[test]
fn tokens_from_the_cli_work_against_the_served_api() {
    let scratch = Scratch::initialized();
    let member = scratch
        .run(&[
            "token",
            "member",
            "42",
            "--jurisdiction",
            "us",
            "--ttl",
            "10m",
        ])
        .success()
        .stdout
        .trim()
        .to_string();
    assert_eq!(member.split('.').count(), 3, "a JWT: {member}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(scratch.data.join("token.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let service = scratch
        .run(&["token", "service", "--scope", "consent:read,ledger:read"])
        .success()
        .stdout
        .trim()
        .to_string();

    let server = Server::start(&scratch.data, &[]);
    let answer = server
        .request(
            "PUT",
            "/v1/me/settings/ai_training",
            Some(&member),
            &[("Idempotency-Key", "first")],
            Some(r#"{"allowed": false}"#),
        )
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let receipt_file = scratch.write("receipt.json", &answer.body);
    scratch
        .run(&[
            "receipt",
            "verify",
            &path_str(&receipt_file),
            "--key",
            &path_str(&scratch.public_key_file()),
        ])
        .success();
    assert!(answer.header("x-request-id").is_some());

    let check = server
        .request(
            "POST",
            "/v1/consent:check",
            Some(&service),
            &[],
            Some(r#"{"purpose":"ai_training","members":[42,43],"jurisdictions":["US","US"]}"#),
        )
        .unwrap();
    assert_eq!(check.status, 200, "{check:?}");
    assert_eq!(check.json()["allowed"], serde_json::json!([43]));

    let refused = server
        .request("GET", "/v1/me/settings", Some(&service), &[], None)
        .unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let metrics = server.request("GET", "/metrics", None, &[], None).unwrap();
    assert!(metrics.body.contains("optout_choices_appended_total 1"));

    assert_eq!(server.terminate(), Some(0), "SIGTERM is a clean exit");
    let verified = scratch.run(&["ledger", "verify"]).success().json();
    assert_eq!(verified["events"], 2);
}

#[test]
fn token_and_serve_refuse_bad_input_with_exit_2() {
    let scratch = Scratch::initialized();
    scratch
        .run(&["token", "member", "x", "--jurisdiction", "US"])
        .exits(2);
    scratch
        .run(&["token", "member", "1", "--jurisdiction", "USA"])
        .exits(2)
        .stderr_has("--jurisdiction");
    scratch
        .run(&["token", "service", "--scope", "admin"])
        .exits(2)
        .stderr_has("unknown scope");
    scratch
        .run(&[
            "token",
            "member",
            "1",
            "--jurisdiction",
            "US",
            "--ttl",
            "400d",
        ])
        .exits(2)
        .stderr_has("--ttl");
    let uninitialized = Scratch::new();
    uninitialized
        .run(&["token", "member", "1", "--jurisdiction", "US"])
        .exits(2);
    let config = scratch.write("bad.toml", "[limits]\nbatch_size = 3\n");
    scratch
        .run(&["serve", "--config", &path_str(&config)])
        .exits(2)
        .stderr_has("batch_size");
    scratch
        .run(&["serve", "--listen", "not-an-address"])
        .exits(2)
        .stderr_has("listen");
}
