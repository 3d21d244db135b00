//! Operational endpoints: liveness, readiness, Prometheus metrics, the description of
//! each problem type, and the answers for unknown routes and methods.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::dto::HealthResponse;
use crate::problem::{problem_kinds, ApiError};
use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        ledger_position: None,
        index_position: None,
    })
}

/// `GET /readyz`: the ledger answers and the index is built.
pub async fn readyz(State(state): State<AppState>) -> Response {
    // A writer whose commit failed refuses every later write until a restart: the
    // process must stop receiving traffic even though reads still work.
    let writer_failed = state
        .shared()
        .ledger
        .writer_metrics()
        .is_some_and(|metrics| metrics.poisoned.load(std::sync::atomic::Ordering::Relaxed));
    if writer_failed {
        tracing::error!(
            "not ready: the ledger writer failed a commit and refuses writes; restart the service"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthResponse {
                status: "writer_failed",
                ledger_position: None,
                index_position: None,
            }),
        )
            .into_response();
    }
    let answer = state
        .blocking(|state| {
            let head = state.ledger().head()?;
            Ok((head, state.shared().index.applied_position()))
        })
        .await;
    match answer {
        Ok((head, index_position)) => Json(HealthResponse {
            status: "ready",
            ledger_position: Some(head.map_or_else(Default::default, |head| head.position)),
            index_position: Some(index_position),
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthResponse {
                    status: "unavailable",
                    ledger_position: None,
                    index_position: None,
                }),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let gauges = state.blocking(|state| Ok(state.gauges())).await?;
    let body = state.shared().metrics.render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// `GET /problems/{slug}`: what a problem type means.
pub async fn problem_type(Path(slug): Path<String>) -> Result<Response, ApiError> {
    let kind = problem_kinds()
        .into_iter()
        .find(|kind| kind.slug == slug)
        .ok_or(ApiError::NotFound)?;
    let text = format!(
        "{title}\n\nHTTP status {status}. Problem type /problems/{slug}; see docs/service.md.\n",
        title = kind.title,
        status = kind.status.as_u16(),
        slug = kind.slug,
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Any path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
