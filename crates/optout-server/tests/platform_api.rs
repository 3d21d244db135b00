//! The platform side: batch choices in one durable group, batch consent checks from the
//! index kept current after each append, one member's consent, signed checkpoints, and
//! the operational endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use base64::Engine as _;
use common::{Service, LEDGER_SEED};
use optout_core::{Checkpoint, LedgerSigner, Receipt};
use optout_server::ServerLimits;
use serde_json::json;

#[tokio::test]
async fn a_batch_is_appended_and_checks_see_it_at_once() {
    let service = Service::new();
    let writer = service.service_token(&["choices:write"]);
    let reader = service.service_token(&["consent:read"]);
    let head = service.head();
    let batch = service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [
                {"member": 1, "purpose": "ai_training", "allowed": false, "jurisdiction": "US", "source": "web"},
                {"member": 2, "purpose": "ai_training", "allowed": true, "jurisdiction": "DE", "idempotency_key": "k2"},
                {"member": 18446744073709551615u64, "purpose": "ai_training", "allowed": false},
            ]}),
        )
        .await
        .ok();
    assert_eq!(batch["appended"], 3);
    assert_eq!(batch["replayed"], 0);
    let results = batch["results"].as_array().unwrap();
    let positions: Vec<u64> = results
        .iter()
        .map(|r| r["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        [head + 1, head + 2, head + 3],
        "one contiguous group"
    );
    let receipt: Receipt = serde_json::from_value(results[0]["receipt"].clone()).unwrap();
    receipt
        .verify(Some(&LedgerSigner::from_seed(LEDGER_SEED).public_key()))
        .unwrap();
    assert_eq!(receipt.source.as_str(), "web");

    let check = service
        .post_json(
            "/v1/consent:check",
            &reader,
            json!({"purpose": "ai_training",
                   "members": [1, 2, 3, 4, 18446744073709551615u64],
                   "jurisdictions": ["US", "DE", "US", "DE", "US"]}),
        )
        .await
        .ok();
    assert_eq!(check["allowed"], json!([2, 3]));
    assert_eq!(check["checked"], 5);
    assert_eq!(check["allowed_count"], 2);
    assert_eq!(check["position"], head + 3);

    let bitmask = service
        .post_json(
            "/v1/consent:check",
            &reader,
            json!({"purpose": "ai_training", "members": [1, 2, 3, 4, 5],
                   "jurisdictions": ["US", "DE", "US", "DE", null], "format": "bitmask"}),
        )
        .await
        .ok();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(bitmask["bitmask"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, [0b0000_0110]);
    assert!(bitmask.get("allowed").is_none());

    let retry = service
        .post_json(
            "/v1/choices:batch?receipts=false",
            &writer,
            json!({"choices": [{"member": 2, "purpose": "ai_training", "allowed": true, "idempotency_key": "k2"}]}),
        )
        .await
        .ok();
    assert_eq!(retry["replayed"], 1);
    assert_eq!(retry["results"][0]["position"], head + 2);
    assert!(retry["results"][0].get("receipt").is_none());
    assert_eq!(service.head(), head + 3);
}

#[tokio::test]
async fn a_bad_item_refuses_the_whole_batch() {
    let limits = ServerLimits {
        batch_choices_max: 2,
        ..ServerLimits::default()
    };
    let service = Service::with_limits(limits);
    let writer = service.service_token(&["choices:write"]);
    let head = service.head();
    let choice = |purpose: &str| json!({"member": 1, "purpose": purpose, "allowed": false});
    let problem = service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [choice("ai_training"), choice("ai_trainnig")]}),
        )
        .await
        .problem(404, "unknown-purpose");
    assert!(problem["detail"].as_str().unwrap().contains("choices[1]"));
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [choice("ai_training"), choice("ai_training"), choice("ai_training")]}),
        )
        .await
        .problem(400, "batch-too-large");
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [{"member": 1, "purpose": "ai_training", "allowed": false, "source": "admin"}]}),
        )
        .await
        .problem(400, "invalid-body");
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [{"member": 1, "purpose": "ai_training", "allowed": false, "at": "2024-01-01T00:00:00Z"}]}),
        )
        .await
        .problem(400, "field-not-settable");
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [{"member": -1, "purpose": "ai_training", "allowed": false}]}),
        )
        .await
        .problem(400, "invalid-body");
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn checks_refuse_bad_requests() {
    let service = Service::new();
    let reader = service.service_token(&["consent:read"]);
    let check = |body: serde_json::Value| service.post_json("/v1/consent:check", &reader, body);
    check(json!({"purpose": "nope", "members": [1]}))
        .await
        .problem(404, "unknown-purpose");
    check(json!({"purpose": "ai_training", "members": [1, 2], "jurisdictions": ["US"]}))
        .await
        .problem(400, "invalid-body");
    check(json!({"purpose": "ai_training", "members": [1], "jurisdictions": ["USA"]}))
        .await
        .problem(400, "invalid-body");
    check(json!({"purpose": "ai_training", "members": [1], "cutoff": "2999-01-01T00:00:00Z"}))
        .await
        .problem(400, "cutoff-in-future");
    check(json!({"purpose": "ai_training", "members": [1], "format": "csv"}))
        .await
        .problem(400, "invalid-body");
}

