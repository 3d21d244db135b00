//! Running the service on a socket: serve until SIGTERM or Ctrl-C, then stop accepting,
//! let in-flight requests finish (up to a grace period), and flush the ledger's writer.
//! A background task keeps the consent index current with events appended by others.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::routes::app;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` resolves, then drains and closes the
/// ledger. Returns once every accepted request was answered or the grace period passed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let refresher = tokio::spawn(refresh_index(state.clone()));
    let grace = Duration::from_secs(state.limits().shutdown_grace_seconds);
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let mut drain_deadline = stop_receiver.clone();
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop_sender.send(true);
    });
    let outcome = tokio::select! {
        outcome = server => outcome,
        () = async move {
            let _ = drain_deadline.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "requests still running after the grace period; stopping anyway");
            Ok(())
        }
    };
    drop(stop_receiver);
    refresher.abort();
    let ledger = std::sync::Arc::clone(&state.shared().ledger);
    // Appends already queued finish and are made durable before the writer stops.
    let _ = tokio::task::spawn_blocking(move || ledger.close()).await;
    tracing::info!("ledger writer flushed and stopped");
    outcome
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Applies events appended by other writers (another process, later other nodes).
async fn refresh_index(state: AppState) {
    let period = Duration::from_millis(state.limits().index_refresh_milliseconds.max(10));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let result = state
            .blocking(|state| state.shared().index.catch_up(state.ledger()))
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "consent index refresh failed");
        }
    }
}
