//! Errors at the HTTP edge, as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every error a client can see is one [`ApiError`] variant, and [`ApiError::kind`] is the
//! one table that gives each its status, its stable `type` slug and its title: clients
//! branch on the `type`, never on the human-readable `detail`. A 5xx never carries the
//! underlying cause to the client; that goes to the log with the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use optout_index::IndexError;
use optout_store::StoreError;
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of every problem `type`; `GET /problems/{slug}` describes each one.
pub const PROBLEM_TYPE_PREFIX: &str = "/problems/";

/// Everything a request can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no bearer token: send `Authorization: Bearer <JWT>`")]
    TokenMissing,
    #[error("the token is not valid: {0}")]
    TokenInvalid(String),
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token is not valid yet (nbf is in the future)")]
    TokenNotYetValid,
    #[error("the token was issued for another audience")]
    TokenWrongAudience,
    #[error("this endpoint is for members: use a member token (with `sub` and `jurisdiction`, without `scope`)")]
    MemberTokenRequired,
    #[error("this endpoint is for platform services: use a service token with scope `{required}`")]
    ServiceTokenRequired { required: &'static str },
    #[error("the token lacks scope `{required}`")]
    ScopeMissing { required: &'static str },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request body is larger than {bytes_max} bytes")]
    BodyTooLarge { bytes_max: usize },
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("field `{field}` may not be set by the caller")]
    FieldNotSettable { field: String },
    #[error("{0}")]
    InvalidBody(String),
    #[error("invalid {what}: {detail}")]
    InvalidParameter { what: &'static str, detail: String },
    #[error("unknown purpose {purpose:?} ({location}): the policy in force defines {known}")]
    UnknownPurpose {
        purpose: String,
        location: String,
        known: String,
    },
    #[error("purpose {purpose} is not offered in jurisdiction {jurisdiction}: the data is not used for it there")]
    SettingNotOffered {
        purpose: String,
        jurisdiction: String,
    },
    #[error("{count} items in one request; at most {max} allowed")]
    BatchTooLarge { count: usize, max: usize },
    #[error("the cutoff {0} is in the future")]
    CutoffInFuture(String),
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("the ledger refused the request: {0}")]
    RejectedByLedger(String),
    #[error("the ledger is empty")]
    LedgerEmpty,
    #[error("no snapshot {0:?}: snapshot ids are what POST /v1/snapshots answered")]
    SnapshotNotFound(String),
    #[error("snapshot file {name:?} does not exist; the snapshot has {known}")]
    SnapshotFileNotFound { name: String, known: String },
    #[error("{kept} snapshots are kept, the most allowed (limits.snapshots_kept_max); remove old ones from the data directory's snapshots/")]
    SnapshotLimitReached { kept: usize },
    #[error("the service runs without a data directory, so it cannot keep snapshots")]
    NoDataDirectory,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("the request took longer than {seconds} s")]
    Timeout { seconds: u64 },
    #[error("the ledger is not accepting writes: {0}")]
    LedgerUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One row of the mapping table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemKind {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
}

