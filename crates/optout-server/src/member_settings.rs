//! A member's settings: what each purpose is set to and why, changing one (with a signed
//! receipt), and the member's history. Shared by the JSON API and the settings page, so
//! both say and do exactly the same. Everything here blocks on the ledger; callers run it
//! through `AppState::blocking`.

use optout_core::consent::{decide_from_history, latest_choice_at};
use optout_core::event::validate_idempotency_key;
use optout_core::policy::{PolicyDocument, PurposePolicy, Rule};
use optout_core::{
    Actor, ChoiceRecord, Jurisdiction, PolicyHistory, Purpose, Reason, Receipt, Source, Timestamp,
};
use optout_store::{ChoiceAt, ChoiceTime, NewEvent};

use crate::auth::MemberCaller;
use crate::dto::{
    ChosenValue, HistoryEntry, HistoryResponse, NoticeText, PurposeSetting, SettingsResponse,
};
use crate::problem::ApiError;
use crate::state::AppState;

/// The member's settings now.
pub fn settings(
    state: &AppState,
    caller: MemberCaller,
    gpc_signal: bool,
) -> Result<SettingsResponse, ApiError> {
    let now = state.now();
    let policies = state.shared().index.policies();
    let policy = policies.in_force_at(now);
    let mut purposes = Vec::new();
    for purpose_policy in policy.iter().flat_map(|policy| policy.purposes.values()) {
        let choices = state
            .ledger()
            .member_choices(caller.member, &purpose_policy.purpose)?;
        purposes.push(purpose_setting(
            &policies,
            purpose_policy,
            caller.jurisdiction,
            now,
            &choices,
        ));
    }
    Ok(SettingsResponse {
        member: caller.member,
        jurisdiction: caller.jurisdiction,
        at: now,
        policy_version: policy.map(|policy| policy.version),
        gpc_signal,
        purposes,
    })
}

fn purpose_setting(
    policies: &PolicyHistory,
    purpose_policy: &PurposePolicy,
    jurisdiction: Option<Jurisdiction>,
    now: Timestamp,
    choices: &[ChoiceAt],
) -> PurposeSetting {
    let explicit: Vec<_> = choices.iter().map(ChoiceAt::explicit).collect();
    let purpose = &purpose_policy.purpose;
    let decision = decide_from_history(policies, purpose, jurisdiction, now, &explicit);
    let chosen = latest_choice_at(&explicit, now).and_then(|latest| {
        choices
            .iter()
            .find(|stored| stored.position == latest.position)
            .map(|stored| ChosenValue {
                allowed: stored.choice.allowed,
                at: stored.choice.at,
                position: stored.position,
                source: stored.choice.source,
            })
    });
    let rule = jurisdiction
        .filter(|code| code.is_assigned())
        .map(|code| purpose_policy.rule_for(code));
    let (notified_at, deadline) = match rule {
        Some(Rule::OptOut {
            notified_at,
            default_effective_from,
        }) => (Some(notified_at), Some(default_effective_from)),
        _ => (None, None),
    };
    PurposeSetting {
        purpose: purpose.clone(),
        title: purpose_policy.title.clone(),
        notice: NoticeText {
            text: purpose_policy.notice.text.clone(),
            version: purpose_policy.notice.version.clone(),
            language: purpose_policy.notice.language.clone(),
        },
        mode: rule.map(|rule| rule.mode()),
        offered: rule != Some(Rule::Excluded),
        allowed: decision.allowed,
        reason: decision.reason.name(),
        is_default: !matches!(decision.reason, Reason::ExplicitChoice { .. }),
        chosen,
        notified_at,
        deadline,
        gpc_opt_out: purpose_policy.gpc_opt_out,
        message: message(&decision.reason, jurisdiction),
    }
}

/// A sentence for the member saying what applies.
fn message(reason: &Reason, jurisdiction: Option<Jurisdiction>) -> String {
    match reason {
        Reason::ExplicitChoice { .. } => "This is your own choice.".to_string(),
        Reason::JurisdictionDefault { mode } => match mode {
            optout_core::Mode::OptOut => {
                "On by default: your data may be used unless you turn this off.".to_string()
            }
            _ => "Off unless you turn it on: your data is used only with your consent."
                .to_string(),
        },
        Reason::BeforeDeadline { deadline } => format!(
            "Turn this off before {deadline} and your data is never used; until then it is not used either way."
        ),
        Reason::Excluded => format!(
            "Your data is not used for this in your region ({}); there is nothing to turn off.",
            jurisdiction.map_or_else(|| "unknown".to_string(), |code| code.to_string())
        ),
        Reason::UnknownJurisdiction => {
            "Your region is not known, so your data is not used.".to_string()
        }
        Reason::NoPolicyInForce | Reason::PurposeNotInPolicy => {
            "Your data is not used for this.".to_string()
        }
    }
}

/// What a member asked to set.
#[derive(Clone, Debug)]
pub struct ChoiceRequest {
    pub purpose_name: String,
    pub allowed: bool,
    /// `Sec-GPC: 1` was on the request.
    pub gpc_signal: bool,
    pub idempotency_key: Option<String>,
    /// The channel: `api` for the JSON API, `web` for the settings page.
    pub source: Source,
}

