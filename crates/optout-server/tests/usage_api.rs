//! `GET /v1/me/usage`: a member learns which gate-built datasets included them, proved by
//! each dataset's signed manifest and included-member set, and which datasets could not
//! be checked (never reported as "not included").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{t, Service, LEDGER_SEED};
use optout_core::{DatasetRecord, LedgerPosition, LedgerSigner, Purpose, Timestamp};
use optout_gate::manifest::{write_member_set, CountsRecord, SnapshotReference, MANIFEST_FORMAT};
use optout_gate::{DatasetManifest, FileFormat, PendingManifest};
use optout_store::{Ledger, NewEvent};
use roaring::RoaringTreemap;

/// Writes a signed dataset (manifest and member set) into `directory` the way the gate
/// does, and returns the dataset event that records it.
fn write_dataset(
    service: &Service,
    directory: &Path,
    dataset_id: &str,
    members: &[u64],
    signer: &LedgerSigner,
) -> DatasetRecord {
    std::fs::create_dir_all(directory).unwrap();
    let set: RoaringTreemap = members.iter().copied().collect();
    let (member_set, _) = write_member_set(directory, &set).unwrap();
    let head = service.ledger.head().unwrap().unwrap();
    let cutoff = t("2024-05-01T00:00:00Z");
    let mut manifest = DatasetManifest {
        format: MANIFEST_FORMAT.into(),
        dataset_id: dataset_id.into(),
        purpose: Purpose::new("ai_training").unwrap(),
        snapshot: SnapshotReference {
            cutoff,
            position: head.position,
            ledger_hash: head.hash,
            policy_version: None,
        },
        before_deadline: Vec::new(),
        fields: vec!["job_title".into()],
        id_column: "member_id".into(),
        jurisdiction_column: "country".into(),
        output_format: FileFormat::Parquet,
        inputs: Vec::new(),
        outputs: Vec::new(),
        members: member_set,
        counts: CountsRecord {
            rows_in: members.len() as u64,
            rows_kept: members.len() as u64,
            duplicate_rows_kept: 0,
            dropped: BTreeMap::new(),
        },
        created_at: Timestamp::from_micros(0),
        public_key: signer.public_key(),
        signature: String::new(),
    };
    manifest.sign(signer);
    let pending = PendingManifest::write(directory, manifest).unwrap();
    let sha256 = pending.sha256.clone();
    pending.publish().unwrap();
    DatasetRecord {
        dataset_id: dataset_id.into(),
        purpose: Purpose::new("ai_training").unwrap(),
        cutoff,
        snapshot_position: head.position,
        manifest_sha256: sha256,
        rows_written: members.len() as u64,
        members_included: members.len() as u64,
    }
}

