//! What the service refuses: missing, expired, not-yet-valid, forged, wrong-audience,
//! wrong-kind and wrong-scope tokens; oversize, malformed and non-JSON bodies; unknown
//! purposes and routes; and too many requests. Each refusal is a problem document and
//! writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::http::Method;
use common::{Service, HS256_SECRET};
use optout_server::token::{TokenIssuer, TokenKey, TokenRules};
use optout_server::ServerLimits;
use serde_json::json;

fn seconds(service: &Service) -> i64 {
    service.now().as_micros() / 1_000_000
}

#[tokio::test]
async fn bad_tokens_get_401_and_write_nothing() {
    let service = Service::new();
    let now = seconds(&service);
    let head = service.head();
    let put = |token: Option<String>| {
        let service = &service;
        async move {
            service
                .request(
                    Method::PUT,
                    "/v1/me/settings/ai_training",
                    token.as_deref(),
                    &[],
                    Some(br#"{"allowed": false}"#.to_vec()),
                )
                .await
        }
    };
    let answer = put(None).await;
    answer.problem(401, "token-missing");
    assert!(answer.headers.contains_key("www-authenticate"));

    let claims = |exp: i64, nbf: i64, aud: &str| json!({"sub": "5", "jurisdiction": "US", "aud": aud, "exp": exp, "nbf": nbf, "iat": nbf});
    let issuer = &service.issuer;
    let expired = issuer
        .mint_raw(&claims(now - 3600, now - 7200, "optout"))
        .unwrap();
    put(Some(expired)).await.problem(401, "token-expired");
    let early = issuer
        .mint_raw(&claims(now + 7200, now + 3600, "optout"))
        .unwrap();
    put(Some(early)).await.problem(401, "token-not-yet-valid");
    let elsewhere = issuer
        .mint_raw(&claims(now + 60, now, "another-service"))
        .unwrap();
    put(Some(elsewhere))
        .await
        .problem(401, "token-wrong-audience");
    let forged = TokenKey::from_seed([99; 32])
        .issuer(TokenRules::default())
        .mint_raw(&claims(now + 60, now, "optout"))
        .unwrap();
    put(Some(forged)).await.problem(401, "token-invalid");
    let wrong_secret = TokenIssuer::hs256(&[8; 32], TokenRules::default())
        .unwrap()
        .mint_raw(&claims(now + 60, now, "optout"))
        .unwrap();
    put(Some(wrong_secret)).await.problem(401, "token-invalid");
    let no_exp = issuer
        .mint_raw(&json!({"sub": "5", "aud": "optout"}))
        .unwrap();
    put(Some(no_exp)).await.problem(401, "token-invalid");
    // An unsigned token ("alg": "none") with valid-looking claims.
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        base64_url(&claims(now + 60, now, "optout").to_string())
    );
    put(Some(unsigned)).await.problem(401, "token-invalid");
    put(Some("garbage".into()))
        .await
        .problem(401, "token-invalid");
    let not_a_member = issuer
        .mint_raw(&json!({"sub": "alice", "aud": "optout", "exp": now + 60}))
        .unwrap();
    put(Some(not_a_member)).await.problem(401, "token-invalid");
    assert_eq!(service.head(), head);

    // The same claims, properly signed with the HS256 secret, are accepted.
    let good = TokenIssuer::hs256(&HS256_SECRET, TokenRules::default())
        .unwrap()
        .mint_raw(&claims(now + 60, now, "optout"))
        .unwrap();
    assert_eq!(put(Some(good)).await.status, 200);
    assert_eq!(service.head(), head + 1);
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn tokens_of_the_wrong_kind_or_scope_get_403() {
    let service = Service::new();
    let head = service.head();
    let reader = service.service_token(&["consent:read"]);
    service
        .get("/v1/me/settings", &reader)
        .await
        .problem(403, "member-token-required");
    let answer = service
        .post_json(
            "/v1/choices:batch",
            &reader,
            json!({"choices": [{"member": 1, "purpose": "ai_training", "allowed": false}]}),
        )
        .await;
    answer.problem(403, "scope-missing");
    assert!(answer.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    service
        .get("/v1/ledger/checkpoint", &reader)
        .await
        .problem(403, "scope-missing");
    let writer = service.service_token(&["choices:write"]);
    service
        .post_json(
            "/v1/consent:check",
            &writer,
            json!({"purpose": "ai_training", "members": [1]}),
        )
        .await
        .problem(403, "scope-missing");
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn bad_bodies_get_4xx_problems_and_write_nothing() {
    let limits = ServerLimits {
        member_body_bytes_max: 256,
        ..ServerLimits::default()
    };
    let service = Service::with_limits(limits);
    let token = service.member_token(5, "US");
    let head = service.head();
    let put = |body: Vec<u8>, content_type: &'static str| {
        let service = &service;
        let token = token.clone();
        async move {
            let request = axum::http::Request::builder()
                .method(Method::PUT)
                .uri("/v1/me/settings/ai_training")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", content_type)
                .body(axum::body::Body::from(body))
                .unwrap();
            service.send(request).await
        }
    };
    let oversize = format!(
        r#"{{"allowed": false, "padding": "{}"}}"#,
        "x".repeat(1_000)
    );
    let problem = put(oversize.into_bytes(), "application/json")
        .await
        .problem(413, "body-too-large");
    assert!(
        problem["detail"].as_str().unwrap().contains("256"),
        "{problem}"
    );
    put(br#"{"allowed": fals"#.to_vec(), "application/json")
        .await
        .problem(400, "malformed-json");
    put(b"".to_vec(), "application/json")
        .await
        .problem(400, "malformed-json");
    put(br#"{"allowed": "no"}"#.to_vec(), "application/json")
        .await
        .problem(400, "invalid-body");
    put(br#"{}"#.to_vec(), "application/json")
        .await
        .problem(400, "invalid-body");
    put(br#"[true]"#.to_vec(), "application/json")
        .await
        .problem(400, "invalid-body");
    put(
        b"allowed=false".to_vec(),
        "application/x-www-form-urlencoded",
    )
    .await
    .problem(415, "unsupported-media-type");
    for unknown in ["ai_trainig", "AI_TRAINING", "x%20y", "ai_training2"] {
        service
            .put_json(
                &format!("/v1/me/settings/{unknown}"),
                &token,
                json!({"allowed": false}),
                &[],
            )
            .await
            .problem(404, "unknown-purpose");
    }
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &token,
            json!({"allowed": false}),
            &[("idempotency-key", "")],
        )
        .await
        .problem(400, "invalid-parameter");
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let service = Service::new();
    let token = service.member_token(5, "US");
    service
        .get("/v1/nothing-here", &token)
        .await
        .problem(404, "not-found");
    service
        .request(Method::DELETE, "/v1/me/settings", Some(&token), &[], None)
        .await
        .problem(405, "method-not-allowed");
    let description = service.get("/problems/token-expired", &token).await;
    assert_eq!(description.status, 200);
    assert!(description.text().contains("Token expired"));
}

#[tokio::test]
async fn a_member_over_the_rate_limit_gets_429_with_retry_after() {
    let limits = ServerLimits {
        member_requests_per_second: 1,
        member_requests_burst: 3,
        ..ServerLimits::default()
    };
    let service = Service::with_limits(limits);
    let token = service.member_token(5, "US");
    for _ in 0..3 {
        service.get("/v1/me/settings", &token).await.ok();
    }
    let refused = service.get("/v1/me/settings", &token).await;
    refused.problem(429, "rate-limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    // Another member has their own budget.
    service
        .get("/v1/me/settings", &service.member_token(6, "US"))
        .await
        .ok();
}

#[tokio::test]
async fn a_service_token_over_the_rate_limit_gets_429() {
    let limits = ServerLimits {
        service_requests_per_second: 1,
        service_requests_burst: 2,
        ..ServerLimits::default()
    };
    let service = Service::with_limits(limits);
    let token = service.service_token(&["consent:read"]);
    let body = json!({"purpose": "ai_training", "members": [1]});
    for _ in 0..2 {
        service
            .post_json("/v1/consent:check", &token, body.clone())
            .await
            .ok();
    }
    service
        .post_json("/v1/consent:check", &token, body)
        .await
        .problem(429, "rate-limited");
}
