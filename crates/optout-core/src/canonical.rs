//! The canonical encoding of an event: the exact bytes that are hashed.
//!
//! One JSON object, keys sorted by code point, no whitespace, integers in decimal, strings
//! in UTF-8 with only `"`, `\` and U+0000..U+001F escaped (`\b \t \n \f \r` short, the rest
//! `\u00xx` in lower case), absent optional fields left out. This is what Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` prints,
//! so an auditor can re-derive the bytes in a few lines; `docs/ledger-format.md` is the
//! specification and `docs/verify_ledger.py` its executable test.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::{
    Actor, ChoiceRecord, DatasetRecord, Event, EventBody, LedgerPosition, PolicyRecord,
};
use crate::jurisdiction::Jurisdiction;
use crate::member::MemberId;
use crate::policy::PolicyVersion;
use crate::purpose::Purpose;
use crate::source::Source;
use crate::time::Timestamp;

/// A JSON value restricted to what the encoding uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Unsigned(u64),
    Signed(i64),
    Bool(bool),
}

/// A canonical JSON object under construction; keys are sorted on output.
#[derive(Default, Debug)]
pub struct CanonicalObject {
    fields: BTreeMap<&'static str, Value>,
}

impl CanonicalObject {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn text(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.fields.insert(key, Value::Text(value.into()));
        self
    }

    pub fn optional_text(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(key, value);
        }
        self
    }

    pub fn unsigned(&mut self, key: &'static str, value: u64) -> &mut Self {
        self.fields.insert(key, Value::Unsigned(value));
        self
    }

    pub fn signed(&mut self, key: &'static str, value: i64) -> &mut Self {
        self.fields.insert(key, Value::Signed(value));
        self
    }

    pub fn boolean(&mut self, key: &'static str, value: bool) -> &mut Self {
        self.fields.insert(key, Value::Bool(value));
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        out.push('{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_string(&mut out, key);
            out.push(':');
            match value {
                Value::Text(text) => write_string(&mut out, text),
                Value::Unsigned(number) => out.push_str(&number.to_string()),
                Value::Signed(number) => out.push_str(&number.to_string()),
                Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
            }
        }
        out.push('}');
        out.into_bytes()
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// The canonical bytes of an event.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut object = CanonicalObject::new();
    object
        .unsigned("position", event.position.get())
        .signed("recorded_at_us", event.recorded_at.as_micros())
        .text("kind", event.body.kind());
    match &event.body {
        EventBody::Choice(choice) => {
            object
                .unsigned("member", choice.member.get())
                .text("purpose", choice.purpose.as_str())
                .boolean("allowed", choice.allowed)
                .signed("at_us", choice.at.as_micros())
                .text("source", choice.source.as_str())
                .text("actor", choice.actor.as_str())
                .optional_text("notice_version", choice.notice_version.as_deref())
                .optional_text("notice_language", choice.notice_language.as_deref())
                .optional_text(
                    "jurisdiction",
                    choice.jurisdiction.as_ref().map(Jurisdiction::as_str),
                )
                .optional_text("idempotency_key", choice.idempotency_key.as_deref());
            if let Some(version) = choice.policy_version {
                object.unsigned("policy_version", u64::from(version.0));
            }
        }
        EventBody::Policy(policy) => {
            object
                .unsigned("version", u64::from(policy.version.0))
                .signed("effective_from_us", policy.effective_from.as_micros())
                .text("document", policy.document.as_str());
        }
        EventBody::Dataset(dataset) => {
            object
                .text("dataset_id", dataset.dataset_id.as_str())
                .text("purpose", dataset.purpose.as_str())
                .signed("cutoff_us", dataset.cutoff.as_micros())
                .unsigned("snapshot_position", dataset.snapshot_position.get())
                .text("manifest_sha256", dataset.manifest_sha256.as_str())
                .unsigned("rows_written", dataset.rows_written)
                .unsigned("members_included", dataset.members_included);
        }
    }
    object.to_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("not a valid event: {0}")]
    Malformed(String),
    #[error("the event is valid JSON but not in canonical form")]
    NotCanonical,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    position: u64,
    recorded_at_us: i64,
    kind: String,
    member: Option<u64>,
    purpose: Option<String>,
    allowed: Option<bool>,
    at_us: Option<i64>,
    source: Option<String>,
    actor: Option<String>,
    policy_version: Option<u32>,
    notice_version: Option<String>,
    notice_language: Option<String>,
    jurisdiction: Option<String>,
    idempotency_key: Option<String>,
    version: Option<u32>,
    effective_from_us: Option<i64>,
    document: Option<String>,
    dataset_id: Option<String>,
    cutoff_us: Option<i64>,
    snapshot_position: Option<u64>,
    manifest_sha256: Option<String>,
    rows_written: Option<u64>,
    members_included: Option<u64>,
}

