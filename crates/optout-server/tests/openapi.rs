//! `/openapi.json` is an OpenAPI 3.1 document kept in step with the router: every `/v1`
//! route `app` is built from is in it with its method, and nothing else is; every
//! reference resolves, every path parameter is declared, every operation names a
//! security scheme the document defines; and, when the test Python has
//! `openapi-spec-validator`, the document validates against the official 3.1 schema.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;

use common::Service;
use optout_server::routes::api_routes;
use optout_server::token::SCOPES;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document() -> Value {
    let service = Service::new();
    let answer = service
        .request(axum::http::Method::GET, "/openapi.json", None, &[], None)
        .await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    answer.json()
}

fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((method.to_string(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_route_of_the_app_is_documented_and_nothing_else() {
    let document = document().await;
    assert_eq!(document["openapi"], "3.1.0");
    let routed: BTreeSet<(String, String)> = api_routes()
        .iter()
        .map(|route| {
            (
                route.method.as_str().to_ascii_lowercase(),
                route.path.to_string(),
            )
        })
        .collect();
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented operations with no route: {extra:?}"
    );
}

#[tokio::test]
async fn documented_paths_reach_their_handlers() {
    // Each documented operation, called without a token, is refused by its handler's
    // auth (401 token-missing), not by the router's fallbacks (404 not-found, 405).
    let service = Service::new();
    let document = document().await;
    for (method, path, _) in operations(&document) {
        let uri = path
            .replace("{purpose}", "ai_training")
            .replace("{id}", "1")
            .replace("{name}", "snapshot.json");
        let answer = service
            .request(
                method.to_uppercase().parse().unwrap(),
                &uri,
                None,
                &[],
                None,
            )
            .await;
        answer.problem(401, "token-missing");
    }
}

#[tokio::test]
async fn the_document_is_complete_and_consistent() {
    let document = document().await;
    if let Ok(path) = std::env::var("OPTOUT_DUMP_OPENAPI") {
        std::fs::write(path, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    }
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for scheme in schemes.values() {
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
    }
    for (method, path, operation) in operations(&document) {
        let at = format!("{method} {path}");
        // Security: exactly one scheme the document defines; service scopes are real.
        let security = operation["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: no security"));
        assert_eq!(security.len(), 1, "{at}");
        let (scheme, scopes) = security[0].as_object().unwrap().iter().next().unwrap();
        assert!(
            schemes.contains_key(scheme),
            "{at}: unknown scheme {scheme}"
        );
        for scope in scopes.as_array().unwrap() {
            assert!(
                SCOPES.contains(&scope.as_str().unwrap()),
                "{at}: unknown scope {scope}"
            );
        }
        // Path parameters: each `{name}` declared, in path, required.
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for name in path
            .split('{')
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap())
        {
            let declared = parameters
                .iter()
                .find(|parameter| parameter["name"] == name && parameter["in"] == "path");
            assert_eq!(
                declared.unwrap_or_else(|| panic!("{at}: {name} undeclared"))["required"],
                true
            );
        }
        // Responses: a success, and problem documents for the auth failures.
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{at}"
        );
        for status in ["401", "403", "429", "500"] {
            let problem = &responses[status]["content"]["application/problem+json"]["schema"];
            assert_eq!(
                problem["$ref"], "#/components/schemas/ProblemDocument",
                "{at} {status}"
            );
        }
        for response in responses.values() {
            assert!(response["description"].is_string(), "{at}");
        }
    }
    // Every reference resolves.
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "dangling reference {reference}"
        );
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                into.push(reference.clone());
            }
            object
                .values()
                .for_each(|value| collect_references(value, into));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, into)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_validates_against_the_openapi_3_1_schema() {
    let document = document().await;
    let python = std::env::var("OPTOUT_TEST_PYTHON").ok();
    let has_validator = python.as_deref().is_some_and(|python| {
        std::process::Command::new(python)
            .args(["-c", "import openapi_spec_validator"])
            .status()
            .is_ok_and(|status| status.success())
    });
    if !has_validator {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but OPTOUT_TEST_PYTHON ({python:?}) lacks openapi-spec-validator: run scripts/test.sh"
        );
        eprintln!("skipped: OPTOUT_TEST_PYTHON without openapi-spec-validator (scripts/test.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
    let output = std::process::Command::new(python.unwrap())
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nfrom openapi_spec_validator.validation import OpenAPIV31SpecValidator\nvalidate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\nprint('valid')",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n");
    assert!(
        output.status.success(),
        "/openapi.json is not valid OpenAPI 3.1 (last lines, reversed):\n{}",
        tail.chars().take(4000).collect::<String>()
    );
}
