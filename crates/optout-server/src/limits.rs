//! Named limits of the service, each with a default: body sizes, batch sizes, rates,
//! timeouts. Nothing is unlimited; every limit is set from the config (see `config.rs`
//! and `docs/service.md`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// Largest body of a member request (`PUT /v1/me/settings/{purpose}`).
    pub member_body_bytes_max: usize,
    /// Largest body of a platform request (`choices:batch`, `consent:check`).
    pub platform_body_bytes_max: usize,
    /// Choices in one `POST /v1/choices:batch`.
    pub batch_choices_max: usize,
    /// Member ids in one `POST /v1/consent:check`.
    pub check_members_max: usize,
    /// Choices returned by `GET /v1/me/history` (the most recent ones).
    pub history_choices_max: usize,
    /// Memory for the included-member sets of datasets kept for `GET /v1/me/usage`
    /// (their serialized size); a larger set is read for each request instead.
    pub usage_member_sets_cached_bytes_max: usize,
    /// Snapshots kept under `DIR/snapshots`; taking another beyond it is refused (409).
    pub snapshots_kept_max: usize,
    /// Sustained requests per second one member may make.
    pub member_requests_per_second: u32,
    /// Requests one member may make in a burst.
    pub member_requests_burst: u32,
    /// Sustained requests per second one service token may make.
    pub service_requests_per_second: u32,
    /// Requests one service token may make in a burst.
    pub service_requests_burst: u32,
    /// Members and tokens whose request rates are tracked at once.
    pub rate_limit_keys_max: usize,
    /// A request taking longer is answered 503 `timeout`.
    pub request_timeout_seconds: u64,
    /// After SIGTERM or Ctrl-C, how long in-flight requests may take to finish.
    pub shutdown_grace_seconds: u64,
    /// Clock difference tolerated when checking a token's `exp` and `nbf`.
    pub token_leeway_seconds: u64,
    /// Longest lifetime `optout token` mints.
    pub token_ttl_seconds_max: u64,
    /// How often the consent index looks for events appended by others.
    pub index_refresh_milliseconds: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            member_body_bytes_max: 16 * 1024,
            platform_body_bytes_max: 64 * 1024 * 1024,
            batch_choices_max: 10_000,
            check_members_max: 1_000_000,
            history_choices_max: 1_000,
            usage_member_sets_cached_bytes_max: 256 * 1024 * 1024,
            snapshots_kept_max: 1_000,
            member_requests_per_second: 5,
            member_requests_burst: 20,
            service_requests_per_second: 1_000,
            service_requests_burst: 2_000,
            rate_limit_keys_max: 1_000_000,
            request_timeout_seconds: 30,
            shutdown_grace_seconds: 30,
            token_leeway_seconds: 30,
            token_ttl_seconds_max: 30 * 24 * 3600,
            index_refresh_milliseconds: 1_000,
        }
    }
}
