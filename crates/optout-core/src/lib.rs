//! The domain of optout, free of I/O: who (member, jurisdiction), what (purpose, choice,
//! source), the versioned policy, the effective-consent rule, the canonical encoding and
//! hash chain of ledger events, and signed receipts and checkpoints.
//!
//! Everything that decides whether a member's data may be used lives here as pure
//! functions, so the store, the index, the gate and the server all answer the same way.

pub mod canonical;
pub mod chain;
pub mod clock;
pub mod consent;
pub mod event;
pub mod jurisdiction;
pub mod member;
pub mod policy;
pub mod purpose;
pub mod receipt;
pub mod signing;
pub mod source;
pub mod splitmix;
pub mod time;

pub use chain::{ChainHead, EventHash};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::{decide, latest_choice_at, Decision, ExplicitChoice, Reason};
pub use event::{
    Actor, ChoiceRecord, DatasetRecord, Event, EventBody, LedgerPosition, PolicyRecord, SealedEvent,
};
pub use jurisdiction::Jurisdiction;
pub use member::MemberId;
pub use policy::{Mode, PolicyDocument, PolicyHistory, PolicyVersion, PurposePolicy, Rule};
pub use purpose::Purpose;
pub use receipt::{Checkpoint, Receipt};
pub use signing::{LedgerSigner, PublicKey};
pub use source::Source;
pub use time::Timestamp;
