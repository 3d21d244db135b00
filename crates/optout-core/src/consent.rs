//! The effective-consent rule, as one pure function.
//!
//! At time T, a member's consent for purpose P is decided by the policy version in force
//! at T and the rule it gives the member's jurisdiction:
//! - no policy in force at T, purpose not in it, or a missing or unassigned jurisdiction:
//!   not allowed (the most protective answer);
//! - `excluded`: not allowed, whatever the member chose;
//! - otherwise the member's latest explicit choice with time <= T (ties broken by ledger
//!   position, the later position wins);
//! - else the default: `opt_in` not allowed; `opt_out` allowed from the rule's deadline
//!   (`default_effective_from`, inclusive) on and not allowed before it.

use crate::event::LedgerPosition;
use crate::jurisdiction::Jurisdiction;
use crate::policy::{Mode, PolicyHistory, PolicyVersion, Rule};
use crate::purpose::Purpose;
use crate::time::Timestamp;

/// An explicit choice as the rule needs it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExplicitChoice {
    pub allowed: bool,
    pub at: Timestamp,
    pub position: LedgerPosition,
}

/// Why the answer is what it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The member's latest choice at or before T.
    ExplicitChoice {
        position: LedgerPosition,
        at: Timestamp,
    },
    /// No choice; the jurisdiction's default (`opt_out` after its deadline: allowed;
    /// `opt_in`: not allowed).
    JurisdictionDefault { mode: Mode },
    /// No choice, `opt_out` rule, T before the deadline: the default does not count yet.
    BeforeDeadline { deadline: Timestamp },
    /// The jurisdiction is excluded for this purpose.
    Excluded,
    /// The jurisdiction is missing or not an assigned ISO 3166-1 code.
    UnknownJurisdiction,
    /// T is before the first policy version.
    NoPolicyInForce,
    /// The policy in force at T does not define this purpose.
    PurposeNotInPolicy,
}

impl Reason {
    pub fn name(&self) -> &'static str {
        match self {
            Reason::ExplicitChoice { .. } => "explicit_choice",
            Reason::JurisdictionDefault { .. } => "jurisdiction_default",
            Reason::BeforeDeadline { .. } => "before_deadline",
            Reason::Excluded => "excluded",
            Reason::UnknownJurisdiction => "unknown_jurisdiction",
            Reason::NoPolicyInForce => "no_policy_in_force",
            Reason::PurposeNotInPolicy => "purpose_not_in_policy",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Decision {
    pub allowed: bool,
    #[serde(flatten)]
    pub reason: Reason,
    /// The policy version that decided, if one was in force.
    pub policy_version: Option<PolicyVersion>,
}

/// The latest choice with time <= `at`; equal times are ordered by ledger position.
pub fn latest_choice_at<'a>(
    choices: impl IntoIterator<Item = &'a ExplicitChoice>,
    at: Timestamp,
) -> Option<&'a ExplicitChoice> {
    choices
        .into_iter()
        .filter(|choice| choice.at <= at)
        .max_by_key(|choice| (choice.at, choice.position))
}

/// The effective-consent rule. `latest` is the member's latest explicit choice for the
/// purpose with time <= `at` (see [`latest_choice_at`]).
pub fn decide(
    policies: &PolicyHistory,
    purpose: &Purpose,
    jurisdiction: Option<Jurisdiction>,
    at: Timestamp,
    latest: Option<&ExplicitChoice>,
) -> Decision {
    let Some(policy) = policies.in_force_at(at) else {
        return denied(Reason::NoPolicyInForce, None);
    };
    let version = Some(policy.version);
    let Some(purpose_policy) = policy.purpose(purpose) else {
        return denied(Reason::PurposeNotInPolicy, version);
    };
    let Some(jurisdiction) = jurisdiction.filter(|code| code.is_assigned()) else {
        return denied(Reason::UnknownJurisdiction, version);
    };
    let rule = purpose_policy.rule_for(jurisdiction);
    if rule == Rule::Excluded {
        return denied(Reason::Excluded, version);
    }
    if let Some(choice) = latest {
        return Decision {
            allowed: choice.allowed,
            reason: Reason::ExplicitChoice {
                position: choice.position,
                at: choice.at,
            },
            policy_version: version,
        };
    }
    match rule {
        Rule::OptOut {
            default_effective_from,
            ..
        } if at < default_effective_from => denied(
            Reason::BeforeDeadline {
                deadline: default_effective_from,
            },
            version,
        ),
        Rule::OptOut { .. } => Decision {
            allowed: true,
            reason: Reason::JurisdictionDefault { mode: Mode::OptOut },
            policy_version: version,
        },
        Rule::OptIn | Rule::Excluded => {
            denied(Reason::JurisdictionDefault { mode: rule.mode() }, version)
        }
    }
}

/// [`decide`] over a member's whole choice history for the purpose.
pub fn decide_from_history(
    policies: &PolicyHistory,
    purpose: &Purpose,
    jurisdiction: Option<Jurisdiction>,
    at: Timestamp,
    choices: &[ExplicitChoice],
) -> Decision {
    decide(
        policies,
        purpose,
        jurisdiction,
        at,
        latest_choice_at(choices, at),
    )
}

fn denied(reason: Reason, policy_version: Option<PolicyVersion>) -> Decision {
    Decision {
        allowed: false,
        reason,
        policy_version,
    }
}
