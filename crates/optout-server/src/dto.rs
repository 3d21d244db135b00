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
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetChoiceRequest {
    pub allowed: bool,
}

/// `GET /v1/me/settings`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct SettingsResponse {
    #[schema(value_type = u64)]
    pub member: MemberId,
    #[schema(value_type = Option<String>)]
    pub jurisdiction: Option<Jurisdiction>,
    /// The time the settings are reported for (now).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The policy version in force; none before the first one.
    #[schema(value_type = Option<u32>)]
    pub policy_version: Option<PolicyVersion>,
    /// Whether this request carried `Sec-GPC: 1`.
    pub gpc_signal: bool,
    pub purposes: Vec<PurposeSetting>,
}

/// One purpose on the member's settings.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct PurposeSetting {
    #[schema(value_type = String)]
    pub purpose: Purpose,
    pub title: String,
    pub notice: NoticeText,
    /// How the member's jurisdiction is treated; none when the jurisdiction is unknown.
    #[schema(value_type = Option<crate::openapi::ModeName>)]
    pub mode: Option<Mode>,
    /// False in an `excluded` jurisdiction: the data is not used, there is no switch.
    pub offered: bool,
    /// The effective value now.
    pub allowed: bool,
    /// Why: `explicit_choice`, `jurisdiction_default`, `before_deadline`, `excluded`,
    /// `unknown_jurisdiction`.
    #[schema(value_type = String)]
    pub reason: &'static str,
    /// True when the value is the default rather than the member's own choice.
    pub is_default: bool,
    /// The member's latest choice, if any.
    pub chosen: Option<ChosenValue>,
    /// When members were told (opt-out jurisdictions).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub notified_at: Option<Timestamp>,
    /// The opt-out deadline: from then on the default (allowed) counts.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deadline: Option<Timestamp>,
    /// Whether `Sec-GPC: 1` counts as an opt-out for this purpose.
    pub gpc_opt_out: bool,
    /// A sentence for the member saying what applies.
    pub message: String,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct NoticeText {
    pub text: String,
    pub version: String,
    pub language: String,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChosenValue {
    pub allowed: bool,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = u64)]
    pub position: LedgerPosition,
    #[schema(value_type = crate::openapi::SourceName)]
    pub source: Source,
}

/// `GET /v1/me/history`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct HistoryResponse {
    #[schema(value_type = u64)]
    pub member: MemberId,
    /// Oldest first; at most the configured number of most recent choices.
    pub choices: Vec<HistoryEntry>,
    /// True when older choices were left out.
    pub truncated: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[schema(value_type = String)]
    pub purpose: Purpose,
    pub allowed: bool,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = crate::openapi::SourceName)]
    pub source: Source,
    pub actor: String,
    #[schema(value_type = Option<u32>)]
    pub policy_version: Option<PolicyVersion>,
    pub notice_version: Option<String>,
    #[schema(value_type = Option<String>)]
    pub jurisdiction: Option<Jurisdiction>,
    #[schema(value_type = crate::openapi::ReceiptSchema)]
    pub receipt: Receipt,
}

/// `POST /v1/choices:batch`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub choices: Vec<BatchChoice>,
}

/// One choice in a batch; its time is the commit time and its actor the calling service.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchChoice {
    #[schema(value_type = u64)]
    pub member: MemberId,
    #[schema(example = "ai_training")]
    pub purpose: String,
    pub allowed: bool,
    /// ISO 3166-1 alpha-2 code (any case) of where the member was, or null.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^\s*[A-Za-z]{2}\s*$")]
    pub jurisdiction: Option<JurisdictionField>,
    /// The channel the member used: web, mobile, api (default) or gpc.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::ServiceSourceName>)]
    pub source: Option<String>,
    /// 1-256 bytes without control characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub idempotency_key: Option<String>,
}

