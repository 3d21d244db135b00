//! The service's counters and latency histograms, rendered in the Prometheus text format
//! at `/metrics`. Written by hand: a few atomics and one map keyed by route template,
//! method and status, so the dependency tree stays small and the route label never holds
//! an id (it is axum's matched path, e.g. `/v1/members/{id}/consent`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default)]
struct Latency {
    buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    count: u64,
    sum_seconds: f64,
}

#[derive(Default, Debug)]
struct HttpFigures {
    /// (route, method, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (route, method) → latency histogram.
    latency: BTreeMap<(String, String), Latency>,
}

/// Counters the routes update.
#[derive(Default, Debug)]
pub struct ServiceMetrics {
    http: Mutex<HttpFigures>,
    /// Choice events this server appended (not counting idempotent replays).
    pub choices_appended: AtomicU64,
    /// Requests answered from an earlier event with the same idempotency key.
    pub choices_replayed: AtomicU64,
    /// Ids checked through `consent:check`.
    pub ids_checked: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited: AtomicU64,
}

/// Figures read from elsewhere at render time.
#[derive(Clone, Copy, Debug, Default)]
pub struct GaugeFigures {
    pub writer_commits: Option<u64>,
    pub writer_events_committed: Option<u64>,
    pub writer_requests: Option<u64>,
    pub writer_last_batch_events: Option<u64>,
    pub writer_largest_batch_events: Option<u64>,
    pub index_applied_position: u64,
    pub index_explicit_members: u64,
    pub index_memory_bytes: u64,
    pub ledger_head_position: u64,
}

impl ServiceMetrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut figures = self
            .http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *figures
            .requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let latency = figures
            .latency
            .entry((route.to_string(), method.to_string()))
            .or_default();
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS_SECONDS
            .iter()
            .zip(latency.buckets.iter_mut())
        {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        latency.count += 1;
        latency.sum_seconds += seconds;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, gauges: &GaugeFigures) -> String {
        let mut out = String::new();
        self.render_http(&mut out);
        let counters = [
            (
                "optout_choices_appended_total",
                "Choice events appended by this server.",
                self.choices_appended.load(Ordering::Relaxed),
            ),
            (
                "optout_choices_replayed_total",
                "Choice requests answered from an earlier event with the same idempotency key.",
                self.choices_replayed.load(Ordering::Relaxed),
            ),
            (
                "optout_consent_ids_checked_total",
                "Member ids checked through consent:check.",
                self.ids_checked.load(Ordering::Relaxed),
            ),
            (
                "optout_rate_limited_total",
                "Requests refused by a rate limit.",
                self.rate_limited.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            metric(&mut out, name, help, "counter", value);
        }
        let writer = [
            (
                "optout_ledger_commits_total",
                "Group-commit transactions made durable.",
                "counter",
                gauges.writer_commits,
            ),
            (
                "optout_ledger_events_committed_total",
                "Events made durable by the group-commit writer.",
                "counter",
                gauges.writer_events_committed,
            ),
            (
                "optout_ledger_append_requests_total",
                "Append calls served by the group-commit writer.",
                "counter",
                gauges.writer_requests,
            ),
            (
                "optout_ledger_last_batch_events",
                "Events in the most recent group commit.",
                "gauge",
                gauges.writer_last_batch_events,
            ),
            (
                "optout_ledger_largest_batch_events",
                "Events in the largest group commit so far.",
                "gauge",
                gauges.writer_largest_batch_events,
            ),
        ];
        for (name, help, kind, value) in writer {
            if let Some(value) = value {
                metric(&mut out, name, help, kind, value);
            }
        }
        let gauges_list = [
            (
                "optout_ledger_head_position",
                "Position of the last event in the ledger.",
                gauges.ledger_head_position,
            ),
            (
                "optout_index_applied_position",
                "Last ledger position reflected in the consent index.",
                gauges.index_applied_position,
            ),
            (
                "optout_index_explicit_members",
                "Members with an explicit choice in the index, summed over purposes.",
                gauges.index_explicit_members,
            ),
            (
                "optout_index_memory_bytes",
                "Bytes the index holds for explicit choices: bitmaps (serialized size) and dense layouts.",
                gauges.index_memory_bytes,
            ),
        ];
        for (name, help, value) in gauges_list {
            metric(&mut out, name, help, "gauge", value);
        }
        out
    }

    fn render_http(&self, out: &mut String) {
        let figures = self
            .http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = writeln!(out, "# HELP optout_http_requests_total HTTP requests answered, by route template, method and status.");
        let _ = writeln!(out, "# TYPE optout_http_requests_total counter");
        for ((route, method, status), count) in &figures.requests {
            let _ = writeln!(
                out,
                "optout_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(out, "# HELP optout_http_request_duration_seconds Time from request to response, by route template and method.");
        let _ = writeln!(out, "# TYPE optout_http_request_duration_seconds histogram");
        for ((route, method), latency) in &figures.latency {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            for (bound, count) in LATENCY_BUCKETS_SECONDS.iter().zip(latency.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "optout_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "optout_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "optout_http_request_duration_seconds_sum{{{labels}}} {}",
                latency.sum_seconds
            );
            let _ = writeln!(
                out,
                "optout_http_request_duration_seconds_count{{{labels}}} {}",
                latency.count
            );
        }
    }
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = ServiceMetrics::default();
        metrics.observe("/v1/me/settings", "GET", 200, Duration::from_millis(3));
        metrics.observe("/v1/me/settings", "GET", 200, Duration::from_millis(30));
        let text = metrics.render(&GaugeFigures::default());
        assert!(text.contains(
            "optout_http_requests_total{route=\"/v1/me/settings\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(!text.contains("optout_ledger_commits_total"));
    }
}
