//! The ledger's ed25519 signing key and the public key that verifies what it signs.
//! Each kind of signed document has its own domain prefix, so a signature over a receipt
//! can never pass as one over a checkpoint.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

pub struct LedgerSigner {
    key: SigningKey,
}

impl fmt::Debug for LedgerSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerSigner(public {})", self.public_key())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("invalid public key: expected 64 hex digits of an ed25519 key")]
    BadPublicKey,
    #[error("invalid signature encoding: expected 128 hex digits")]
    BadSignatureEncoding,
    #[error("signature does not verify with public key {0}")]
    Mismatch(String),
    #[error("signed by key {signed_by}, expected {expected}")]
    WrongKey { signed_by: String, expected: String },
}

impl LedgerSigner {
    /// Builds the signer from a 32-byte secret seed (the caller draws it from the OS).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        LedgerSigner {
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs `domain` + "\n" + `message`; returns 128 hex digits.
    pub fn sign(&self, domain: &str, message: &[u8]) -> String {
        hex::encode(self.key.sign(&framed(domain, message)).to_bytes())
    }
}

fn framed(domain: &str, message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(domain.len() + 1 + message.len());
    framed.extend_from_slice(domain.as_bytes());
    framed.push(b'\n');
    framed.extend_from_slice(message);
    framed
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    pub fn verify(
        &self,
        domain: &str,
        message: &[u8],
        signature_hex: &str,
    ) -> Result<(), SignatureError> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(signature_hex.trim(), &mut bytes)
            .map_err(|_| SignatureError::BadSignatureEncoding)?;
        let signature = Signature::from_bytes(&bytes);
        self.0
            .verify(&framed(domain, message), &signature)
            .map_err(|_| SignatureError::Mismatch(self.to_hex()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl FromStr for PublicKey {
    type Err = SignatureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| SignatureError::BadPublicKey)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| SignatureError::BadPublicKey)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