/// `?receipts=false` leaves the signed receipts out of a batch response.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// `false` leaves the signed receipts out of the response.
    #[serde(default = "default_true")]
    #[param(required = false)]
    pub receipts: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct BatchResponse {
    /// Events written by this request.
    pub appended: usize,
    /// Choices answered from an earlier event with the same idempotency key.
    pub replayed: usize,
    pub results: Vec<BatchResult>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct BatchResult {
    #[schema(value_type = u64)]
    pub position: LedgerPosition,
    pub hash: String,
    pub replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::ReceiptSchema>)]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/consent:check`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[schema(example = "ai_training")]
    pub purpose: String,
    #[schema(value_type = Vec<u64>)]
    pub members: Vec<MemberId>,
    /// One per member (null for unknown), or empty: every jurisdiction unknown.
    #[serde(default)]
    #[schema(value_type = Vec<Option<String>>)]
    pub jurisdictions: Vec<JurisdictionField>,
    /// Answer as of this time (default: now); must not be in the future.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cutoff: Option<Timestamp>,
    #[serde(default)]
    pub format: CheckFormat,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckFormat {
    /// The allowed member ids, in request order.
    #[default]
    Ids,
    /// Bit i (byte i/8, least significant bit first) set when member i is allowed; base64.
    Bitmask,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct CheckResponse {
    #[schema(value_type = String)]
    pub purpose: Purpose,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The ledger position the answer reflects.
    #[schema(value_type = u64)]
    pub position: LedgerPosition,
    pub checked: usize,
    pub allowed_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<u64>>)]
    pub allowed: Option<Vec<MemberId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitmask: Option<String>,
}

/// `GET /v1/members/{id}/consent` query.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemberConsentQuery {
    /// ISO 3166-1 alpha-2 code of the member's country; missing: the most protective answer.
    #[serde(default)]
    #[param(example = "US", pattern = r"^\s*[A-Za-z]{2}\s*$")]
    pub jurisdiction: Option<String>,
    /// One purpose (default: every purpose the policies define).
    #[serde(default)]
    #[param(example = "ai_training")]
    pub purpose: Option<String>,
    /// The time to answer for (RFC 3339; default: now).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct MemberConsentResponse {
    #[schema(value_type = u64)]
    pub member: MemberId,
    #[schema(value_type = Option<String>)]
    pub jurisdiction: Option<Jurisdiction>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = u64)]
    pub ledger_position: LedgerPosition,
    pub purposes: Vec<PurposeConsent>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct PurposeConsent {
    #[schema(value_type = String)]
    pub purpose: Purpose,
    pub allowed: bool,
    #[schema(value_type = String)]
    pub reason: &'static str,
    #[schema(value_type = crate::openapi::ReasonDetailSchema)]
    pub detail: Reason,
    #[schema(value_type = Option<u32>)]
    pub policy_version: Option<PolicyVersion>,
    pub explicit_choices: usize,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct HealthResponse {
    #[schema(value_type = String)]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub ledger_position: Option<LedgerPosition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
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
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct UsageResponse {
    #[schema(value_type = u64)]
    pub member: MemberId,
    /// The ledger position the answer reflects.
    #[schema(value_type = u64)]
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
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct DatasetSummary {
    pub dataset_id: String,
    #[schema(value_type = String)]
    pub purpose: Purpose,
    /// Choices as of this time decided who was included.
    #[schema(value_type = String, format = DateTime)]
    pub cutoff: Timestamp,
    /// Where the dataset event is in the ledger.
    #[schema(value_type = u64)]
    pub position: LedgerPosition,
    /// The ledger position of the snapshot the gate used.
    #[schema(value_type = u64)]
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

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct UncheckedDataset {
    pub dataset: DatasetSummary,
    /// `no_data_directory`, `manifest_not_found`, `manifest_invalid`,
    /// `member_set_unreadable` or `member_set_mismatch`.
    #[schema(value_type = String)]
    pub reason: &'static str,
    pub detail: String,
}

/// `GET /v1/reports/choices` query.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `day`, `jurisdiction` or `source`.
    #[serde(default)]
    #[param(value_type = crate::openapi::ReportByName, required = true)]
    pub by: Option<String>,
    /// Count only this purpose's choices.
    #[serde(default)]
    #[param(example = "ai_training")]
    pub purpose: Option<String>,
    /// `json` or `csv`; wins over the `Accept` header.
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::ReportFormatName>)]
    pub format: Option<String>,
}

/// `GET /v1/reports/choices`: choice events counted per bucket.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChoiceReport {
    #[schema(value_type = String)]
    pub by: &'static str,
    /// The purpose counted; none: every purpose.
    #[schema(value_type = Option<String>)]
    pub purpose: Option<Purpose>,
    /// The ledger position the counts reflect.
    #[schema(value_type = u64)]
    pub ledger_position: LedgerPosition,
    pub allowed: u64,
    pub denied: u64,
    pub total: u64,
    /// In ascending order of `bucket`.
    pub buckets: Vec<ReportBucket>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReportBucket {
    /// A UTC date (`YYYY-MM-DD`), an ISO 3166-1 code (`unknown` when the choice had
    /// none), or a source (`web`, `mobile`, `api`, `gpc`, `admin`, `import`).
    pub bucket: String,
    pub allowed: u64,
    pub denied: u64,
    pub total: u64,
}

/// `POST /v1/snapshots`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    #[schema(example = "ai_training")]
    pub purpose: String,
    /// Effective consent as of this time; must not be in the future.
    #[schema(value_type = String, format = DateTime, example = "2024-06-01T00:00:00Z")]
    pub cutoff: Timestamp,
    /// The ledger position the snapshot reflects (default: the head now).
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub position: Option<LedgerPosition>,
    /// `roaring` (default) or `parquet`.
    #[serde(default)]
    pub format: SnapshotFormat,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotFormat {
    /// 64-bit portable Roaring bitmaps.
    #[default]
    Roaring,
    /// Parquet, one `member_id` UInt64 column.
    Parquet,
}

/// A snapshot the service keeps: what it is, its counts, and its files.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct SnapshotResponse {
    pub id: String,
    #[schema(value_type = String)]
    pub purpose: Purpose,
    #[schema(value_type = String, format = DateTime)]
    pub cutoff: Timestamp,
    #[schema(value_type = u64)]
    pub position: LedgerPosition,
    /// The hash of the ledger event at `position`.
    pub ledger_hash: String,
    /// The policy version in force at the cutoff, if any.
    #[schema(value_type = Option<u32>)]
    pub policy_version: Option<PolicyVersion>,
    pub format: SnapshotFormat,
    /// Members whose latest explicit choice as of the cutoff allows.
    pub explicit_allowed: u64,
    /// Members whose latest explicit choice as of the cutoff denies.
    pub explicit_denied: u64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The key `snapshot.json` is signed with (the ledger's).
    pub public_key: String,
    /// The signed manifest: what the files are and the rule per jurisdiction.
    pub manifest_href: String,
    pub files: Vec<SnapshotFileLink>,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
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
