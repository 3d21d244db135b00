//! Ledger exports: JSON Lines, one event a line, that an auditor can verify offline
//! without optout (`docs/ledger-format.md` specifies the format; `docs/verify_ledger.py`
//! checks it in a few lines of Python).
//!
//! Each line is `{"event":<canonical event>,"hash":"<hex>","position":N,"prev_hash":"<hex>"}`
//! with the event's canonical bytes embedded verbatim, so re-hashing needs no re-encoding.

use std::io::{BufRead, Write};

use optout_core::canonical;
use optout_core::chain::ChainVerifier;
use optout_core::{ChainHead, Checkpoint, EventHash, LedgerPosition, PublicKey};
use serde::Deserialize;

use crate::error::StoreError;
use crate::ledger::Ledger;
use crate::verify::VERIFY_PAGE_EVENTS;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line}: {problem}")]
    Line { line: u64, problem: String },
    #[error("ledger does not verify at position {position} (line {line}): {problem}")]
    Chain {
        line: u64,
        position: LedgerPosition,
        problem: String,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("cannot read or write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExportError {
    pub fn position(&self) -> Option<LedgerPosition> {
        match self {
            ExportError::Chain { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// Writes every event of the ledger; returns the head written (None if empty).
pub fn export_ledger(
    ledger: &dyn Ledger,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<Option<ChainHead>, ExportError> {
    let mut next = LedgerPosition::FIRST;
    let mut head = None;
    let mut written = 0u64;
    loop {
        let page = ledger.read_range(next, VERIFY_PAGE_EVENTS)?;
        let Some(last) = page.last() else { break };
        next = last.position().next();
        for sealed in &page {
            out.write_all(b"{\"event\":")?;
            out.write_all(&canonical::encode(&sealed.event))?;
            writeln!(
                out,
                ",\"hash\":\"{}\",\"position\":{},\"prev_hash\":\"{}\"}}",
                sealed.hash,
                sealed.position(),
                sealed.prev_hash
            )?;
            head = Some(ChainHead {
                position: sealed.position(),
                hash: sealed.hash,
            });
        }
        written += page.len() as u64;
        progress(written);
    }
    Ok(head)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportLine<'a> {
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
    hash: EventHash,
    position: u64,
    prev_hash: EventHash,
}

/// The position the verifier expects next (where a malformed line is reported).
fn verifier_position(verifier: &ChainVerifier) -> LedgerPosition {
    verifier
        .head()
        .map_or(LedgerPosition::FIRST, |head| head.position.next())
}

/// Verifies an export line by line; with a checkpoint, also that its signature holds (by
/// `key` when given) and that the export contains the checkpointed position and hash.
pub fn verify_export(
    input: &mut dyn BufRead,
    checkpoint: Option<&Checkpoint>,
    key: Option<&PublicKey>,
    mut progress: impl FnMut(u64),
) -> Result<Option<ChainHead>, ExportError> {
    if let Some(checkpoint) = checkpoint {
        checkpoint
            .verify(key)
            .map_err(|error| ExportError::Checkpoint(error.to_string()))?;
    }
    let mut verifier = ChainVerifier::new();
    let mut checkpoint_seen = false;
    let mut line_number = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        line_number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        let parsed: ExportLine<'_> =
            serde_json::from_str(text).map_err(|error| ExportError::Line {
                line: line_number,
                problem: format!("not an export line: {error}"),
            })?;
        let chain_error = |position: LedgerPosition, problem: String| ExportError::Chain {
            line: line_number,
            position,
            problem,
        };
        let event = canonical::decode(parsed.event.get().as_bytes())
            .map_err(|error| chain_error(LedgerPosition(parsed.position), error.to_string()))?;
        // The line itself must be exactly what `export_ledger` writes (as the Python
        // verifier also requires), so the two verifiers accept the same files.
        let canonical_line = format!(
            "{{\"event\":{},\"hash\":\"{}\",\"position\":{},\"prev_hash\":\"{}\"}}",
            parsed.event.get(),
            parsed.hash,
            parsed.position,
            parsed.prev_hash
        );
        if canonical_line != text {
            return Err(chain_error(
                verifier_position(&verifier),
                "the line is not in canonical form".to_string(),
            ));
        }
        if event.position.get() != parsed.position {
            return Err(chain_error(
                LedgerPosition(parsed.position),
                format!(
                    "line says position {} but its event says {}",
                    parsed.position, event.position
                ),
            ));
        }
        verifier
            .push_with_prev(&event, &parsed.prev_hash, &parsed.hash)
            .map_err(|error| chain_error(error.position, error.problem))?;
        if let Some(checkpoint) = checkpoint {
            if checkpoint.position == event.position {
                if checkpoint.hash != parsed.hash {
                    return Err(chain_error(
                        event.position,
                        format!("the checkpoint says hash {} here, the export {}: the ledger was rewritten", checkpoint.hash, parsed.hash),
                    ));
                }
                checkpoint_seen = true;
            }
        }
        if line_number.is_multiple_of(100_000) {
            progress(line_number);
        }
    }
    if let Some(checkpoint) = checkpoint {
        if !checkpoint_seen {
            return Err(ExportError::Checkpoint(format!(
                "the export ends before the checkpointed position {}: events were removed",
                checkpoint.position
            )));
        }
    }
    Ok(verifier.head())
}