/// Decodes canonical bytes, rejecting anything that would not re-encode to the same bytes.
pub fn decode(bytes: &[u8]) -> Result<Event, CanonicalError> {
    let raw: RawEvent = serde_json::from_slice(bytes)
        .map_err(|error| CanonicalError::Malformed(error.to_string()))?;
    let event = raw.into_event()?;
    if encode(&event) != bytes {
        return Err(CanonicalError::NotCanonical);
    }
    Ok(event)
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, CanonicalError> {
    value.ok_or_else(|| CanonicalError::Malformed(format!("missing field {field}")))
}

fn malformed(error: impl ToString) -> CanonicalError {
    CanonicalError::Malformed(error.to_string())
}

impl RawEvent {
    fn into_event(self) -> Result<Event, CanonicalError> {
        let body = match self.kind.as_str() {
            "choice" => EventBody::Choice(ChoiceRecord {
                member: MemberId(required(self.member, "member")?),
                purpose: Purpose::new(&required(self.purpose, "purpose")?).map_err(malformed)?,
                allowed: required(self.allowed, "allowed")?,
                at: Timestamp::from_micros(required(self.at_us, "at_us")?),
                source: required(self.source, "source")?
                    .parse::<Source>()
                    .map_err(malformed)?,
                actor: Actor::new(&required(self.actor, "actor")?).map_err(malformed)?,
                policy_version: self.policy_version.map(PolicyVersion),
                notice_version: self.notice_version,
                notice_language: self.notice_language,
                jurisdiction: self
                    .jurisdiction
                    .map(|code| Jurisdiction::parse(&code))
                    .transpose()
                    .map_err(malformed)?,
                idempotency_key: self.idempotency_key,
            }),
            "policy" => EventBody::Policy(PolicyRecord {
                version: PolicyVersion(required(self.version, "version")?),
                effective_from: Timestamp::from_micros(required(
                    self.effective_from_us,
                    "effective_from_us",
                )?),
                document: required(self.document, "document")?,
            }),
            "dataset" => EventBody::Dataset(DatasetRecord {
                dataset_id: required(self.dataset_id, "dataset_id")?,
                purpose: Purpose::new(&required(self.purpose, "purpose")?).map_err(malformed)?,
                cutoff: Timestamp::from_micros(required(self.cutoff_us, "cutoff_us")?),
                snapshot_position: LedgerPosition(required(
                    self.snapshot_position,
                    "snapshot_position",
                )?),
                manifest_sha256: required(self.manifest_sha256, "manifest_sha256")?,
                rows_written: required(self.rows_written, "rows_written")?,
                members_included: required(self.members_included, "members_included")?,
            }),
            other => return Err(CanonicalError::Malformed(format!("unknown kind {other:?}"))),
        };
        Ok(Event {
            position: LedgerPosition(self.position),
            recorded_at: Timestamp::from_micros(self.recorded_at_us),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn choice_event(member: u64, actor: &str, key: Option<String>) -> Event {
        Event {
            position: LedgerPosition(7),
            recorded_at: Timestamp::from_micros(1_700_000_000_000_001),
            body: EventBody::Choice(ChoiceRecord {
                member: MemberId(member),
                purpose: Purpose::new("ai_training").unwrap(),
                allowed: false,
                at: Timestamp::from_micros(-5),
                source: Source::Gpc,
                actor: Actor::new(actor).unwrap(),
                policy_version: Some(PolicyVersion(3)),
                notice_version: Some("n-1".into()),
                notice_language: Some("de".into()),
                jurisdiction: Some(Jurisdiction::parse("de").unwrap()),
                idempotency_key: key,
            }),
        }
    }

    #[test]
    fn encoding_is_sorted_compact_and_stable() {
        let bytes = encode(&choice_event(u64::MAX, "member", None));
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "{\"actor\":\"member\",\"allowed\":false,\"at_us\":-5,\"jurisdiction\":\"DE\",\"kind\":\"choice\",\"member\":18446744073709551615,\"notice_language\":\"de\",\"notice_version\":\"n-1\",\"policy_version\":3,\"position\":7,\"purpose\":\"ai_training\",\"recorded_at_us\":1700000000000001,\"source\":\"gpc\"}"
        );
    }

    #[test]
    fn strings_escape_like_python_json() {
        let mut object = CanonicalObject::new();
        object.text("k", "q\"b\\n\nt\tu\u{1}ü€😀\u{7f}/");
        assert_eq!(
            String::from_utf8(object.to_bytes()).unwrap(),
            "{\"k\":\"q\\\"b\\\\n\\nt\\tu\\u0001ü€😀\u{7f}/\"}"
        );
    }

    #[test]
    fn non_canonical_input_is_rejected() {
        let bytes = encode(&choice_event(1, "member", None));
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&bytes);
        assert_eq!(decode(&spaced), Err(CanonicalError::NotCanonical));
        let extra = String::from_utf8(bytes)
            .unwrap()
            .replacen('{', "{\"zzz\":1,", 1);
        assert!(matches!(
            decode(extra.as_bytes()),
            Err(CanonicalError::Malformed(_))
        ));
    }

    #[test]
    fn policy_event_round_trips() {
        let event = Event {
            position: LedgerPosition(1),
            recorded_at: Timestamp::from_micros(10),
            body: EventBody::Policy(PolicyRecord {
                version: PolicyVersion(1),
                effective_from: Timestamp::from_micros(9),
                document: crate::policy::DEFAULT_POLICY_TOML.to_string(),
            }),
        };
        assert_eq!(decode(&encode(&event)).unwrap(), event);
    }

    #[test]
    fn dataset_event_round_trips() {
        let event = Event {
            position: LedgerPosition(42),
            recorded_at: Timestamp::from_micros(11),
            body: EventBody::Dataset(DatasetRecord {
                dataset_id: "ds-2025-06-30-ai_training".into(),
                purpose: Purpose::new("ai_training").unwrap(),
                cutoff: Timestamp::from_micros(1_751_241_600_000_000),
                snapshot_position: LedgerPosition(41),
                manifest_sha256: "ab".repeat(32),
                rows_written: 702_392,
                members_included: u64::MAX,
            }),
        };
        let bytes = encode(&event);
        assert!(String::from_utf8(bytes.clone())
            .unwrap()
            .starts_with("{\"cutoff_us\":1751241600000000,\"dataset_id\":"));
        assert_eq!(decode(&bytes).unwrap(), event);
    }

    proptest! {
        #[test]
        fn choice_events_round_trip(member in any::<u64>(), actor in "[^\\p{Cc}]{1,40}", key in proptest::option::of("[ -~]{1,20}")) {
            let event = choice_event(member, &actor, key);
            prop_assert_eq!(decode(&encode(&event)).unwrap(), event);
        }
    }
}
