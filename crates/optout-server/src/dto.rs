//! The request and response bodies of the JSON API, as explicit types: what goes over the
//! wire is decided here, not by whatever the domain types happen to contain. Request
//! bodies refuse unknown fields, so a field the caller may not set (member, time,
//! source, actor, position) is an error rather than silently ignored.

use optout_core::policy::Mode;
use optout_core::{
    Jurisdiction, LedgerPosition, MemberId, PolicyVersion, Purpose, Reason, Receipt, Source,
    Timestamp,
};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// `PUT /v1/me/settings/{purpose}`: the only thing a member sets is the value.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SetChoiceRequest {
    pub allowed: bool,
}

/// `GET /v1/me/settings`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SettingsResponse {
    pub member: MemberId,
    pub jurisdiction: Option<Jurisdiction>,
    /// The time the settings are reported for (now).
    pub at: Timestamp,
    /// The policy version in force; none before the first one.
    pub policy_version: Option<PolicyVersion>,
    /// Whether this request carried `Sec-GPC: 1`.
    pub gpc_signal: bool,
    pub purposes: Vec<PurposeSetting>,
}

/// One purpose on the member's settings.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PurposeSetting {
    pub purpose: Purpose,
    pub title: String,
    pub notice: NoticeText,
    /// How the member's jurisdiction is treated; none when the jurisdiction is unknown.
    pub mode: Option<Mode>,
    /// False in an `excluded` jurisdiction: the data is not used, there is no switch.
    pub offered: bool,
    /// The effective value now.
    pub allowed: bool,
    /// Why: `explicit_choice`, `jurisdiction_default`, `before_deadline`, `excluded`,
    /// `unknown_jurisdiction`.
    pub reason: &'static str,
    /// True when the value is the default rather than the member's own choice.
    pub is_default: bool,
    /// The member's latest choice, if any.
    pub chosen: Option<ChosenValue>,
    /// When members were told (opt-out jurisdictions).
    pub notified_at: Option<Timestamp>,
    /// The opt-out deadline: from then on the default (allowed) counts.
    pub deadline: Option<Timestamp>,
    /// Whether `Sec-GPC: 1` counts as an opt-out for this purpose.
    pub gpc_opt_out: bool,
    /// A sentence for the member saying what applies.
    pub message: String,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct NoticeText {
    pub text: String,
    pub version: String,
    pub language: String,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChosenValue {
    pub allowed: bool,
    pub at: Timestamp,
    pub position: LedgerPosition,
    pub source: Source,
}

/// `GET /v1/me/history`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HistoryResponse {
    pub member: MemberId,
    /// Oldest first; at most the configured number of most recent choices.
    pub choices: Vec<HistoryEntry>,
    /// True when older choices were left out.
    pub truncated: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub purpose: Purpose,
    pub allowed: bool,
    pub at: Timestamp,
    pub source: Source,
    pub actor: String,
    pub policy_version: Option<PolicyVersion>,
    pub notice_version: Option<String>,
    pub jurisdiction: Option<Jurisdiction>,
    pub receipt: Receipt,
}

/// `POST /v1/choices:batch`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub choices: Vec<BatchChoice>,
}

