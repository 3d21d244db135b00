//! Ledger events: what is appended, in order, and never changed.
//!
//! A choice records what a regulator asks to see (ISO/IEC TS 27560, GDPR Art. 7(1)):
//! who, for what purpose, yes or no, when, through which channel, by whom, under which
//! policy and notice (and its language), where the member was, and the request's
//! idempotency key. A policy event records a policy version verbatim.

use std::fmt;

use crate::chain::EventHash;
use crate::jurisdiction::Jurisdiction;
use crate::member::MemberId;
use crate::policy::PolicyVersion;
use crate::purpose::Purpose;
use crate::source::Source;
use crate::time::Timestamp;

/// Position of an event in the ledger: 1, 2, 3 … without gaps.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct LedgerPosition(pub u64);

impl LedgerPosition {
    pub const FIRST: LedgerPosition = LedgerPosition(1);

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> LedgerPosition {
        LedgerPosition(self.0.saturating_add(1))
    }
}

impl fmt::Display for LedgerPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub const ACTOR_BYTES_MAX: usize = 256;
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 256;

/// Who performed the action: `member` for the member themself, `admin:<name>`,
/// `service:<name>`, `import:<file>`. Free text, bounded and printable.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Actor(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: expected 1-{bytes_max} bytes without control characters")]
pub struct TextFieldError {
    pub what: &'static str,
    pub input: String,
    pub bytes_max: usize,
}

fn bounded_text(
    what: &'static str,
    input: &str,
    bytes_max: usize,
) -> Result<String, TextFieldError> {
    if input.is_empty() || input.len() > bytes_max || input.chars().any(char::is_control) {
        return Err(TextFieldError {
            what,
            input: input.chars().take(64).collect(),
            bytes_max,
        });
    }
    Ok(input.to_string())
}

impl Actor {
    pub fn new(name: &str) -> Result<Self, TextFieldError> {
        bounded_text("actor", name, ACTOR_BYTES_MAX).map(Actor)
    }

    pub fn member() -> Self {
        Actor("member".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes a retried request write one event.
pub fn validate_idempotency_key(key: &str) -> Result<String, TextFieldError> {
    bounded_text("idempotency key", key, IDEMPOTENCY_KEY_BYTES_MAX)
}

/// A member's choice for one purpose.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChoiceRecord {
    pub member: MemberId,
    pub purpose: Purpose,
    pub allowed: bool,
    /// When the member made the choice (for imports, the original time).
    pub at: Timestamp,
    pub source: Source,
    pub actor: Actor,
    /// The policy version in force when the choice was made, if one was.
    pub policy_version: Option<PolicyVersion>,
    pub notice_version: Option<String>,
    pub notice_language: Option<String>,
    /// Where the member was when choosing, if known.
    pub jurisdiction: Option<Jurisdiction>,
    pub idempotency_key: Option<String>,
}

/// A policy version, kept verbatim.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PolicyRecord {
    pub version: PolicyVersion,
    pub effective_from: Timestamp,
    /// The TOML text exactly as loaded.
    pub document: String,
}

/// A training dataset built by the gate: lineage in the hash chain. The manifest it names
/// (by SHA-256) lists inputs, outputs, counts and the member set included.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DatasetRecord {
    pub dataset_id: String,
    pub purpose: Purpose,
    pub cutoff: Timestamp,
    /// The ledger position of the snapshot the gate used.
    pub snapshot_position: LedgerPosition,
    /// SHA-256 of the manifest file, 64 lower-case hex digits.
    pub manifest_sha256: String,
    pub rows_written: u64,
    pub members_included: u64,
}

pub const DATASET_ID_BYTES_MAX: usize = 128;

impl DatasetRecord {
    /// Checks the free-text fields: a bounded printable id and a SHA-256 in hex.
    pub fn validate(&self) -> Result<(), TextFieldError> {
        bounded_text("dataset id", &self.dataset_id, DATASET_ID_BYTES_MAX)?;
        let is_digest = self.manifest_sha256.len() == 64
            && self
                .manifest_sha256
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !is_digest {
            return Err(TextFieldError {
                what: "manifest SHA-256",
                input: self.manifest_sha256.chars().take(64).collect(),
                bytes_max: 64,
            });
        }
        Ok(())
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EventBody {
    Choice(ChoiceRecord),
    Policy(PolicyRecord),
    Dataset(DatasetRecord),
}

impl EventBody {
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Choice(_) => "choice",
            EventBody::Policy(_) => "policy",
            EventBody::Dataset(_) => "dataset",
        }
    }
}

/// An event at its place in the ledger.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    pub position: LedgerPosition,
    /// When the ledger appended it (non-decreasing along the ledger).
    pub recorded_at: Timestamp,
    pub body: EventBody,
}

/// An event with its place in the hash chain.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SealedEvent {
    pub event: Event,
    pub prev_hash: EventHash,
    pub hash: EventHash,
}

impl SealedEvent {
    pub fn position(&self) -> LedgerPosition {
        self.event.position
    }

    pub fn choice(&self) -> Option<&ChoiceRecord> {
        match &self.event.body {
            EventBody::Choice(choice) => Some(choice),
            EventBody::Policy(_) | EventBody::Dataset(_) => None,
        }
    }
}
