//! Verification of a stored ledger: every event re-encoded and re-hashed, in order.

use optout_core::chain::{ChainError, ChainVerifier};
use optout_core::{ChainHead, LedgerPosition};

use crate::error::StoreError;
use crate::ledger::Ledger;

/// Events read per call while verifying.
pub const VERIFY_PAGE_EVENTS: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// The first bad position, when the chain (not the storage) failed.
    pub fn position(&self) -> Option<LedgerPosition> {
        match self {
            VerifyError::Chain(error) => Some(error.position),
            VerifyError::Store(StoreError::Corrupt { position, .. }) => Some(*position),
            VerifyError::Store(_) => None,
        }
    }
}

/// Walks the whole ledger; returns its head (None if empty) or the first bad position.
/// `progress` is called with the number of events checked so far after each page.
pub fn verify_ledger(
    ledger: &dyn Ledger,
    mut progress: impl FnMut(u64),
) -> Result<Option<ChainHead>, VerifyError> {
    let mut verifier = ChainVerifier::new();
    let mut next = LedgerPosition::FIRST;
    let mut checked = 0u64;
    loop {
        let page = ledger.read_range(next, VERIFY_PAGE_EVENTS)?;
        let Some(last) = page.last() else { break };
        next = last.position().next();
        for sealed in &page {
            verifier.push(&sealed.event, &sealed.hash)?;
        }
        checked += page.len() as u64;
        progress(checked);
    }
    let head = verifier.head();
    // The stored head must be the last verified event: a truncated read would hide events.
    let stored = ledger.head()?;
    if stored != head {
        let position = head.map_or(LedgerPosition::FIRST, |head| head.position.next());
        return Err(VerifyError::Chain(ChainError {
            position,
            problem: format!(
                "the store's head {:?} differs from the last event read in order",
                stored.map(|head| head.position.get())
            ),
        }));
    }
    Ok(head)
}