fn record(service: &Service, record: DatasetRecord) -> LedgerPosition {
    let appended = service
        .ledger
        .append(vec![NewEvent::Dataset(record)])
        .unwrap();
    appended[0].event.position()
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["dataset_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn usage_lists_the_datasets_whose_member_set_holds_the_member() {
    let service = Service::new();
    let signer = LedgerSigner::from_seed(LEDGER_SEED);
    let datasets = service.data_dir().join("datasets");
    let first = write_dataset(&service, &datasets.join("a"), "ds-a", &[1, 2, 3], &signer);
    let position = record(&service, first);
    let second = write_dataset(&service, &datasets.join("b"), "ds-b", &[3, 4], &signer);
    record(&service, second);

    let usage = service
        .get("/v1/me/usage", &service.member_token(2, "US"))
        .await
        .ok();
    assert_eq!(usage["member"], 2);
    assert_eq!(usage["datasets_recorded"], 2);
    assert_eq!(ids(&usage["included"]), ["ds-a"]);
    assert_eq!(usage["included"][0]["position"], position.get());
    assert_eq!(usage["included"][0]["purpose"], "ai_training");
    assert_eq!(usage["included"][0]["cutoff"], "2024-05-01T00:00:00Z");
    assert_eq!(usage["not_included"], 1);
    assert_eq!(usage["unchecked"], serde_json::json!([]));

    let both = service
        .get("/v1/me/usage", &service.member_token(3, "US"))
        .await
        .ok();
    assert_eq!(ids(&both["included"]), ["ds-a", "ds-b"]);
    let neither = service
        .get("/v1/me/usage", &service.member_token(9, "US"))
        .await
        .ok();
    assert_eq!(ids(&neither["included"]), Vec::<String>::new());
    assert_eq!(neither["not_included"], 2);
}

#[tokio::test]
async fn datasets_that_cannot_be_proved_are_unchecked_with_the_reason() {
    let service = Service::new();
    let signer = LedgerSigner::from_seed(LEDGER_SEED);
    let datasets = service.data_dir().join("datasets");
    // Written elsewhere: the service cannot find the manifest.
    let elsewhere = service.data_dir().join("elsewhere");
    let lost = write_dataset(&service, &elsewhere, "ds-lost", &[2], &signer);
    record(&service, lost);
    // Signed by another key: not this ledger's dataset.
    let forged = write_dataset(
        &service,
        &datasets.join("forged"),
        "ds-forged",
        &[2],
        &LedgerSigner::from_seed([9; 32]),
    );
    record(&service, forged);
    // Member set replaced after the manifest was signed.
    let tampered_dir = datasets.join("tampered");
    let tampered = write_dataset(&service, &tampered_dir, "ds-tampered", &[5], &signer);
    record(&service, tampered);
    let other: RoaringTreemap = [2u64].into_iter().collect();
    let mut bytes = Vec::new();
    other.serialize_into(&mut bytes).unwrap();
    std::fs::write(tampered_dir.join("included_members.roaring64"), bytes).unwrap();

    let usage = service
        .get("/v1/me/usage", &service.member_token(2, "US"))
        .await
        .ok();
    assert_eq!(usage["datasets_recorded"], 3);
    assert_eq!(ids(&usage["included"]), Vec::<String>::new());
    assert_eq!(usage["not_included"], 0);
    let reasons: Vec<(String, String)> = usage["unchecked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert!(entry["detail"].as_str().unwrap().len() > 10, "{entry}");
            (
                entry["dataset"]["dataset_id"].as_str().unwrap().to_string(),
                entry["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("ds-lost".to_string(), "manifest_not_found".to_string()),
            ("ds-forged".to_string(), "manifest_invalid".to_string()),
            ("ds-tampered".to_string(), "member_set_mismatch".to_string()),
        ]
    );
}

#[tokio::test]
async fn usage_is_for_members_only_and_writes_nothing() {
    let service = Service::new();
    let head = service.head();
    let service_token = service.service_token(&["consent:read"]);
    service
        .get("/v1/me/usage", &service_token)
        .await
        .problem(403, "member-token-required");
    service
        .request(axum::http::Method::GET, "/v1/me/usage", None, &[], None)
        .await
        .problem(401, "token-missing");
    let empty = service
        .get("/v1/me/usage", &service.member_token(1, "DE"))
        .await
        .ok();
    assert_eq!(empty["datasets_recorded"], 0);
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn the_settings_page_lists_the_datasets_that_used_the_member_and_those_unchecked() {
    let service = Service::new();
    let signer = LedgerSigner::from_seed(LEDGER_SEED);
    let datasets = service.data_dir().join("datasets");
    let used = write_dataset(&service, &datasets.join("a"), "ds-used", &[2], &signer);
    record(&service, used);
    let lost = write_dataset(
        &service,
        &service.data_dir().join("elsewhere"),
        "ds-lost",
        &[2],
        &signer,
    );
    record(&service, lost);
    let page = |member: u64| {
        let cookie = format!("optout_session={}", service.member_token(member, "US"));
        axum::http::Request::builder()
            .uri("/settings")
            .header(axum::http::header::COOKIE, cookie)
            .header(axum::http::header::HOST, "127.0.0.1:8080")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let html = service.send(page(2)).await.text();
    assert!(
        html.contains("<h2>Datasets that used your data</h2>"),
        "{html}"
    );
    assert!(html.contains("<code>ds-used</code>"), "{html}");
    assert!(html.contains("1 dataset(s) could not be checked for your data: <code>ds-lost</code>"));
    let other = service.send(page(9)).await.text();
    assert!(other.contains("No training dataset recorded so far included your data."));
    assert!(!other.contains("<code>ds-used</code>"));
}
