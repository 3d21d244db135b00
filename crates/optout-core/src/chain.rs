//! The hash chain: each event's hash is SHA-256 over the previous event's hash (32 bytes,
//! all zero before the first event) followed by the event's canonical encoding. Changing,
//! dropping or reordering any event changes every hash after it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::canonical;
use crate::event::{Event, LedgerPosition, SealedEvent};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    /// The "previous hash" of the first event.
    pub const GENESIS: EventHash = EventHash([0; 32]);

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hash {input:?}: expected 64 hex digits")]
pub struct HashParseError {
    pub input: String,
}

impl FromStr for EventHash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| HashParseError {
            input: s.to_string(),
        })?;
        Ok(EventHash(bytes))
    }
}

impl serde::Serialize for EventHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for EventHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The hash of an event whose canonical encoding is `canonical`, following `prev`.
pub fn chain_hash(prev: &EventHash, canonical: &[u8]) -> EventHash {
    let mut hasher = Sha256::new();
    hasher.update(prev.0);
    hasher.update(canonical);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_slice());
    EventHash(bytes)
}

/// Places an event after `prev` in the chain.
pub fn seal(event: Event, prev: EventHash) -> SealedEvent {
    let hash = chain_hash(&prev, &canonical::encode(&event));
    SealedEvent {
        event,
        prev_hash: prev,
        hash,
    }
}

/// The last event of a ledger: its position and hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    pub position: LedgerPosition,
    pub hash: EventHash,
}

/// Why a ledger (or an export of one) does not verify, at the first bad position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger does not verify at position {position}: {problem}")]
pub struct ChainError {
    pub position: LedgerPosition,
    pub problem: String,
}

/// Checks events one at a time, in ledger order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_position: LedgerPosition,
    prev_hash: EventHash,
    previous_recorded_at: Option<crate::time::Timestamp>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier {
            expected_position: LedgerPosition::FIRST,
            prev_hash: EventHash::GENESIS,
            previous_recorded_at: None,
        }
    }

    /// Accepts the next event with the hash the store (or export) claims for it.
    pub fn push(&mut self, event: &Event, claimed_hash: &EventHash) -> Result<(), ChainError> {
        let fail = |problem: String| ChainError {
            position: self.expected_position,
            problem,
        };
        if event.position != self.expected_position {
            return Err(fail(format!(
                "found the event numbered {} where position {} should be (missing, duplicated or reordered events)",
                event.position, self.expected_position
            )));
        }
        if self
            .previous_recorded_at
            .is_some_and(|previous| event.recorded_at < previous)
        {
            return Err(fail("recorded_at goes backwards".to_string()));
        }
        let computed = chain_hash(&self.prev_hash, &canonical::encode(event));
        if computed != *claimed_hash {
            return Err(fail(format!(
                "hash mismatch: stored {claimed_hash}, recomputed {computed} (the event or one before it was changed)"
            )));
        }
        self.prev_hash = computed;
        self.previous_recorded_at = Some(event.recorded_at);
        self.expected_position = self.expected_position.next();
        Ok(())
    }

    /// Also checks a claimed previous hash (exports carry one per event).
    pub fn push_with_prev(
        &mut self,
        event: &Event,
        claimed_prev: &EventHash,
        claimed_hash: &EventHash,
    ) -> Result<(), ChainError> {
        if *claimed_prev != self.prev_hash {
            return Err(ChainError {
                position: self.expected_position,
                problem: format!(
                    "prev_hash {claimed_prev} does not match the previous event's hash {}",
                    self.prev_hash
                ),
            });
        }
        self.push(event, claimed_hash)
    }

    /// The head after every event pushed so far (None for an empty ledger).
    pub fn head(&self) -> Option<ChainHead> {
        self.expected_position
            .get()
            .checked_sub(1)
            .filter(|last| *last > 0)
            .map(|last| ChainHead {
                position: LedgerPosition(last),
                hash: self.prev_hash,
            })
    }
}
