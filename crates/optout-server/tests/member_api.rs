//! The member side of the API, driven through the router without a socket: settings,
//! signed receipts, idempotent retries, Global Privacy Control, history, and that a
//! member can only ever touch their own settings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{t, Service, LEDGER_SEED};
use optout_core::{LedgerSigner, Receipt};
use serde_json::json;

#[tokio::test]
async fn settings_show_the_default_with_notice_and_deadline() {
    let service = Service::new();
    let token = service.member_token(42, "US");
    let settings = service.get("/v1/me/settings", &token).await.ok();
    assert_eq!(settings["member"], 42);
    assert_eq!(settings["jurisdiction"], "US");
    assert_eq!(settings["policy_version"], 1);
    let training = settings["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|purpose| purpose["purpose"] == "ai_training")
        .unwrap()
        .clone();
    assert_eq!(training["title"], "Use of data for AI training");
    assert_eq!(training["allowed"], true);
    assert_eq!(training["is_default"], true);
    assert_eq!(training["reason"], "jurisdiction_default");
    assert_eq!(training["mode"], "opt_out");
    assert_eq!(training["offered"], true);
    assert_eq!(training["deadline"], "2023-10-30T00:00:00Z");
    assert_eq!(training["notified_at"], "2023-10-16T00:00:00Z");
    assert!(training["notice"]["text"]
        .as_str()
        .unwrap()
        .contains("train"));
    assert_eq!(training["chosen"], serde_json::Value::Null);

    let german = service.member_token(43, "DE");
    let settings = service.get("/v1/me/settings", &german).await.ok();
    assert_eq!(settings["purposes"][0]["allowed"], false);
    assert_eq!(settings["purposes"][0]["mode"], "opt_in");
}

#[tokio::test]
async fn put_records_the_choice_and_returns_a_signed_receipt() {
    let service = Service::new();
    let token = service.member_token(7, "US");
    let before = service.head();
    let answer = service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": false}),
            &[],
        )
        .await;
    let receipt: Receipt = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    receipt
        .verify(Some(&LedgerSigner::from_seed(LEDGER_SEED).public_key()))
        .unwrap();
    assert_eq!(receipt.member.get(), 7);
    assert!(!receipt.allowed);
    assert_eq!(receipt.source.as_str(), "api");
    assert_eq!(receipt.position.get(), before + 1);
    assert_eq!(service.head(), before + 1);

    let settings = service.get("/v1/me/settings", &token).await.ok();
    let training = &settings["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|purpose| purpose["purpose"] == "ai_training")
        .unwrap()
        .clone();
    assert_eq!(training["allowed"], false);
    assert_eq!(training["is_default"], false);
    assert_eq!(training["reason"], "explicit_choice");
    assert_eq!(training["chosen"]["position"], receipt.position.get());
    assert_eq!(training["chosen"]["source"], "api");
}

#[tokio::test]
async fn a_retried_put_with_the_same_idempotency_key_writes_one_event() {
    let service = Service::new();
    let token = service.member_token(9, "US");
    let headers = [("idempotency-key", "retry-1")];
    let first = service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": false}),
            &headers,
        )
        .await;
    let head = service.head();
    service.clock.advance_micros(5_000_000);
    let second = service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": false}),
            &headers,
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(first.body, second.body, "the same receipt, byte for byte");
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(service.head(), head);

    let conflicting = service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": true}),
            &headers,
        )
        .await;
    conflicting.problem(409, "idempotency-key-reused");
    assert_eq!(service.head(), head);

    // Keys are per member: another member may use the same key.
    let other = service.member_token(10, "US");
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &other,
            json!({"allowed": false}),
            &headers,
        )
        .await
        .ok();
    assert_eq!(service.head(), head + 1);
}

#[tokio::test]
async fn sec_gpc_opt_out_is_recorded_with_source_gpc() {
    let service = Service::new();
    let token = service.member_token(11, "US");
    let receipt = service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": false}),
            &[("sec-gpc", "1")],
        )
        .await
        .ok();
    assert_eq!(receipt["source"], "gpc");
    let settings = service
        .request(
            axum::http::Method::GET,
            "/v1/me/settings",
            Some(&token),
            &[("sec-gpc", "1")],
            None,
        )
        .await
        .ok();
    assert_eq!(settings["gpc_signal"], true);
    // An explicit opt-in with the signal present is the member's own choice, not GPC.
    let receipt = service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": true}),
            &[("sec-gpc", "1")],
        )
        .await
        .ok();
    assert_eq!(receipt["source"], "api");
}

