//! Structured logs on stderr: text for people or JSON lines for collectors, at the
//! configured level. What is logged is decided where it happens (see `observe.rs`): route
//! templates, statuses and latencies, never tokens, headers or bodies.

use crate::config::{ConfigError, LogFormat, ServerConfig};

/// Installs the global subscriber; a second call (tests, embedding) keeps the first.
pub fn init(config: &ServerConfig) -> Result<(), ConfigError> {
    let level = config.log_level()?;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    Ok(())
}