/// Records the member's choice and returns its signed receipt and whether it was a
/// replay of an earlier request with the same idempotency key.
pub fn record_choice(
    state: &AppState,
    caller: MemberCaller,
    request: ChoiceRequest,
) -> Result<(Receipt, bool), ApiError> {
    let now = state.now();
    let policies = state.shared().index.policies();
    let (policy, purpose_policy) = purpose_in_force(&policies, &request.purpose_name, now, "path")?;
    if let Some(code) = caller.jurisdiction.filter(|code| code.is_assigned()) {
        if purpose_policy.rule_for(code) == Rule::Excluded {
            return Err(ApiError::SettingNotOffered {
                purpose: purpose_policy.purpose.to_string(),
                jurisdiction: code.to_string(),
            });
        }
    }
    let idempotency_key = request
        .idempotency_key
        .as_deref()
        .map(validate_idempotency_key)
        .transpose()
        .map_err(|error| ApiError::InvalidParameter {
            what: "Idempotency-Key header",
            detail: error.to_string(),
        })?;
    let source = if request.gpc_signal && !request.allowed && purpose_policy.gpc_opt_out {
        Source::Gpc
    } else {
        request.source
    };
    let choice = ChoiceRecord {
        member: caller.member,
        purpose: purpose_policy.purpose.clone(),
        allowed: request.allowed,
        at: now,
        source,
        actor: Actor::member(),
        policy_version: Some(policy.version),
        notice_version: Some(purpose_policy.notice.version.clone()),
        notice_language: Some(purpose_policy.notice.language.clone()),
        jurisdiction: caller.jurisdiction,
        idempotency_key,
    };
    let appended = state.append(vec![NewEvent::Choice {
        choice,
        time: ChoiceTime::Now,
    }])?;
    let first = appended
        .first()
        .ok_or_else(|| ApiError::internal("the ledger returned no event"))?;
    let receipt = Receipt::for_event(&first.event, &state.shared().signer)
        .ok_or_else(|| ApiError::internal("the ledger returned a non-choice event"))?;
    Ok((receipt, first.replayed))
}

/// The policy in force at `now` and its entry for the named purpose.
pub fn purpose_in_force<'a>(
    policies: &'a PolicyHistory,
    name: &str,
    now: Timestamp,
    location: &str,
) -> Result<(&'a PolicyDocument, &'a PurposePolicy), ApiError> {
    let unknown = || ApiError::UnknownPurpose {
        purpose: name.chars().take(64).collect(),
        location: location.to_string(),
        known: known_purposes(policies.in_force_at(now)),
    };
    let policy = policies.in_force_at(now).ok_or_else(unknown)?;
    let purpose = Purpose::new(name).map_err(|_| unknown())?;
    let purpose_policy = policy.purpose(&purpose).ok_or_else(unknown)?;
    Ok((policy, purpose_policy))
}

fn known_purposes(policy: Option<&PolicyDocument>) -> String {
    let names: Vec<&str> = policy
        .iter()
        .flat_map(|policy| policy.purposes.keys().map(Purpose::as_str))
        .collect();
    if names.is_empty() {
        "no purposes".to_string()
    } else {
        names.join(", ")
    }
}

/// The member's choices (most recent `limit`), oldest first, each with its receipt.
pub fn history(
    state: &AppState,
    caller: MemberCaller,
    limit: usize,
) -> Result<HistoryResponse, ApiError> {
    let policies = state.shared().index.policies();
    let purposes = policies.defined_purposes();
    let mut choices = Vec::new();
    for purpose in purposes {
        choices.extend(state.ledger().member_choices(caller.member, purpose)?);
    }
    choices.sort_by_key(|choice| choice.position);
    let truncated = choices.len() > limit;
    let skip = choices.len().saturating_sub(limit);
    let mut entries = Vec::with_capacity(choices.len().min(limit));
    for stored in choices.into_iter().skip(skip) {
        entries.push(history_entry(state, stored)?);
    }
    Ok(HistoryResponse {
        member: caller.member,
        choices: entries,
        truncated,
    })
}

fn history_entry(state: &AppState, stored: ChoiceAt) -> Result<HistoryEntry, ApiError> {
    let sealed = state
        .ledger()
        .read_range(stored.position, 1)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal(format!("position {} vanished", stored.position)))?;
    let receipt = Receipt::for_event(&sealed, &state.shared().signer).ok_or_else(|| {
        ApiError::internal(format!("position {} is not a choice", stored.position))
    })?;
    let choice = stored.choice;
    Ok(HistoryEntry {
        purpose: choice.purpose,
        allowed: choice.allowed,
        at: choice.at,
        source: choice.source,
        actor: choice.actor.as_str().to_string(),
        policy_version: choice.policy_version,
        notice_version: choice.notice_version,
        jurisdiction: choice.jurisdiction,
        receipt,
    })
}
