//! `GET /v1/reports/choices`: choice events counted per day, jurisdiction or source, as
//! JSON or CSV, for holders of `reports:read`; bad parameters are named in the problem.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::http::Method;
use common::{t, Service};
use serde_json::{json, Value};

/// Two days of choices from several channels and places, through the batch endpoint and
/// a member's own `PUT`.
async fn record_choices(service: &Service) {
    service.clock.set(t("2024-06-01T10:00:00Z"));
    let writer = service.service_token(&["choices:write"]);
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [
                {"member": 1, "purpose": "ai_training", "allowed": false, "jurisdiction": "US", "source": "web"},
                {"member": 2, "purpose": "ai_training", "allowed": false, "jurisdiction": "US", "source": "mobile"},
                {"member": 3, "purpose": "ai_training", "allowed": true, "jurisdiction": "FR", "source": "web"},
                {"member": 4, "purpose": "ai_personalization", "allowed": false, "source": "gpc"},
            ]}),
        )
        .await
        .ok();
    service.clock.set(t("2024-06-02T08:00:00Z"));
    service
        .put_json(
            "/v1/me/settings/ai_training",
            &service.member_token(1, "US"),
            json!({"allowed": true}),
            &[],
        )
        .await
        .ok();
}

fn buckets(report: &Value) -> Vec<(String, u64, u64)> {
    report["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| {
            assert_eq!(
                bucket["total"].as_u64().unwrap(),
                bucket["allowed"].as_u64().unwrap() + bucket["denied"].as_u64().unwrap()
            );
            (
                bucket["bucket"].as_str().unwrap().to_string(),
                bucket["allowed"].as_u64().unwrap(),
                bucket["denied"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn row(bucket: &str, allowed: u64, denied: u64) -> (String, u64, u64) {
    (bucket.to_string(), allowed, denied)
}

#[tokio::test]
async fn choices_are_counted_per_day_jurisdiction_and_source() {
    let service = Service::new();
    record_choices(&service).await;
    let reader = service.service_token(&["reports:read"]);

    let by_day = service
        .get("/v1/reports/choices?by=day", &reader)
        .await
        .ok();
    assert_eq!(by_day["by"], "day");
    assert_eq!(by_day["purpose"], Value::Null);
    assert_eq!(by_day["ledger_position"], service.head());
    assert_eq!(
        buckets(&by_day),
        [row("2024-06-01", 1, 3), row("2024-06-02", 1, 0)]
    );
    assert_eq!(
        (by_day["allowed"].as_u64(), by_day["denied"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(by_day["total"], 5);

    let by_jurisdiction = service
        .get(
            "/v1/reports/choices?by=jurisdiction&purpose=ai_training",
            &reader,
        )
        .await
        .ok();
    assert_eq!(by_jurisdiction["purpose"], "ai_training");
    assert_eq!(
        buckets(&by_jurisdiction),
        [row("FR", 1, 0), row("US", 1, 2)]
    );

    let by_source = service
        .get("/v1/reports/choices?by=source", &reader)
        .await
        .ok();
    assert_eq!(
        buckets(&by_source),
        [
            row("api", 1, 0),
            row("gpc", 0, 1),
            row("mobile", 0, 1),
            row("web", 1, 1)
        ]
    );
    let unknown = service
        .get("/v1/reports/choices?by=jurisdiction", &reader)
        .await
        .ok();
    assert!(buckets(&unknown).contains(&row("unknown", 0, 1)));
}

#[tokio::test]
async fn csv_is_answered_for_accept_or_format() {
    let service = Service::new();
    record_choices(&service).await;
    let reader = service.service_token(&["reports:read"]);
    let expected = "source,allowed,denied,total\napi,1,0,1\ngpc,0,1,1\nmobile,0,1,1\nweb,1,1,2\n";

    let by_accept = service
        .request(
            Method::GET,
            "/v1/reports/choices?by=source",
            Some(&reader),
            &[("accept", "text/html;q=0.5, text/csv")],
            None,
        )
        .await;
    assert_eq!(by_accept.status, 200, "{}", by_accept.text());
    assert_eq!(by_accept.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(by_accept.text(), expected);

    let by_format = service
        .get("/v1/reports/choices?by=source&format=csv", &reader)
        .await;
    assert_eq!(by_format.text(), expected);
    // `format` wins over `Accept`.
    let json = service
        .request(
            Method::GET,
            "/v1/reports/choices?by=source&format=json",
            Some(&reader),
            &[("accept", "text/csv")],
            None,
        )
        .await
        .ok();
    assert_eq!(json["by"], "source");
}

#[tokio::test]
async fn bad_report_parameters_are_named() {
    let service = Service::new();
    let reader = service.service_token(&["reports:read"]);
    let head = service.head();
    let bad_by = service
        .get("/v1/reports/choices?by=week", &reader)
        .await
        .problem(400, "invalid-parameter");
    assert!(
        bad_by["detail"].as_str().unwrap().contains("\"week\""),
        "{bad_by}"
    );
    assert!(
        bad_by["detail"].as_str().unwrap().contains("by"),
        "{bad_by}"
    );
    let missing = service
        .get("/v1/reports/choices", &reader)
        .await
        .problem(400, "invalid-parameter");
    assert!(
        missing["detail"].as_str().unwrap().contains("by"),
        "{missing}"
    );
    service
        .get("/v1/reports/choices?by=day&format=xml", &reader)
        .await
        .problem(400, "invalid-parameter");
    service
        .get("/v1/reports/choices?by=day&member=7", &reader)
        .await
        .problem(400, "field-not-settable");
    service
        .get("/v1/reports/choices?by=day&purpose=ai_trainig", &reader)
        .await
        .problem(404, "unknown-purpose");
    service
        .get(
            "/v1/reports/choices?by=day",
            &service.service_token(&["consent:read"]),
        )
        .await
        .problem(403, "scope-missing");
    service
        .get("/v1/reports/choices?by=day", &service.member_token(1, "US"))
        .await
        .problem(403, "service-token-required");
    assert_eq!(service.head(), head);
}
