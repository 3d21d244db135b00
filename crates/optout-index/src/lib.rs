//! The consent index: "may member M's data be used for purpose P as of T", answered from
//! memory at bitmap speed, exactly as `optout_core::consent::decide` says.
//!
//! - [`ExplicitSet`]: each member's latest explicit choice, as two compressed bitmaps or,
//!   once large batch checks use it, as a [`DenseStates`] layout alone.
//! - [`DenseStates`]: the same choices as 2 bits per id over a range, built from the
//!   bitmaps when the ids are dense enough ([`DenseLimits`]) and then replacing them
//!   (bitmaps are built back from it for snapshots and exports).
//! - [`DecisionTable`]: the rule resolved for one (purpose, time): for each jurisdiction,
//!   the answer with no choice, with an allow, with a deny. Built by calling the pure rule,
//!   so the index cannot disagree with it.
//! - [`ConsentIndex`]: the live index over a ledger, built at start and kept current by
//!   applying events after its position; checks at or after its newest choice time are
//!   pure bitmap lookups, earlier ones consult the member's history in the ledger.
//! - [`Snapshot`]: effective explicit consent for (purpose, cutoff T, ledger position S),
//!   deterministic forever, for batch checks at past cutoffs and for export.

pub mod decision_table;
pub mod dense;
pub mod explicit;
pub mod export;
pub mod file_digest;
pub mod index;
mod latest;
pub mod snapshot;

pub use decision_table::{Basis, DecisionTable};
pub use dense::{DenseLimits, DenseStates};
pub use explicit::ExplicitSet;
pub use export::{export_snapshot, ExportFormat, SnapshotManifest};
pub use index::{ConsentIndex, IndexError};
pub use snapshot::{CheckpointUse, Snapshot, SnapshotSource};
