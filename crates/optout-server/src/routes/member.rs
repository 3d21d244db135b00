//! Member endpoints under `/v1/me`: the caller is the token's member, always.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use optout_core::Source;

use crate::auth::MemberCaller;
use crate::dto::{HistoryResponse, SetChoiceRequest, SettingsResponse, UsageResponse};
use crate::json_body::JsonBody;
use crate::member_settings::{self, ChoiceRequest};
use crate::problem::ApiError;
use crate::problem::ProblemDocument;
use crate::state::AppState;
use crate::usage;

/// Header a client sets so that a retried `PUT` writes one event.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Header on a response answered from an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";
/// Global Privacy Control request header.
pub const GPC_HEADER: &str = "sec-gpc";

/// `GET /v1/me/settings`.
#[utoipa::path(
    get,
    path = "/v1/me/settings",
    tag = "member",
    summary = "The member's settings: each purpose's effective value and why",
    params(("Sec-GPC" = Option<String>, Header, description = "`1`: Global Privacy Control is on")),
    responses((status = 200, description = "The settings now", body = SettingsResponse)),
    security(("member_token" = [])),
)]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: MemberCaller,
    headers: HeaderMap,
) -> Result<Json<SettingsResponse>, ApiError> {
    let gpc_signal = gpc_signal(&headers);
    state
        .blocking(move |state| member_settings::settings(state, caller, gpc_signal))
        .await
        .map(Json)
}

/// `PUT /v1/me/settings/{purpose}` with `{"allowed": bool}` → the signed receipt.
#[utoipa::path(
    put,
    path = "/v1/me/settings/{purpose}",
    tag = "member",
    summary = "Set the member's choice for a purpose; answers the signed receipt",
    params(
        ("purpose" = String, Path, description = "A purpose of the policy in force", example = "ai_training"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f]+$", description = "1-256 bytes without control characters: a retry with the same key writes one event and answers the same receipt"),
        ("Sec-GPC" = Option<String>, Header, description = "`1`: Global Privacy Control is on"),
    ),
    request_body = SetChoiceRequest,
    responses(
        (status = 200, description = "The signed receipt of the choice", body = crate::openapi::ReceiptSchema, headers(("Idempotent-Replayed" = String, description = "`true` when answered from an earlier request with the same key"))),
        (status = 404, description = "A problem document: `unknown-purpose`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A problem document: `setting-not-offered`, `idempotency-key-reused`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("member_token" = [])),
)]
pub async fn put_setting(
    State(state): State<AppState>,
    caller: MemberCaller,
    Path(purpose_name): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SetChoiceRequest>,
) -> Result<Response, ApiError> {
    let request = ChoiceRequest {
        purpose_name,
        allowed: body.allowed,
        gpc_signal: gpc_signal(&headers),
        idempotency_key: idempotency_key(&headers)?,
        source: Source::Api,
    };
    let (receipt, replayed) = state
        .blocking(move |state| member_settings::record_choice(state, caller, request))
        .await?;
    let mut response = Json(receipt).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /v1/me/history`.
#[utoipa::path(
    get,
    path = "/v1/me/history",
    tag = "member",
    summary = "The member's choices, oldest first, each with its receipt",
    responses((status = 200, description = "The choices, oldest first", body = HistoryResponse)),
    security(("member_token" = [])),
)]
pub async fn get_history(
    State(state): State<AppState>,
    caller: MemberCaller,
) -> Result<Json<HistoryResponse>, ApiError> {
    let limit = state.limits().history_choices_max;
    state
        .blocking(move |state| member_settings::history(state, caller, limit))
        .await
        .map(Json)
}

/// `GET /v1/me/usage`: the datasets that included the member, and those that could not
/// be checked.
#[utoipa::path(
    get,
    path = "/v1/me/usage",
    tag = "member",
    summary = "The datasets that included the member, and those that could not be checked",
    responses((status = 200, description = "Datasets included, not included and unchecked", body = UsageResponse)),
    security(("member_token" = [])),
)]
pub async fn get_usage(
    State(state): State<AppState>,
    caller: MemberCaller,
) -> Result<Json<UsageResponse>, ApiError> {
    state
        .blocking(move |state| usage::usage(state, caller.member))
        .await
        .map(Json)
}

/// Whether the request carries `Sec-GPC: 1`.
pub fn gpc_signal(headers: &HeaderMap) -> bool {
    headers
        .get(GPC_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim() == "1")
}

/// The `Idempotency-Key` header, if present and readable.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|value| {
            value
                .to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::InvalidParameter {
                    what: "Idempotency-Key header",
                    detail: "must be printable ASCII".into(),
                })
        })
        .transpose()
}
