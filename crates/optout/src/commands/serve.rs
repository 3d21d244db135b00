//! `optout serve`: run the HTTP service on the data directory's ledger.
//!
//! Configuration comes from flags, then `OPTOUT_*` environment variables, then the TOML
//! file given with `--config` (see `docs/service.md`). Once listening, one JSON line
//! `{"listening": "ADDR"}` goes to stdout, so scripts and tests that bind port 0 learn the
//! port. SIGTERM or Ctrl-C stops accepting, lets requests in flight finish, and flushes
//! the ledger writer before the process exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use optout_server::{logging, serve, shutdown_signal, AppState, ServerConfig};

use crate::commands::{open_data_dir, print_json};
use crate::data_dir::{DataDir, Opened};
use crate::exit::{CliResult, Context};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// A TOML configuration file (flags and OPTOUT_* variables override it).
    #[arg(long, env = "OPTOUT_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(data_dir: &DataDir, args: &ServeArgs) -> CliResult {
    let flags: Vec<(&str, String)> = args
        .listen
        .iter()
        .map(|listen| ("listen", listen.clone()))
        .collect();
    let config = ServerConfig::load(
        args.config.as_deref(),
        |name| std::env::var(name).ok(),
        &flags,
    )
    .context_bad_input("configuration")?;
    logging::init(&config).context_bad_input("configuration")?;
    let opened = open_data_dir(data_dir)?;
    serve_until_signal(data_dir, opened, config, |address| {
        print_json(&serde_json::json!({ "listening": address.to_string() }))
    })
}

/// Serves the opened data directory until SIGTERM or Ctrl-C. `on_listening` runs once the
/// socket is bound and the index is built, before the first request is accepted.
pub fn serve_until_signal(
    data_dir: &DataDir,
    opened: Opened,
    config: ServerConfig,
    on_listening: impl FnOnce(SocketAddr) -> CliResult,
) -> CliResult {
    let verifier = config
        .token_verifier(data_dir.path())
        .context_bad_input("token keys")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("optout-serve")
        .build()
        .map_err(anyhow::Error::from)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .context_bad_input(format!(
                "cannot listen on {} (is another server using it? choose another address with --listen)",
                config.listen
            ))?;
        let address = listener.local_addr().map_err(anyhow::Error::from)?;
        let ledger = Arc::new(opened.ledger);
        let signer = Arc::new(opened.signer);
        let clock = opened.clock;
        let limits = config.limits;
        let state = tokio::task::spawn_blocking(move || {
            AppState::new(ledger, signer, clock, verifier, limits)
        })
        .await
        .map_err(anyhow::Error::from)?
        .map_err(anyhow::Error::from)?;
        tracing::info!(%address, "listening");
        on_listening(address)?;
        serve(listener, state, shutdown_signal())
            .await
            .map_err(anyhow::Error::from)?;
        Ok(())
    })
}
