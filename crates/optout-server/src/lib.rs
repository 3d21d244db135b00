//! The optout HTTP service: what members (through the platform's apps and the settings
//! page) and the platform's own systems talk to.
//!
//! - [`app`] builds the whole service as an axum `Router` over an [`AppState`]; tests
//!   drive it with `tower::ServiceExt::oneshot`, the binary serves it with [`serve`].
//! - Members (member tokens) read and change only their own settings under `/v1/me`;
//!   platform services (scoped service tokens) append batches of choices, check consent
//!   in bulk, read one member's consent and signed ledger checkpoints.
//! - Every error is an RFC 9457 problem document from one mapping table ([`problem`]).
//! - Limits, rate limits, metrics, request ids and graceful shutdown are part of the app,
//!   configured by [`config::ServerConfig`] (flags over `OPTOUT_*` over a TOML file).

pub mod auth;
pub mod config;
pub mod dto;
pub mod json_body;
pub mod limits;
pub mod logging;
pub mod member_settings;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod page;
pub mod problem;
pub mod rate_limit;
pub mod report;
pub mod routes;
pub mod server;
pub mod snapshots;
pub mod state;
pub mod token;
pub mod usage;

pub use config::ServerConfig;
pub use limits::ServerLimits;
pub use problem::{ApiError, ProblemDocument};
pub use routes::app;
pub use server::{serve, shutdown_signal};
pub use state::{AppState, ServedLedger};
pub use token::{Principal, TokenIssuer, TokenKey, TokenRules, TokenVerifier};
