//! What every request shares: the ledger, the ledger's signer, the clock, the live consent
//! index, the token verifier, the limits, metrics and rate limiter.
//!
//! The ledger's calls block (an append waits for its group commit), so handlers run them
//! through [`AppState::blocking`] on tokio's blocking pool; many appends waiting at once
//! is exactly what lets the group-commit writer fill large transactions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use optout_core::{Clock, LedgerPosition, LedgerSigner, PolicyHistory, Timestamp};
use optout_index::{ConsentIndex, IndexError};
use optout_sqlite::SqliteLedger;
use optout_store::{Appended, Ledger, NewEvent, WriterMetrics};

use crate::limits::ServerLimits;
use crate::metrics::{GaugeFigures, ServiceMetrics};
use crate::problem::ApiError;
use crate::rate_limit::{Rate, RateKey, RateLimiter};
use crate::snapshots::SnapshotBuilds;
use crate::token::TokenVerifier;
use crate::usage::DatasetSets;

/// A ledger the service can run on: the `Ledger` trait plus the backend's writer figures.
pub trait ServedLedger: Send + Sync + 'static {
    fn ledger(&self) -> &dyn Ledger;

    /// The group-commit writer's counters, when the backend has one in this process.
    fn writer_metrics(&self) -> Option<&WriterMetrics> {
        None
    }

    /// Lets queued writes finish and stops writing (graceful shutdown).
    fn close(&self) {}

    /// The data directory the ledger lives in, when it has one: where the service finds
    /// the gate's datasets and keeps the snapshots it exports.
    fn data_dir(&self) -> Option<PathBuf> {
        None
    }
}

impl ServedLedger for SqliteLedger {
    fn ledger(&self) -> &dyn Ledger {
        self
    }

    fn writer_metrics(&self) -> Option<&WriterMetrics> {
        Some(SqliteLedger::writer_metrics(self))
    }

    fn close(&self) {
        SqliteLedger::close(self);
    }

    fn data_dir(&self) -> Option<PathBuf> {
        self.path().parent().map(Path::to_path_buf)
    }
}

/// The consent index kept current with the ledger, and the policy history it holds.
pub struct LiveIndex {
    state: RwLock<IndexState>,
}

struct IndexState {
    index: ConsentIndex,
    policies: Arc<PolicyHistory>,
}

impl LiveIndex {
    pub fn build(ledger: &dyn Ledger) -> Result<Self, IndexError> {
        let mut index = ConsentIndex::build(ledger)?;
        let policies = Arc::new(index.policies().clone());
        // Build the batch-check layouts now (they replace the bitmaps): built lazily, the
        // first large consent:check would build one under the read lock and hold appends
        // back meanwhile.
        for purpose in policies.defined_purposes() {
            index.prepare_dense(purpose);
        }
        Ok(LiveIndex {
            state: RwLock::new(IndexState { index, policies }),
        })
    }

    /// The policy versions the index has applied.
    pub fn policies(&self) -> Arc<PolicyHistory> {
        match self.state.read() {
            Ok(state) => Arc::clone(&state.policies),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().policies),
        }
    }

    pub fn applied_position(&self) -> LedgerPosition {
        self.read(|index| index.applied_position())
            .unwrap_or_default()
    }

    /// Runs `work` with the index under a read lock.
    pub fn read<T>(&self, work: impl FnOnce(&ConsentIndex) -> T) -> Result<T, ApiError> {
        let state = self
            .state
            .read()
            .map_err(|_| ApiError::internal("consent index lock poisoned"))?;
        Ok(work(&state.index))
    }

    /// Applies the ledger's events up to at least `target`. Concurrent callers coalesce:
    /// the first to take the lock applies everything appended so far, the rest find their
    /// events already applied and return without reading the ledger.
    pub fn catch_up_to(&self, ledger: &dyn Ledger, target: LedgerPosition) -> Result<(), ApiError> {
        if self.applied_position() >= target {
            return Ok(());
        }
        self.catch_up(ledger).map(|_| ())
    }

    /// Applies every event appended since the index's position; returns how many.
    pub fn catch_up(&self, ledger: &dyn Ledger) -> Result<u64, ApiError> {
        let mut state = self
            .state
            .write()
            .map_err(|_| ApiError::internal("consent index lock poisoned"))?;
        let policies_before = state.index.policies().versions().len();
        let applied = state.index.catch_up(ledger)?;
        if state.index.policies().versions().len() != policies_before {
            state.policies = Arc::new(state.index.policies().clone());
        }
        Ok(applied)
    }
}

/// Shared state of the service; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

pub struct Shared {
    pub ledger: Arc<dyn ServedLedger>,
    pub signer: Arc<LedgerSigner>,
    pub clock: Arc<dyn Clock>,
    pub tokens: TokenVerifier,
    pub limits: ServerLimits,
    pub index: LiveIndex,
    pub metrics: ServiceMetrics,
    pub rate_limiter: RateLimiter,
    pub files: DataFiles,
    pub datasets: DatasetSets,
    pub snapshot_builds: SnapshotBuilds,
}

