//! `/v1/snapshots`: taking a snapshot (once per purpose, cutoff, position and format),
//! showing it, and downloading its files, which match the signed manifest; bad requests
//! and file names outside the snapshot get problem documents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::http::Method;
use common::{t, Service, LEDGER_SEED};
use optout_core::LedgerSigner;
use optout_index::export::SnapshotManifest;
use optout_server::ServerLimits;
use roaring::RoaringTreemap;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Members 1 and 3 opt out and 2 opts in on 2024-06-01; member 4 opts out a day later.
async fn record_choices(service: &Service) {
    service.clock.set(t("2024-06-01T10:00:00Z"));
    let writer = service.service_token(&["choices:write"]);
    let choice = |member: u64, allowed: bool| json!({"member": member, "purpose": "ai_training", "allowed": allowed, "jurisdiction": "US"});
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [choice(1, false), choice(2, true), choice(3, false)]}),
        )
        .await
        .ok();
    service.clock.set(t("2024-06-02T10:00:00Z"));
    let writer = service.service_token(&["choices:write"]);
    service
        .post_json(
            "/v1/choices:batch",
            &writer,
            json!({"choices": [choice(4, false)]}),
        )
        .await
        .ok();
}

fn tokens(service: &Service) -> (String, String) {
    (
        service.service_token(&["snapshots:write"]),
        service.service_token(&["snapshots:read"]),
    )
}

fn roaring(bytes: &[u8]) -> Vec<u64> {
    RoaringTreemap::deserialize_from(bytes)
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_snapshot_is_taken_once_and_its_files_match_the_signed_manifest() {
    let service = Service::new();
    record_choices(&service).await;
    let (writer, reader) = tokens(&service);
    let head = service.head();
    let request = json!({"purpose": "ai_training", "cutoff": "2024-06-01T12:00:00Z"});

    let created = service
        .post_json("/v1/snapshots", &writer, request.clone())
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let snapshot = created.json();
    let id = snapshot["id"].as_str().unwrap().to_string();
    assert_eq!(created.headers["location"], format!("/v1/snapshots/{id}"));
    assert_eq!(snapshot["purpose"], "ai_training");
    assert_eq!(snapshot["cutoff"], "2024-06-01T12:00:00Z");
    assert_eq!(snapshot["position"], head);
    assert_eq!(snapshot["policy_version"], 1);
    assert_eq!(snapshot["format"], "roaring");
    assert_eq!(snapshot["explicit_allowed"], 1);
    assert_eq!(snapshot["explicit_denied"], 2);
    assert_eq!(snapshot["ledger_hash"].as_str().unwrap().len(), 64);

    // The same request again (position defaults to the same head): the same snapshot.
    let again = service.post_json("/v1/snapshots", &writer, request).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), snapshot);
    assert_eq!(service.head(), head, "a snapshot writes no ledger event");

    let shown = service
        .get(&format!("/v1/snapshots/{id}"), &reader)
        .await
        .ok();
    assert_eq!(shown, snapshot);

    let manifest = service
        .get(snapshot["manifest_href"].as_str().unwrap(), &reader)
        .await;
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.headers["content-type"], "application/json");
    let manifest: SnapshotManifest = serde_json::from_slice(&manifest.body).unwrap();
    manifest
        .verify_signature(Some(&LedgerSigner::from_seed(LEDGER_SEED).public_key()))
        .unwrap();

    let mut sets = Vec::new();
    for file in snapshot["files"].as_array().unwrap() {
        let download = service.get(file["href"].as_str().unwrap(), &reader).await;
        assert_eq!(download.status, 200, "{}", download.text());
        let sha256 = hex::encode(Sha256::digest(&download.body));
        assert_eq!(file["sha256"], sha256);
        assert_eq!(download.headers["etag"], format!("\"{sha256}\""));
        assert_eq!(file["bytes"], download.body.len());
        let listed = manifest
            .files
            .iter()
            .find(|listed| listed.name == file["name"]);
        assert_eq!(listed.unwrap().sha256, sha256);
        if file["name"].as_str().unwrap().ends_with(".roaring64") {
            sets.push((
                file["set"].as_str().unwrap().to_string(),
                roaring(&download.body),
            ));
        }
    }
    sets.sort();
    assert_eq!(
        sets,
        [
            ("explicit_allowed".to_string(), vec![2]),
            ("explicit_denied".to_string(), vec![1, 3])
        ]
    );
}

