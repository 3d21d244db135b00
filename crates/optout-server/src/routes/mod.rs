//! The router: `fn app(state) -> Router`, every route of the service in one place, with
//! each group's body limit and the request-observing middleware.

pub mod member;
pub mod operations;
pub mod platform;
pub mod reports;
pub mod snapshots;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::json_body::BodyBytesMax;
use crate::observe::observe;
use crate::page;
use crate::problem::ApiError;
use crate::state::AppState;

/// The whole service as a router, ready for `axum::serve` or `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let limits = *state.limits();
    let member_routes = Router::new()
        .route("/v1/me/settings", get(member::get_settings))
        .route("/v1/me/settings/{purpose}", put(member::put_setting))
        .route("/v1/me/history", get(member::get_history))
        .route("/v1/me/usage", get(member::get_usage))
        .layer(DefaultBodyLimit::max(limits.member_body_bytes_max))
        .layer(Extension(BodyBytesMax(limits.member_body_bytes_max)));
    let platform_routes = Router::new()
        .route("/v1/choices:batch", post(platform::post_choices_batch))
        .route("/v1/consent:check", post(platform::post_consent_check))
        .route(
            "/v1/members/{id}/consent",
            get(platform::get_member_consent),
        )
        .route("/v1/ledger/checkpoint", get(platform::get_checkpoint))
        .route("/v1/reports/choices", get(reports::get_choice_report))
        .route("/v1/snapshots", post(snapshots::post_snapshot))
        .route("/v1/snapshots/{id}", get(snapshots::get_snapshot))
        .route(
            "/v1/snapshots/{id}/files/{name}",
            get(snapshots::get_snapshot_file),
        )
        .layer(DefaultBodyLimit::max(limits.platform_body_bytes_max))
        .layer(Extension(BodyBytesMax(limits.platform_body_bytes_max)));
    let page_routes = Router::new()
        .route("/settings", get(page::show))
        .route("/settings/login", get(page::login))
        .route("/settings/app.js", get(page::script))
        .route("/settings/{purpose}", post(page::change))
        .layer(DefaultBodyLimit::max(limits.member_body_bytes_max));
    let operation_routes = Router::new()
        .route("/healthz", get(operations::healthz))
        .route("/readyz", get(operations::readyz))
        .route("/metrics", get(operations::metrics))
        .route("/problems/{slug}", get(operations::problem_type));
    Router::new()
        .merge(member_routes)
        .merge(platform_routes)
        .merge(page_routes)
        .merge(operation_routes)
        .fallback(operations::not_found)
        .method_not_allowed_fallback(operations::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::internal("a handler panicked"))
        }))
        .with_state(state)
}