#[tokio::test]
async fn history_lists_my_choices_with_receipts() {
    let service = Service::new();
    let token = service.member_token(12, "US");
    for allowed in [false, true, false] {
        service
            .put_json(
                "/v1/me/settings/ai_training",
                &token,
                json!({"allowed": allowed}),
                &[],
            )
            .await
            .ok();
        service.clock.advance_micros(1_000_000);
    }
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &service.member_token(13, "US"),
            json!({"allowed": false}),
            &[],
        )
        .await
        .ok();
    let history = service.get("/v1/me/history", &token).await.ok();
    let choices = history["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    assert_eq!(history["truncated"], false);
    let allowed: Vec<bool> = choices
        .iter()
        .map(|c| c["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(allowed, [false, true, false]);
    for choice in choices {
        let receipt: Receipt = serde_json::from_value(choice["receipt"].clone()).unwrap();
        receipt.verify(None).unwrap();
        assert_eq!(receipt.member.get(), 12);
        assert_eq!(choice["actor"], "member");
        assert_eq!(choice["jurisdiction"], "US");
    }
}

#[tokio::test]
async fn fields_a_member_may_not_set_are_refused_and_nothing_is_written() {
    let service = Service::new();
    let token = service.member_token(14, "US");
    let head = service.head();
    for field in ["member", "time", "at", "source", "actor", "position"] {
        let mut body = json!({"allowed": false});
        body[field] = json!(15);
        let answer = service
            .put_json("/v1/me/settings/ai_training", &token, body, &[])
            .await;
        let problem = answer.problem(400, "field-not-settable");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem}"
        );
    }
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn member_a_cannot_reach_member_b() {
    let service = Service::new();
    let alice = service.member_token(100, "US");
    let head = service.head();
    // No member route takes an id; the platform route refuses member tokens.
    service
        .get("/v1/members/200/consent", &alice)
        .await
        .problem(403, "service-token-required");
    service
        .post_json(
            "/v1/choices:batch",
            &alice,
            json!({"choices": [{"member": 200, "purpose": "ai_training", "allowed": false}]}),
        )
        .await
        .problem(403, "service-token-required");
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &alice,
            json!({"allowed": false, "member": 200}),
            &[],
        )
        .await
        .problem(400, "field-not-settable");
    assert_eq!(service.head(), head);
    // And what alice does lands on alice only.
    let receipt = service
        .put_json(
            "/v1/me/settings/ai_training",
            &alice,
            json!({"allowed": false}),
            &[],
        )
        .await
        .ok();
    assert_eq!(receipt["member"], 100);
    let bob = service.member_token(200, "US");
    let history = service.get("/v1/me/history", &bob).await.ok();
    assert_eq!(history["choices"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn excluded_jurisdictions_say_so_and_offer_no_switch() {
    let excluded_policy = optout_core::policy::DEFAULT_POLICY_TOML
        .replace("version = 1", "version = 2")
        .replace(
            "effective_from = \"2023-10-16T00:00:00Z\"",
            "effective_from = \"2024-01-01T00:00:00Z\"",
        )
        .replace("mode = \"opt_in\"", "mode = \"excluded\"");
    let service = Service::with_policies(
        Default::default(),
        &[optout_core::policy::DEFAULT_POLICY_TOML, &excluded_policy],
    );
    let token = service.member_token(15, "FR");
    let settings = service.get("/v1/me/settings", &token).await.ok();
    assert_eq!(settings["policy_version"], 2);
    let training = &settings["purposes"][1];
    assert_eq!(training["purpose"], "ai_training");
    assert_eq!(training["offered"], false);
    assert_eq!(training["mode"], "excluded");
    assert_eq!(training["allowed"], false);
    assert!(training["message"].as_str().unwrap().contains("not used"));
    let head = service.head();
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": true}),
            &[],
        )
        .await
        .problem(409, "setting-not-offered");
    assert_eq!(service.head(), head);
    assert_eq!(service.now(), t("2024-06-01T00:00:00Z"));
}