impl ApiError {
    /// THE mapping table: each error's status, stable type slug and title.
    pub fn kind(&self) -> ProblemKind {
        use StatusCode as S;
        let (status, slug, title) = match self {
            ApiError::TokenMissing => (S::UNAUTHORIZED, "token-missing", "Bearer token missing"),
            ApiError::TokenInvalid(_) => (S::UNAUTHORIZED, "token-invalid", "Token invalid"),
            ApiError::TokenExpired => (S::UNAUTHORIZED, "token-expired", "Token expired"),
            ApiError::TokenNotYetValid => (
                S::UNAUTHORIZED,
                "token-not-yet-valid",
                "Token not yet valid",
            ),
            ApiError::TokenWrongAudience => (
                S::UNAUTHORIZED,
                "token-wrong-audience",
                "Token for another audience",
            ),
            ApiError::MemberTokenRequired => (
                S::FORBIDDEN,
                "member-token-required",
                "Member token required",
            ),
            ApiError::ServiceTokenRequired { .. } => (
                S::FORBIDDEN,
                "service-token-required",
                "Service token required",
            ),
            ApiError::ScopeMissing { .. } => (S::FORBIDDEN, "scope-missing", "Scope missing"),
            ApiError::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Body must be JSON",
            ),
            ApiError::BodyTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            ApiError::FieldNotSettable { .. } => {
                (S::BAD_REQUEST, "field-not-settable", "Field may not be set")
            }
            ApiError::InvalidBody(_) => (S::BAD_REQUEST, "invalid-body", "Invalid request body"),
            ApiError::InvalidParameter { .. } => {
                (S::BAD_REQUEST, "invalid-parameter", "Invalid parameter")
            }
            ApiError::UnknownPurpose { .. } => (S::NOT_FOUND, "unknown-purpose", "Unknown purpose"),
            ApiError::SettingNotOffered { .. } => (
                S::CONFLICT,
                "setting-not-offered",
                "Setting not offered in this jurisdiction",
            ),
            ApiError::BatchTooLarge { .. } => {
                (S::BAD_REQUEST, "batch-too-large", "Batch too large")
            }
            ApiError::CutoffInFuture(_) => {
                (S::BAD_REQUEST, "cutoff-in-future", "Cutoff in the future")
            }
            ApiError::IdempotencyConflict(_) => (
                S::CONFLICT,
                "idempotency-key-reused",
                "Idempotency key reused for a different choice",
            ),
            ApiError::RejectedByLedger(_) => (
                S::BAD_REQUEST,
                "rejected-by-ledger",
                "Rejected by the ledger",
            ),
            ApiError::LedgerEmpty => (S::NOT_FOUND, "ledger-empty", "Ledger empty"),
            ApiError::SnapshotNotFound(_) => {
                (S::NOT_FOUND, "snapshot-not-found", "Snapshot not found")
            }
            ApiError::SnapshotFileNotFound { .. } => (
                S::NOT_FOUND,
                "snapshot-file-not-found",
                "Snapshot file not found",
            ),
            ApiError::SnapshotLimitReached { .. } => (
                S::CONFLICT,
                "snapshot-limit-reached",
                "Too many snapshots kept",
            ),
            ApiError::NoDataDirectory => (
                S::SERVICE_UNAVAILABLE,
                "no-data-directory",
                "No data directory",
            ),
            ApiError::NotFound => (S::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::RateLimited { .. } => {
                (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            }
            ApiError::Timeout { .. } => (S::SERVICE_UNAVAILABLE, "timeout", "Request timed out"),
            ApiError::LedgerUnavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "ledger-unavailable",
                "Ledger unavailable",
            ),
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        };
        ProblemKind {
            status,
            slug,
            title,
        }
    }

    /// One error of each kind: the list the docs, the `/problems/{slug}` pages and the
    /// OpenAPI document are generated from.
    pub fn examples() -> Vec<ApiError> {
        vec![
            ApiError::TokenMissing,
            ApiError::TokenInvalid("bad signature".into()),
            ApiError::TokenExpired,
            ApiError::TokenNotYetValid,
            ApiError::TokenWrongAudience,
            ApiError::MemberTokenRequired,
            ApiError::ServiceTokenRequired {
                required: "consent:read",
            },
            ApiError::ScopeMissing {
                required: "consent:read",
            },
            ApiError::UnsupportedMediaType,
            ApiError::BodyTooLarge { bytes_max: 16_384 },
            ApiError::MalformedJson("expected value at line 1 column 1".into()),
            ApiError::FieldNotSettable {
                field: "member".into(),
            },
            ApiError::InvalidBody("missing field `allowed`".into()),
            ApiError::InvalidParameter {
                what: "member id",
                detail: "not a number".into(),
            },
            ApiError::UnknownPurpose {
                purpose: "ai_trainig".into(),
                location: "path".into(),
                known: "ai_personalization, ai_training".into(),
            },
            ApiError::SettingNotOffered {
                purpose: "ai_training".into(),
                jurisdiction: "DE".into(),
            },
            ApiError::BatchTooLarge {
                count: 20_000,
                max: 10_000,
            },
            ApiError::CutoffInFuture("2999-01-01T00:00:00Z".into()),
            ApiError::IdempotencyConflict("key k1 was used for a different choice".into()),
            ApiError::RejectedByLedger("invalid idempotency key".into()),
            ApiError::LedgerEmpty,
            ApiError::SnapshotNotFound("0123456789abcdef0123456789abcdef".into()),
            ApiError::SnapshotFileNotFound {
                name: "members.csv".into(),
                known: "explicit_allowed.roaring64, snapshot.json".into(),
            },
            ApiError::SnapshotLimitReached { kept: 1_000 },
            ApiError::NoDataDirectory,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::RateLimited {
                retry_after_seconds: 1,
            },
            ApiError::Timeout { seconds: 10 },
            ApiError::LedgerUnavailable("a commit failed".into()),
            ApiError::Internal("cause".into()),
        ]
    }

