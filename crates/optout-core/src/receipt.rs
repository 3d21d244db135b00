//! What the ledger signs: a receipt for each appended choice (the member's proof of what
//! they chose and when) and checkpoints of the ledger head (the auditor's anchor: an
//! export that contains the checkpointed position with the same hash was not rewritten).

use crate::canonical::CanonicalObject;
use crate::chain::EventHash;
use crate::event::{LedgerPosition, SealedEvent};
use crate::member::MemberId;
use crate::purpose::Purpose;
use crate::signing::{LedgerSigner, PublicKey, SignatureError};
use crate::source::Source;
use crate::time::Timestamp;

const RECEIPT_DOMAIN: &str = "optout-receipt-v1";
const CHECKPOINT_DOMAIN: &str = "optout-checkpoint-v1";

#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub position: LedgerPosition,
    pub hash: EventHash,
    /// When the member made the choice.
    pub at: Timestamp,
    /// When the ledger made it durable.
    pub recorded_at: Timestamp,
    pub member: MemberId,
    pub purpose: Purpose,
    pub allowed: bool,
    pub source: Source,
    pub public_key: PublicKey,
    pub signature: String,
}

impl Receipt {
    /// The receipt for a sealed choice event; None for other kinds of event.
    pub fn for_event(event: &SealedEvent, signer: &LedgerSigner) -> Option<Receipt> {
        let choice = event.choice()?;
        let mut receipt = Receipt {
            position: event.position(),
            hash: event.hash,
            at: choice.at,
            recorded_at: event.event.recorded_at,
            member: choice.member,
            purpose: choice.purpose.clone(),
            allowed: choice.allowed,
            source: choice.source,
            public_key: signer.public_key(),
            signature: String::new(),
        };
        receipt.signature = signer.sign(RECEIPT_DOMAIN, &receipt.signed_bytes());
        Some(receipt)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut object = CanonicalObject::new();
        object
            .unsigned("position", self.position.get())
            .text("hash", self.hash.to_hex())
            .signed("at_us", self.at.as_micros())
            .signed("recorded_at_us", self.recorded_at.as_micros())
            .unsigned("member", self.member.get())
            .text("purpose", self.purpose.as_str())
            .boolean("allowed", self.allowed)
            .text("source", self.source.as_str())
            .text("public_key", self.public_key.to_hex());
        object.to_bytes()
    }

    /// Checks the signature, and that it was made by `expected` when given.
    pub fn verify(&self, expected: Option<&PublicKey>) -> Result<(), SignatureError> {
        check_key(&self.public_key, expected)?;
        self.public_key
            .verify(RECEIPT_DOMAIN, &self.signed_bytes(), &self.signature)
    }
}

/// A signed statement of the ledger head at a time.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub position: LedgerPosition,
    pub hash: EventHash,
    pub at: Timestamp,
    pub public_key: PublicKey,
    pub signature: String,
}

impl Checkpoint {
    pub fn sign(
        position: LedgerPosition,
        hash: EventHash,
        at: Timestamp,
        signer: &LedgerSigner,
    ) -> Self {
        let mut checkpoint = Checkpoint {
            position,
            hash,
            at,
            public_key: signer.public_key(),
            signature: String::new(),
        };
        checkpoint.signature = signer.sign(CHECKPOINT_DOMAIN, &checkpoint.signed_bytes());
        checkpoint
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut object = CanonicalObject::new();
        object
            .unsigned("position", self.position.get())
            .text("hash", self.hash.to_hex())
            .signed("at_us", self.at.as_micros())
            .text("public_key", self.public_key.to_hex());
        object.to_bytes()
    }

    pub fn verify(&self, expected: Option<&PublicKey>) -> Result<(), SignatureError> {
        check_key(&self.public_key, expected)?;
        self.public_key
            .verify(CHECKPOINT_DOMAIN, &self.signed_bytes(), &self.signature)
    }
}

fn check_key(signed_by: &PublicKey, expected: Option<&PublicKey>) -> Result<(), SignatureError> {
    match expected {
        Some(expected) if expected != signed_by => Err(SignatureError::WrongKey {
            signed_by: signed_by.to_hex(),
            expected: expected.to_hex(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::seal;
    use crate::event::{Actor, ChoiceRecord, Event, EventBody};

    fn sealed_choice() -> SealedEvent {
        seal(
            Event {
                position: LedgerPosition(3),
                recorded_at: Timestamp::from_micros(100),
                body: EventBody::Choice(ChoiceRecord {
                    member: MemberId(u64::MAX - 1),
                    purpose: Purpose::new("ai_training").unwrap(),
                    allowed: false,
                    at: Timestamp::from_micros(99),
                    source: Source::Web,
                    actor: Actor::member(),
                    policy_version: None,
                    notice_version: None,
                    notice_language: None,
                    jurisdiction: None,
                    idempotency_key: None,
                }),
            },
            EventHash::GENESIS,
        )
    }

    #[test]
    fn receipt_verifies_and_detects_any_change() {
        let signer = LedgerSigner::from_seed([7; 32]);
        let receipt = Receipt::for_event(&sealed_choice(), &signer).unwrap();
        receipt.verify(Some(&signer.public_key())).unwrap();
        let json = serde_json::to_string(&receipt).unwrap();
        let back: Receipt = serde_json::from_str(&json).unwrap();
        back.verify(None).unwrap();
        let mut flipped = receipt.clone();
        flipped.allowed = true;
        assert!(flipped.verify(None).is_err());
        let other = LedgerSigner::from_seed([8; 32]);
        assert!(matches!(
            receipt.verify(Some(&other.public_key())),
            Err(SignatureError::WrongKey { .. })
        ));
    }

    #[test]
    fn checkpoint_signature_is_not_a_receipt_signature() {
        let signer = LedgerSigner::from_seed([1; 32]);
        let checkpoint = Checkpoint::sign(
            LedgerPosition(9),
            EventHash([2; 32]),
            Timestamp::from_micros(5),
            &signer,
        );
        checkpoint.verify(None).unwrap();
        let mut moved = checkpoint.clone();
        moved.position = LedgerPosition(10);
        assert!(moved.verify(None).is_err());
    }
}