#[tokio::test]
async fn a_snapshot_at_a_past_position_ignores_later_events_and_parquet_is_offered() {
    let service = Service::new();
    record_choices(&service).await;
    let (writer, reader) = tokens(&service);
    let before_member_4 = service.head() - 1;
    let snapshot = service
        .post_json(
            "/v1/snapshots",
            &writer,
            json!({"purpose": "ai_training", "cutoff": "2024-06-02T10:00:00Z",
                   "position": before_member_4, "format": "parquet"}),
        )
        .await;
    assert_eq!(snapshot.status, 201, "{}", snapshot.text());
    let snapshot = snapshot.json();
    assert_eq!(snapshot["position"], before_member_4);
    assert_eq!(snapshot["explicit_denied"], 2);
    let parquet = snapshot["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["set"] == "explicit_denied")
        .unwrap()
        .clone();
    assert!(parquet["name"].as_str().unwrap().ends_with(".parquet"));
    let download = service
        .get(parquet["href"].as_str().unwrap(), &reader)
        .await;
    assert_eq!(
        download.headers["content-type"],
        "application/vnd.apache.parquet"
    );
    assert!(download.body.starts_with(b"PAR1") && download.body.ends_with(b"PAR1"));
}

#[tokio::test]
async fn bad_snapshot_requests_are_refused_and_write_nothing() {
    let service = Service::new();
    record_choices(&service).await;
    let (writer, reader) = tokens(&service);
    let head = service.head();
    let post = |body: Value| service.post_json("/v1/snapshots", &writer, body);
    post(json!({"purpose": "ai_training", "cutoff": "2999-01-01T00:00:00Z"}))
        .await
        .problem(400, "cutoff-in-future");
    post(json!({"purpose": "ai_trainig", "cutoff": "2024-06-01T00:00:00Z"}))
        .await
        .problem(404, "unknown-purpose");
    let beyond = post(
        json!({"purpose": "ai_training", "cutoff": "2024-06-01T00:00:00Z",
                             "position": head + 1}),
    )
    .await
    .problem(400, "invalid-body");
    assert!(
        beyond["detail"].as_str().unwrap().contains("position"),
        "{beyond}"
    );
    post(json!({"purpose": "ai_training", "cutoff": "2024-06-01T00:00:00Z", "member": 1}))
        .await
        .problem(400, "field-not-settable");
    post(json!({"purpose": "ai_training", "cutoff": "yesterday"}))
        .await
        .problem(400, "invalid-body");
    post(json!({"purpose": "ai_training", "cutoff": "2024-06-01T00:00:00Z", "format": "csv"}))
        .await
        .problem(400, "invalid-body");
    service
        .post_json(
            "/v1/snapshots",
            &reader,
            json!({"purpose": "ai_training", "cutoff": "2024-06-01T00:00:00Z"}),
        )
        .await
        .problem(403, "scope-missing");
    assert!(!service
        .data_dir()
        .join("snapshots")
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some()));
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn unknown_snapshots_and_files_outside_a_snapshot_are_not_found() {
    let service = Service::new();
    record_choices(&service).await;
    let (writer, reader) = tokens(&service);
    let snapshot = service
        .post_json(
            "/v1/snapshots",
            &writer,
            json!({"purpose": "ai_training", "cutoff": "2024-06-01T12:00:00Z"}),
        )
        .await
        .json();
    let id = snapshot["id"].as_str().unwrap();
    service
        .get("/v1/snapshots/0123456789abcdef0123456789abcdef", &reader)
        .await
        .problem(404, "snapshot-not-found");
    service
        .get("/v1/snapshots/..", &reader)
        .await
        .problem(404, "snapshot-not-found");
    for name in [
        "..%2F..%2Fledger.sqlite",
        "%2Fetc%2Fpasswd",
        "..",
        ".explicit_allowed.roaring64.partial",
        "token.key",
    ] {
        let refused = service
            .get(&format!("/v1/snapshots/{id}/files/{name}"), &reader)
            .await
            .problem(404, "snapshot-file-not-found");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("snapshot.json"),
            "{refused}"
        );
    }
    service
        .get("/v1/snapshots/..%2F..%2F/files/snapshot.json", &reader)
        .await
        .problem(404, "snapshot-not-found");
    service
        .request(
            Method::GET,
            &format!("/v1/snapshots/{id}"),
            Some(&writer),
            &[],
            None,
        )
        .await
        .problem(403, "scope-missing");
}

#[tokio::test]
async fn snapshots_beyond_the_kept_limit_are_refused_but_existing_ones_are_answered() {
    let service = Service::with_limits(ServerLimits {
        snapshots_kept_max: 1,
        ..ServerLimits::default()
    });
    record_choices(&service).await;
    let (writer, _) = tokens(&service);
    let first = json!({"purpose": "ai_training", "cutoff": "2024-06-01T12:00:00Z"});
    let created = service
        .post_json("/v1/snapshots", &writer, first.clone())
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let refused = service
        .post_json(
            "/v1/snapshots",
            &writer,
            json!({"purpose": "ai_training", "cutoff": "2024-06-01T13:00:00Z"}),
        )
        .await
        .problem(409, "snapshot-limit-reached");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("snapshots_kept_max"),
        "{refused}"
    );
    let again = service.post_json("/v1/snapshots", &writer, first).await;
    assert_eq!(again.status, 200, "{}", again.text());
}