/// Where the service reads and writes files: under the ledger's data directory, when
/// the ledger has one (`DIR/datasets/*/` for the gate's datasets, `DIR/snapshots/` for
/// exported snapshots).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataFiles {
    pub data_dir: Option<PathBuf>,
}

/// Directory, under the data directory, the service looks in for datasets.
pub const DATASETS_DIR: &str = "datasets";
/// Directory, under the data directory, where snapshots are exported.
pub const SNAPSHOTS_DIR: &str = "snapshots";

impl DataFiles {
    pub fn datasets_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|dir| dir.join(DATASETS_DIR))
    }

    pub fn snapshots_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|dir| dir.join(SNAPSHOTS_DIR))
    }
}

impl AppState {
    /// Builds the consent index from the ledger (this reads the whole ledger once).
    pub fn new(
        ledger: Arc<dyn ServedLedger>,
        signer: Arc<LedgerSigner>,
        clock: Arc<dyn Clock>,
        tokens: TokenVerifier,
        limits: ServerLimits,
    ) -> Result<Self, IndexError> {
        let index = LiveIndex::build(ledger.ledger())?;
        let files = DataFiles {
            data_dir: ledger.data_dir(),
        };
        let rate_limiter = RateLimiter::new(
            Rate {
                per_second: limits.member_requests_per_second,
                burst: limits.member_requests_burst,
            },
            Rate {
                per_second: limits.service_requests_per_second,
                burst: limits.service_requests_burst,
            },
            limits.rate_limit_keys_max,
        );
        Ok(AppState {
            shared: Arc::new(Shared {
                ledger,
                signer,
                clock,
                tokens,
                limits,
                index,
                metrics: ServiceMetrics::default(),
                rate_limiter,
                files,
                datasets: DatasetSets::new(limits.usage_member_sets_cached_bytes_max),
                snapshot_builds: SnapshotBuilds::default(),
            }),
        })
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn ledger(&self) -> &dyn Ledger {
        self.shared.ledger.ledger()
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    pub fn limits(&self) -> &ServerLimits {
        &self.shared.limits
    }

    /// Runs blocking ledger work on tokio's blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || work(&state))
            .await
            .map_err(|error| ApiError::internal(format!("blocking task failed: {error}")))?
    }

    /// Appends events durably, then brings the index up to them. A failure to update
    /// the index after a durable append is logged, not returned: the events are in the
    /// ledger, and the periodic refresh applies them.
    pub fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, ApiError> {
        let appended = self.ledger().append(events)?;
        let written = appended.iter().filter(|event| !event.replayed).count() as u64;
        let replayed = appended.len() as u64 - written;
        let metrics = &self.shared.metrics;
        metrics
            .choices_appended
            .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        metrics
            .choices_replayed
            .fetch_add(replayed, std::sync::atomic::Ordering::Relaxed);
        if let Some(target) = appended.iter().map(|event| event.event.position()).max() {
            if let Err(error) = self.shared.index.catch_up_to(self.ledger(), target) {
                tracing::error!(%error, "consent index did not catch up after an append");
            }
        }
        Ok(appended)
    }

    /// Takes one request from the key's rate budget.
    pub fn acquire_rate(&self, key: RateKey) -> Result<(), ApiError> {
        self.shared
            .rate_limiter
            .acquire(key, Instant::now())
            .map_err(|retry_after_seconds| {
                self.shared
                    .metrics
                    .rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ApiError::RateLimited {
                    retry_after_seconds,
                }
            })
    }

    /// Figures for `/metrics` that live outside the request counters.
    pub fn gauges(&self) -> GaugeFigures {
        use std::sync::atomic::Ordering::Relaxed;
        let writer = self.shared.ledger.writer_metrics();
        let (explicit_members, memory_bytes, applied) = self
            .shared
            .index
            .read(|index| {
                (
                    index.explicit_members(),
                    index.memory_bytes() as u64,
                    index.applied_position().get(),
                )
            })
            .unwrap_or_default();
        GaugeFigures {
            writer_commits: writer.map(|w| w.commits.load(Relaxed)),
            writer_events_committed: writer.map(|w| w.events_committed.load(Relaxed)),
            writer_requests: writer.map(|w| w.requests.load(Relaxed)),
            writer_last_batch_events: writer.map(|w| w.last_batch_events.load(Relaxed)),
            writer_largest_batch_events: writer.map(|w| w.largest_batch_events.load(Relaxed)),
            index_applied_position: applied,
            index_explicit_members: explicit_members,
            index_memory_bytes: memory_bytes,
            ledger_head_position: self
                .ledger()
                .head()
                .ok()
                .flatten()
                .map_or(0, |head| head.position.get()),
        }
    }
}
