//! The gate: builds training datasets that honour every member's choice as of a cutoff,
//! and verifies any dataset against the ledger.
//!
//! - [`GatePlan`]: checks inputs, columns and the output directory before any work,
//!   then streams Parquet (or JSON Lines) rows through a [`ConsentFilter`] on every core
//!   and writes only the id and the allowed fields of the kept rows.
//! - [`ConsentFilter`]: a snapshot laid out for the hot loop (a dense two-bit array of explicit
//!   choices, the decision table flattened to one byte per jurisdiction and state).
//! - [`DatasetManifest`]: what a run produced (inputs, outputs, counts by reason, the
//!   included member set, the snapshot honoured), signed with the ledger's key.
//! - [`verify_dataset`]: every row's member allowed as of the cutoff, no column outside
//!   the allow-list, whoever built the dataset.

mod chunk_pages;
mod column_chunk;
pub mod columns;
pub mod consent_filter;
mod delta_binary_packed;
mod delta_length_string_writer;
mod dictionary_list_writer;
pub mod error;
pub mod gate;
pub mod input;
pub mod json_lines;
mod list_pages;
pub mod manifest;
pub mod member_set;
pub mod outcome;
pub mod output;
pub mod parquet_source;
mod part_file;
mod read_ahead;
mod rle_hybrid;
mod text_pages;
pub mod verify;

pub use consent_filter::ConsentFilter;
pub use error::GateError;
pub use gate::{BuiltDataset, Enforcement, GatePlan, GateRequest};
pub use input::FileFormat;
pub use manifest::{DatasetManifest, PendingManifest};
pub use outcome::{RowCounts, Verdict};
pub use verify::{verify_dataset, JurisdictionTable, VerifyReport, VerifyRequest};