    /// The `detail` the client sees: the message, except for server faults.
    fn client_detail(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "the server failed; the log has the cause under this request's x-request-id"
                    .to_string()
            }
            other => other.to_string(),
        }
    }

    /// An unexpected failure: logged in full, reported to the client without detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }
}

/// Every problem kind, once each, in table order.
pub fn problem_kinds() -> Vec<ProblemKind> {
    ApiError::examples().iter().map(ApiError::kind).collect()
}

/// The problem document (RFC 9457) sent to the client.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProblemDocument {
    /// `/problems/{slug}`: stable; clients branch on it.
    #[serde(rename = "type")]
    pub problem_type: String,
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong, for people.
    pub detail: String,
}

impl ApiError {
    pub fn document(&self) -> ProblemDocument {
        let kind = self.kind();
        ProblemDocument {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{}", kind.slug),
            title: kind.title,
            status: kind.status.as_u16(),
            detail: self.client_detail(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        if kind.status.is_server_error() {
            tracing::error!(problem = kind.slug, cause = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        let mut response = (kind.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        match &self {
            ApiError::RateLimited {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            ApiError::TokenMissing => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"optout\""),
                );
            }
            ApiError::TokenInvalid(_)
            | ApiError::TokenExpired
            | ApiError::TokenNotYetValid
            | ApiError::TokenWrongAudience => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"optout\", error=\"invalid_token\""),
                );
            }
            ApiError::ScopeMissing { .. } | ApiError::ServiceTokenRequired { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"optout\", error=\"insufficient_scope\"",
                    ),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Rejected(reason) => ApiError::RejectedByLedger(reason),
            conflict @ StoreError::IdempotencyConflict { .. } => {
                ApiError::IdempotencyConflict(conflict.to_string())
            }
            StoreError::Poisoned(reason) => ApiError::LedgerUnavailable(reason),
            StoreError::WriterStopped => {
                ApiError::LedgerUnavailable("the writer has stopped".into())
            }
            other @ (StoreError::Backend(_) | StoreError::Corrupt { .. }) => {
                ApiError::internal(other)
            }
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> Self {
        match error {
            IndexError::Store(store) => store.into(),
            shape @ IndexError::BatchShape { .. } => ApiError::InvalidBody(shape.to_string()),
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slug_in_the_table_is_unique() {
        let mut slugs: Vec<_> = problem_kinds().iter().map(|kind| kind.slug).collect();
        slugs.sort_unstable();
        let before = slugs.len();
        slugs.dedup();
        assert_eq!(before, slugs.len());
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let document = ApiError::internal("disk on fire at /secret/path").document();
        assert_eq!(document.status, 500);
        assert_eq!(document.problem_type, "/problems/internal");
        assert!(!document.detail.contains("/secret/path"));
    }

    #[test]
    fn store_errors_map_to_client_or_server_faults() {
        let rejected: ApiError = StoreError::Rejected("bad key".into()).into();
        assert_eq!(rejected.kind().status, StatusCode::BAD_REQUEST);
        let poisoned: ApiError = StoreError::Poisoned("fsync".into()).into();
        assert_eq!(poisoned.kind().status, StatusCode::SERVICE_UNAVAILABLE);
        let backend: ApiError = StoreError::Backend("io".into()).into();
        assert_eq!(backend.kind().slug, "internal");
    }
}
