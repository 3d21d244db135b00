//! A service over a fresh SQLite ledger in a temporary directory, driven without a
//! socket through `tower::ServiceExt::oneshot`, with a manual clock and fixed keys.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use optout_core::policy::DEFAULT_POLICY_TOML;
use optout_core::{
    Jurisdiction, LedgerSigner, ManualClock, MemberId, PolicyDocument, PolicyRecord, Timestamp,
};
use optout_server::token::{TokenIssuer, TokenKey, TokenRules, TokenVerifier};
use optout_server::{app, AppState, ServerLimits};
use optout_sqlite::SqliteLedger;
use optout_store::{Ledger, NewEvent};
use serde_json::Value;
use tower::ServiceExt;

pub const HS256_SECRET: [u8; 32] = [7; 32];
pub const TOKEN_SEED: [u8; 32] = [2; 32];
pub const LEDGER_SEED: [u8; 32] = [1; 32];

pub fn t(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

pub struct Service {
    pub state: AppState,
    pub ledger: Arc<SqliteLedger>,
    pub clock: Arc<ManualClock>,
    pub issuer: TokenIssuer,
    _dir: tempfile::TempDir,
}

/// What one request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem document with this status and type slug; returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status} {slug}, got {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{}",
            self.text()
        );
        let document = self.json();
        assert_eq!(document["type"], format!("/problems/{slug}"), "{document}");
        assert_eq!(document["status"], status);
        assert!(document["title"].is_string());
        assert!(document["detail"].is_string());
        document
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.json()
    }
}

impl Service {
    /// The default policy, clock at 2024-06-01 (after the opt-out deadline).
    pub fn new() -> Self {
        Self::with_limits(ServerLimits::default())
    }

    pub fn with_limits(limits: ServerLimits) -> Self {
        Self::with_policies(limits, &[DEFAULT_POLICY_TOML])
    }

    pub fn with_policies(limits: ServerLimits, policies: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t("2024-06-01T00:00:00Z")));
        let ledger =
            Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite"), clock.clone()).unwrap());
        for text in policies {
            let document = PolicyDocument::parse(text, "test policy").unwrap();
            ledger
                .append(vec![NewEvent::Policy(PolicyRecord {
                    version: document.version,
                    effective_from: document.effective_from,
                    document: text.to_string(),
                })])
                .unwrap();
        }
        let verifier = TokenVerifier::new(TokenRules::default())
            .with_eddsa_public_key(TokenKey::from_seed(TOKEN_SEED).public_key())
            .with_hs256_secret(&HS256_SECRET)
            .unwrap();
        let state = AppState::new(
            ledger.clone(),
            Arc::new(LedgerSigner::from_seed(LEDGER_SEED)),
            clock.clone(),
            verifier,
            limits,
        )
        .unwrap();
        Service {
            state,
            ledger,
            clock,
            issuer: TokenKey::from_seed(TOKEN_SEED).issuer(TokenRules::default()),
            _dir: dir,
        }
    }

    pub fn now(&self) -> Timestamp {
        use optout_core::Clock;
        self.clock.now()
    }

    pub fn member_token(&self, member: u64, jurisdiction: &str) -> String {
        self.issuer
            .member(
                MemberId(member),
                Jurisdiction::parse(jurisdiction).ok(),
                self.now(),
                3600,
            )
            .unwrap()
    }

    pub fn service_token(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|scope| scope.to_string()).collect();
        self.issuer
            .service("test-platform", &scopes, self.now(), 3600)
            .unwrap()
    }

    /// The data directory (the ledger's directory).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The ledger head position (0 when empty).
    pub fn head(&self) -> u64 {
        self.ledger
            .head()
            .unwrap()
            .map_or(0, |head| head.position.get())
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = match body {
            Some(bytes) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str, token: &str) -> Answer {
        self.request(Method::GET, uri, Some(token), &[], None).await
    }

    pub async fn put_json(
        &self,
        uri: &str,
        token: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.request(
            Method::PUT,
            uri,
            Some(token),
            headers,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.request(
            Method::POST,
            uri,
            Some(token),
            &[],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }
}