/// One choice in a batch; its time is the commit time and its actor the calling service.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchChoice {
    pub member: MemberId,
    pub purpose: String,
    pub allowed: bool,
    #[serde(default)]
    pub jurisdiction: Option<JurisdictionField>,
    /// The channel the member used: web, mobile, api (default) or gpc.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `?receipts=false` leaves the signed receipts out of a batch response.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    #[serde(default = "default_true")]
    pub receipts: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchResponse {
    /// Events written by this request.
    pub appended: usize,
    /// Choices answered from an earlier event with the same idempotency key.
    pub replayed: usize,
    pub results: Vec<BatchResult>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    pub position: LedgerPosition,
    pub hash: String,
    pub replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/consent:check`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub purpose: String,
    pub members: Vec<MemberId>,
    /// One per member (null for unknown), or empty: every jurisdiction unknown.
    #[serde(default)]
    pub jurisdictions: Vec<JurisdictionField>,
    /// Answer as of this time (default: now); must not be in the future.
    #[serde(default)]
    pub cutoff: Option<Timestamp>,
    #[serde(default)]
    pub format: CheckFormat,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckFormat {
    /// The allowed member ids, in request order.
    #[default]
    Ids,
    /// Bit i (byte i/8, least significant bit first) set when member i is allowed; base64.
    Bitmask,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CheckResponse {
    pub purpose: Purpose,
    pub at: Timestamp,
    /// The ledger position the answer reflects.
    pub position: LedgerPosition,
    pub checked: usize,
    pub allowed_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<MemberId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmask: Option<String>,
}

/// `GET /v1/members/{id}/consent` query.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemberConsentQuery {
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub at: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct MemberConsentResponse {
    pub member: MemberId,
    pub jurisdiction: Option<Jurisdiction>,
    pub at: Timestamp,
    pub ledger_position: LedgerPosition,
    pub purposes: Vec<PurposeConsent>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PurposeConsent {
    pub purpose: Purpose,
    pub allowed: bool,
    pub reason: &'static str,
    pub detail: Reason,
    pub policy_version: Option<PolicyVersion>,
    pub explicit_choices: usize,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HealthResponse {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_position: Option<LedgerPosition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_position: Option<LedgerPosition>,
}

/// A jurisdiction in a request: a two-letter code or null, read without allocating (a
/// consent check may carry a million of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JurisdictionField(pub Option<Jurisdiction>);

impl<'de> Deserialize<'de> for JurisdictionField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        impl<'de> Visitor<'de> for CodeVisitor {
            type Value = JurisdictionField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an ISO 3166-1 alpha-2 code or null")
            }
            fn visit_str<E: de::Error>(self, code: &str) -> Result<Self::Value, E> {
                Jurisdiction::parse(code)
                    .map(|code| JurisdictionField(Some(code)))
                    .map_err(E::custom)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JurisdictionField(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JurisdictionField(None))
            }
        }
        deserializer.deserialize_any(CodeVisitor)
    }
}

/// `GET /v1/me/usage`: the datasets recorded in the ledger, as they concern the member.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct UsageResponse {
    pub member: MemberId,
    /// The ledger position the answer reflects.
    pub ledger_position: LedgerPosition,
    /// Dataset events in the ledger.
    pub datasets_recorded: usize,
    /// Datasets whose included-member set holds the member.
    pub included: Vec<DatasetSummary>,
    /// Datasets checked that did not include the member.
    pub not_included: usize,
    /// Datasets whose member set could not be found or trusted: no answer either way.
    pub unchecked: Vec<UncheckedDataset>,
}

/// A dataset event, as a member sees it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub dataset_id: String,
    pub purpose: Purpose,
    /// Choices as of this time decided who was included.
    pub cutoff: Timestamp,
    /// Where the dataset event is in the ledger.
    pub position: LedgerPosition,
    /// The ledger position of the snapshot the gate used.
    pub snapshot_position: LedgerPosition,
    pub rows_written: u64,
    pub members_included: u64,
    pub manifest_sha256: String,
}

impl DatasetSummary {
    pub fn new(position: LedgerPosition, record: &optout_core::DatasetRecord) -> Self {
        DatasetSummary {
            dataset_id: record.dataset_id.clone(),
            purpose: record.purpose.clone(),
            cutoff: record.cutoff,
            position,
            snapshot_position: record.snapshot_position,
            rows_written: record.rows_written,
            members_included: record.members_included,
            manifest_sha256: record.manifest_sha256.clone(),
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct UncheckedDataset {
    pub dataset: DatasetSummary,
    /// `no_data_directory`, `manifest_not_found`, `manifest_invalid`,
    /// `member_set_unreadable` or `member_set_mismatch`.
    pub reason: &'static str,
    pub detail: String,
}

/// `GET /v1/reports/choices` query.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `day`, `jurisdiction` or `source`.
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub purpose: Option<String>,
    /// `json` or `csv`; wins over the `Accept` header.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /v1/reports/choices`: choice events counted per bucket.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ChoiceReport {
    pub by: &'static str,
    /// The purpose counted; none: every purpose.
    pub purpose: Option<Purpose>,
    /// The ledger position the counts reflect.
    pub ledger_position: LedgerPosition,
    pub allowed: u64,
    pub denied: u64,
    pub total: u64,
    /// In ascending order of `bucket`.
    pub buckets: Vec<ReportBucket>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ReportBucket {
    /// A UTC date (`YYYY-MM-DD`), an ISO 3166-1 code (`unknown` when the choice had
    /// none), or a source (`web`, `mobile`, `api`, `gpc`, `admin`, `import`).
    pub bucket: String,
    pub allowed: u64,
    pub denied: u64,
    pub total: u64,
}

/// `POST /v1/snapshots`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    pub purpose: String,
    /// Effective consent as of this time; must not be in the future.
    pub cutoff: Timestamp,
    /// The ledger position the snapshot reflects (default: the head now).
    #[serde(default)]
    pub position: Option<LedgerPosition>,
    /// `roaring` (default) or `parquet`.
    #[serde(default)]
    pub format: SnapshotFormat,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotFormat {
    /// 64-bit portable Roaring bitmaps.
    #[default]
    Roaring,
    /// Parquet, one `member_id` UInt64 column.
    Parquet,
}

/// A snapshot the service keeps: what it is, its counts, and its files.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotResponse {
    pub id: String,
    pub purpose: Purpose,
    pub cutoff: Timestamp,
    pub position: LedgerPosition,
    /// The hash of the ledger event at `position`.
    pub ledger_hash: String,
    /// The policy version in force at the cutoff, if any.
    pub policy_version: Option<PolicyVersion>,
    pub format: SnapshotFormat,
    /// Members whose latest explicit choice as of the cutoff allows.
    pub explicit_allowed: u64,
    /// Members whose latest explicit choice as of the cutoff denies.
    pub explicit_denied: u64,
    pub created_at: Timestamp,
    /// The key `snapshot.json` is signed with (the ledger's).
    pub public_key: String,
    /// The signed manifest: what the files are and the rule per jurisdiction.
    pub manifest_href: String,
    pub files: Vec<SnapshotFileLink>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFileLink {
    pub name: String,
    /// `explicit_allowed`, `explicit_denied` or `jurisdiction_rules`.
    pub set: String,
    /// Members in the set (rows, for the rules).
    pub members: u64,
    pub bytes: u64,
    pub sha256: String,
    pub href: String,
}
