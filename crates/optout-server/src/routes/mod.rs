//! The router: `fn app(state) -> Router`, every route of the service in one place, with
//! each group's body limit and the request-observing middleware.

pub mod member;
pub mod operations;
pub mod platform;
pub mod reports;
pub mod snapshots;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{get, post, put, MethodRouter};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;

use crate::json_body::BodyBytesMax;
use crate::observe::observe;
use crate::page;
use crate::problem::ApiError;
use crate::state::AppState;

/// Who calls a group of `/v1` routes, which decides the body size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Member,
    Platform,
}

/// One `/v1` route: the table [`app`] is built from and the OpenAPI test checks.
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub caller: Caller,
    pub handler: MethodRouter<AppState>,
}

/// Every `/v1` route. Each handler has a `#[utoipa::path]` with the same method and path,
/// listed in `openapi::ApiDoc`; `tests/openapi.rs` checks the two lists are the same.
pub fn api_routes() -> Vec<ApiRoute> {
    use Caller::{Member, Platform};
    let route = |method: Method, path, caller, handler| ApiRoute {
        method,
        path,
        caller,
        handler,
    };
    vec![
        route(
            Method::GET,
            "/v1/me/settings",
            Member,
            get(member::get_settings),
        ),
        route(
            Method::PUT,
            "/v1/me/settings/{purpose}",
            Member,
            put(member::put_setting),
        ),
        route(
            Method::GET,
            "/v1/me/history",
            Member,
            get(member::get_history),
        ),
        route(Method::GET, "/v1/me/usage", Member, get(member::get_usage)),
        route(
            Method::POST,
            "/v1/choices:batch",
            Platform,
            post(platform::post_choices_batch),
        ),
        route(
            Method::POST,
            "/v1/consent:check",
            Platform,
            post(platform::post_consent_check),
        ),
        route(
            Method::GET,
            "/v1/members/{id}/consent",
            Platform,
            get(platform::get_member_consent),
        ),
        route(
            Method::GET,
            "/v1/ledger/checkpoint",
            Platform,
            get(platform::get_checkpoint),
        ),
        route(
            Method::GET,
            "/v1/reports/choices",
            Platform,
            get(reports::get_choice_report),
        ),
        route(
            Method::POST,
            "/v1/snapshots",
            Platform,
            post(snapshots::post_snapshot),
        ),
        route(
            Method::GET,
            "/v1/snapshots/{id}",
            Platform,
            get(snapshots::get_snapshot),
        ),
        route(
            Method::GET,
            "/v1/snapshots/{id}/files/{name}",
            Platform,
            get(snapshots::get_snapshot_file),
        ),
    ]
}

/// The whole service as a router, ready for `axum::serve` or `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    let limits = *state.limits();
    let mut member_routes = Router::new();
    let mut platform_routes = Router::new();
    for route in api_routes() {
        match route.caller {
            Caller::Member => member_routes = member_routes.route(route.path, route.handler),
            Caller::Platform => platform_routes = platform_routes.route(route.path, route.handler),
        }
    }
    let member_routes = member_routes
        .layer(DefaultBodyLimit::max(limits.member_body_bytes_max))
        .layer(Extension(BodyBytesMax(limits.member_body_bytes_max)));
    let platform_routes = platform_routes
        .layer(DefaultBodyLimit::max(limits.platform_body_bytes_max))
        .layer(Extension(BodyBytesMax(limits.platform_body_bytes_max)));
    let page_routes = Router::new()
        .route("/settings", get(page::show))
        .route("/settings/login", get(page::login))
        .route("/settings/app.js", get(page::script))
        .route("/settings/{purpose}", post(page::change))
        .layer(DefaultBodyLimit::max(limits.member_body_bytes_max));
    let operation_routes = Router::new()
        .route("/openapi.json", get(crate::openapi::get_openapi))
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