#[tokio::test]
async fn a_check_at_a_past_cutoff_ignores_later_choices() {
    let service = Service::new();
    let writer = service.service_token(&["choices:write"]);
    let reader = service.service_token(&["consent:read"]);
    let before_choice = service.now();
    service.clock.advance_micros(60_000_000);
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [{"member": 1, "purpose": "ai_training", "allowed": false}]}),
        )
        .await
        .ok();
    service.clock.advance_micros(60_000_000);
    let body = |cutoff: Option<String>| {
        let mut body = json!({"purpose": "ai_training", "members": [1], "jurisdictions": ["US"]});
        if let Some(cutoff) = cutoff {
            body["cutoff"] = json!(cutoff);
        }
        body
    };
    let now = service
        .post_json("/v1/consent:check", &reader, body(None))
        .await
        .ok();
    assert_eq!(now["allowed"], json!([]));
    let past = service
        .post_json(
            "/v1/consent:check",
            &reader,
            body(Some(before_choice.to_string())),
        )
        .await
        .ok();
    assert_eq!(past["allowed"], json!([1]));
}

#[tokio::test]
async fn one_members_consent_and_the_checkpoint() {
    let service = Service::new();
    let writer = service.service_token(&["choices:write"]);
    let reader = service.service_token(&["consent:read", "ledger:read"]);
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [{"member": 77, "purpose": "ai_training", "allowed": false}]}),
        )
        .await
        .ok();
    let consent = service
        .get(
            "/v1/members/77/consent?jurisdiction=US&purpose=ai_training",
            &reader,
        )
        .await
        .ok();
    assert_eq!(consent["purposes"][0]["allowed"], false);
    assert_eq!(consent["purposes"][0]["reason"], "explicit_choice");
    let all = service
        .get("/v1/members/78/consent?jurisdiction=GB", &reader)
        .await
        .ok();
    assert_eq!(all["purposes"].as_array().unwrap().len(), 2);
    assert_eq!(all["purposes"][1]["reason"], "jurisdiction_default");
    service
        .get("/v1/members/seventy/consent", &reader)
        .await
        .problem(400, "invalid-parameter");
    service
        .get("/v1/members/77/consent?member=78", &reader)
        .await
        .problem(400, "field-not-settable");
    service
        .get("/v1/members/77/consent?jurisdiction=USA", &reader)
        .await
        .problem(400, "invalid-parameter");

    let checkpoint: Checkpoint =
        serde_json::from_value(service.get("/v1/ledger/checkpoint", &reader).await.ok()).unwrap();
    checkpoint
        .verify(Some(&LedgerSigner::from_seed(LEDGER_SEED).public_key()))
        .unwrap();
    assert_eq!(checkpoint.position.get(), service.head());
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let service = Service::new();
    let token = service.member_token(1, "US");
    let health = service.get("/healthz", "").await.ok();
    assert_eq!(health["status"], "ok");
    let ready = service.get("/readyz", "").await.ok();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["ledger_position"], 1);
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": false}),
            &[("x-request-id", "abc-123")],
        )
        .await
        .ok();
    let metrics = service.get("/metrics", "").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text();
    for needle in [
        "optout_http_requests_total{route=\"/v1/me/settings/{purpose}\",method=\"PUT\",status=\"200\"} 1",
        "optout_http_request_duration_seconds_bucket{route=\"/v1/me/settings/{purpose}\",method=\"PUT\",le=\"+Inf\"} 1",
        "optout_choices_appended_total 1",
        "optout_ledger_commits_total",
        "optout_ledger_largest_batch_events",
        "optout_index_explicit_members 1",
        "optout_index_applied_position 2",
        "optout_index_memory_bytes ",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let echoed = service.get("/healthz", "").await;
    assert!(echoed.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn request_ids_are_echoed() {
    let service = Service::new();
    let answer = service
        .request(
            axum::http::Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "abc-123")],
            None,
        )
        .await;
    assert_eq!(answer.headers["x-request-id"], "abc-123");
    let answer = service
        .request(
            axum::http::Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "bad id with spaces")],
            None,
        )
        .await;
    assert_ne!(answer.headers["x-request-id"], "bad id with spaces");
}
