//! The middleware around every request: a request id (the caller's `x-request-id` if it
//! is sane, else a fresh one) echoed on the response, a tracing span carrying it, the
//! request timeout, the request counter and latency histogram, and one log line per
//! request. Logs name the route template, method, status and latency; never a header,
//! a body or a query string, so no token or member data reaches the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::problem::ApiError;
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest caller-supplied request id kept.
pub const REQUEST_ID_BYTES_MAX: usize = 64;

pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!("request", id = %request_id, method = %method, route = %route);
    let timeout_seconds = state.limits().request_timeout_seconds;
    let run = next.run(request).instrument(span.clone());
    let mut response = match tokio::time::timeout(Duration::from_secs(timeout_seconds), run).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            seconds: timeout_seconds,
        }
        .into_response(),
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .shared()
        .metrics
        .observe(&route, &method, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn request_id(request: &Request) -> String {
    let supplied = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= REQUEST_ID_BYTES_MAX
                && value
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
        });
    match supplied {
        Some(value) => value.to_string(),
        None => fresh_request_id(),
    }
}

/// A process-unique id: a random prefix drawn once and a counter.
fn fresh_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        hex::encode(bytes)
    });
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}
