//! Report endpoints, for privacy officers and auditors holding `reports:read`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::{ReportsRead, ServiceCaller};
use crate::dto::{ChoiceReport, ReportQuery};
use crate::problem::ApiError;
use crate::problem::ProblemDocument;
use crate::report::{choice_report, to_csv, ReportBy};
use crate::routes::platform::{defined_purpose, query_error};
use crate::state::AppState;

/// Media type of CSV reports.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// `GET /v1/reports/choices?by=day|jurisdiction|source[&purpose=P][&format=json|csv]`.
#[utoipa::path(
    get,
    path = "/v1/reports/choices",
    tag = "reports",
    summary = "Choices allowed and denied per day, jurisdiction or source",
    params(ReportQuery),
    responses(
        (status = 200, description = "JSON by default; CSV (`BY,allowed,denied,total`) with `?format=csv` or `Accept: text/csv`",
            content(
                (ChoiceReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 404, description = "A problem document: `unknown-purpose`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["reports:read"])),
)]
pub async fn get_choice_report(
    State(state): State<AppState>,
    _caller: ServiceCaller<ReportsRead>,
    headers: HeaderMap,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let by = ReportBy::parse(query.by.as_deref().ok_or(ApiError::InvalidParameter {
        what: "by",
        detail: "missing: give ?by=day, ?by=jurisdiction or ?by=source".into(),
    })?)?;
    let csv = wants_csv(query.format.as_deref(), &headers)?;
    let purpose = query
        .purpose
        .map(|name| defined_purpose(&state.shared().index.policies(), &name))
        .transpose()?;
    let report = state
        .blocking(move |state| choice_report(state.ledger(), by, purpose))
        .await?;
    Ok(if csv {
        ([(header::CONTENT_TYPE, CSV_CONTENT_TYPE)], to_csv(&report)).into_response()
    } else {
        Json(report).into_response()
    })
}

/// CSV when `?format=csv`, or without `format` when `Accept` names `text/csv`.
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::InvalidParameter {
            what: "format",
            detail: format!(
                "{:?} is not json or csv",
                other.chars().take(64).collect::<String>()
            ),
        }),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|media| {
                media
                    .split(';')
                    .next()
                    .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"))
            })),
    }
}
