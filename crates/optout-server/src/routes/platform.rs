//! Platform endpoints, for services holding scoped tokens: batch choices, batch consent
//! checks, one member's consent, and signed ledger checkpoints.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use base64::Engine as _;
use optout_core::consent::decide_from_history;
use optout_core::event::validate_idempotency_key;
use optout_core::{
    Actor, Checkpoint, ChoiceRecord, Jurisdiction, MemberId, Purpose, Receipt, Source, Timestamp,
};
use optout_store::{ChoiceAt, ChoiceTime, NewEvent};

use crate::auth::{ChoicesWrite, ConsentRead, LedgerRead, ServiceCaller};
use crate::dto::{
    BatchChoice, BatchQuery, BatchRequest, BatchResponse, BatchResult, CheckFormat, CheckRequest,
    CheckResponse, MemberConsentQuery, MemberConsentResponse, PurposeConsent,
};
use crate::json_body::JsonBody;
use crate::member_settings::purpose_in_force;
use crate::problem::ApiError;
use crate::problem::ProblemDocument;
use crate::state::AppState;

/// Sources a service may record a choice with: the channel the member used.
const SERVICE_SOURCES: [Source; 4] = [Source::Web, Source::Mobile, Source::Api, Source::Gpc];

/// `POST /v1/choices:batch`: many members' choices, appended as one durable group.
#[utoipa::path(
    post,
    path = "/v1/choices:batch",
    tag = "platform",
    summary = "Append many members' choices as one durable group",
    params(BatchQuery),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "The positions (and receipts) of the appended choices", body = BatchResponse),
        (status = 404, description = "A problem document: `unknown-purpose`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A problem document: `idempotency-key-reused`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["choices:write"])),
)]
pub async fn post_choices_batch(
    State(state): State<AppState>,
    caller: ServiceCaller<ChoicesWrite>,
    query: Result<Query<BatchQuery>, QueryRejection>,
    JsonBody(body): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let max = state.limits().batch_choices_max;
    if body.choices.len() > max {
        return Err(ApiError::BatchTooLarge {
            count: body.choices.len(),
            max,
        });
    }
    let actor = Actor::new(&format!("service:{}", caller.name))
        .map_err(|error| ApiError::TokenInvalid(error.to_string()))?;
    state
        .blocking(move |state| append_batch(state, body.choices, &actor, query.receipts))
        .await
        .map(Json)
}

fn append_batch(
    state: &AppState,
    choices: Vec<BatchChoice>,
    actor: &Actor,
    with_receipts: bool,
) -> Result<BatchResponse, ApiError> {
    let now = state.now();
    let policies = state.shared().index.policies();
    let mut events = Vec::with_capacity(choices.len());
    for (index, item) in choices.into_iter().enumerate() {
        let location = format!("choices[{index}].purpose");
        let (policy, purpose_policy) = purpose_in_force(&policies, &item.purpose, now, &location)?;
        let source = batch_source(item.source.as_deref(), index)?;
        let idempotency_key = item
            .idempotency_key
            .as_deref()
            .map(validate_idempotency_key)
            .transpose()
            .map_err(|error| {
                ApiError::InvalidBody(format!("choices[{index}].idempotency_key: {error}"))
            })?;
        events.push(NewEvent::Choice {
            choice: ChoiceRecord {
                member: item.member,
                purpose: purpose_policy.purpose.clone(),
                allowed: item.allowed,
                at: now,
                source,
                actor: actor.clone(),
                policy_version: Some(policy.version),
                notice_version: Some(purpose_policy.notice.version.clone()),
                notice_language: Some(purpose_policy.notice.language.clone()),
                jurisdiction: item.jurisdiction.and_then(|field| field.0),
                idempotency_key,
            },
            time: ChoiceTime::Now,
        });
    }
    let appended = state.append(events)?;
    let signer = &state.shared().signer;
    let replayed = appended.iter().filter(|event| event.replayed).count();
    let results = appended
        .iter()
        .map(|event| BatchResult {
            position: event.event.position(),
            hash: event.event.hash.to_hex(),
            replayed: event.replayed,
            receipt: with_receipts
                .then(|| Receipt::for_event(&event.event, signer))
                .flatten(),
        })
        .collect();
    Ok(BatchResponse {
        appended: appended.len() - replayed,
        replayed,
        results,
    })
}

fn batch_source(name: Option<&str>, index: usize) -> Result<Source, ApiError> {
    let Some(name) = name else {
        return Ok(Source::Api);
    };
    name.parse::<Source>()
        .ok()
        .filter(|source| SERVICE_SOURCES.contains(source))
        .ok_or_else(|| {
            ApiError::InvalidBody(format!(
                "choices[{index}].source: {name:?} is not one of web, mobile, api, gpc"
            ))
        })
}

/// `POST /v1/consent:check`: which of these members may be used for the purpose.
#[utoipa::path(
    post,
    path = "/v1/consent:check",
    tag = "platform",
    summary = "Which of these members may be used for the purpose, now or at a past cutoff",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The allowed members (ids or bitmask)", body = CheckResponse),
        (status = 404, description = "A problem document: `unknown-purpose`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["consent:read"])),
)]
pub async fn post_consent_check(
    State(state): State<AppState>,
    _caller: ServiceCaller<ConsentRead>,
    JsonBody(body): JsonBody<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    let max = state.limits().check_members_max;
    if body.members.len() > max {
        return Err(ApiError::BatchTooLarge {
            count: body.members.len(),
            max,
        });
    }
    if !body.jurisdictions.is_empty() && body.jurisdictions.len() != body.members.len() {
        return Err(ApiError::InvalidBody(format!(
            "{} members but {} jurisdictions: give one jurisdiction (or null) per member, or none",
            body.members.len(),
            body.jurisdictions.len()
        )));
    }
    state
        .blocking(move |state| check(state, body))
        .await
        .map(Json)
}

fn check(state: &AppState, body: CheckRequest) -> Result<CheckResponse, ApiError> {
    let now = state.now();
    let at = match body.cutoff {
        Some(cutoff) if cutoff > now => return Err(ApiError::CutoffInFuture(cutoff.to_string())),
        Some(cutoff) => cutoff,
        None => now,
    };
    let policies = state.shared().index.policies();
    let purpose = defined_purpose(&policies, &body.purpose)?;
    let jurisdictions: Vec<Option<Jurisdiction>> =
        body.jurisdictions.iter().map(|field| field.0).collect();
    let ledger = state.ledger();
    // Under the read lock only the bitmap path runs; a past cutoff with choices after it
    // needs a snapshot, which reads the ledger, so it is built after the lock is released
    // (appends wait for the write lock to bring the index up to date).
    let (current, position) = state.shared().index.read(|index| {
        let position = index.applied_position();
        if !index.is_current_at(&purpose, at) {
            return Ok((None, position));
        }
        index
            .check_batch(&purpose, at, &body.members, &jurisdictions, ledger)
            .map(|words| (Some(words), position))
    })??;
    let words = match current {
        Some(words) => words,
        None => optout_index::Snapshot::build(ledger, &purpose, at, Some(position))?
            .check_batch(&body.members, &jurisdictions)?,
    };
    state.shared().metrics.ids_checked.fetch_add(
        body.members.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let allowed_count = words.iter().map(|word| word.count_ones() as usize).sum();
    let (allowed, bitmask) = match body.format {
        CheckFormat::Ids => (Some(allowed_ids(&body.members, &words)), None),
        CheckFormat::Bitmask => (None, Some(bitmask(&words, body.members.len()))),
    };
    Ok(CheckResponse {
        purpose,
        at,
        position,
        checked: body.members.len(),
        allowed_count,
        allowed,
        bitmask,
    })
}

fn allowed_ids(members: &[MemberId], words: &[u64]) -> Vec<MemberId> {
    members
        .iter()
        .enumerate()
        .filter(|(index, _)| {
            words
                .get(index / 64)
                .is_some_and(|word| word & (1 << (index % 64)) != 0)
        })
        .map(|(_, member)| *member)
        .collect()
}

fn bitmask(words: &[u64], bits: usize) -> String {
    let mut bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
    bytes.truncate(bits.div_ceil(8));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A purpose that some recorded policy version defines.
pub(crate) fn defined_purpose(
    policies: &optout_core::PolicyHistory,
    name: &str,
) -> Result<Purpose, ApiError> {
    let defined = policies.defined_purposes();
    Purpose::new(name)
        .ok()
        .filter(|purpose| defined.contains(purpose))
        .ok_or_else(|| {
            let mut known: Vec<&str> = defined.iter().map(|purpose| purpose.as_str()).collect();
            known.sort_unstable();
            ApiError::UnknownPurpose {
                purpose: name.chars().take(64).collect(),
                location: "purpose".into(),
                known: known.join(", "),
            }
        })
}

/// `GET /v1/members/{id}/consent[?purpose=P][&jurisdiction=XX][&at=T]`.
#[utoipa::path(
    get,
    path = "/v1/members/{id}/consent",
    tag = "platform",
    summary = "One member's consent per purpose, with the reason, read from the member's history",
    params(("id" = u64, Path, description = "The member id"), MemberConsentQuery),
    responses(
        (status = 200, description = "The decision per purpose", body = MemberConsentResponse),
        (status = 404, description = "A problem document: `unknown-purpose`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["consent:read"])),
)]
pub async fn get_member_consent(
    State(state): State<AppState>,
    _caller: ServiceCaller<ConsentRead>,
    Path(member): Path<String>,
    query: Result<Query<MemberConsentQuery>, QueryRejection>,
) -> Result<Json<MemberConsentResponse>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let member = member
        .parse::<MemberId>()
        .map_err(|error| ApiError::InvalidParameter {
            what: "member id",
            detail: error.to_string(),
        })?;
    let jurisdiction = query
        .jurisdiction
        .as_deref()
        .map(Jurisdiction::parse)
        .transpose()
        .map_err(|error| ApiError::InvalidParameter {
            what: "jurisdiction",
            detail: error.to_string(),
        })?;
    let at = query
        .at
        .as_deref()
        .map(Timestamp::parse_rfc3339)
        .transpose()
        .map_err(|error| ApiError::InvalidParameter {
            what: "at",
            detail: error.to_string(),
        })?;
    state
        .blocking(move |state| member_consent(state, member, jurisdiction, at, query.purpose))
        .await
        .map(Json)
}

fn member_consent(
    state: &AppState,
    member: MemberId,
    jurisdiction: Option<Jurisdiction>,
    at: Option<Timestamp>,
    purpose_name: Option<String>,
) -> Result<MemberConsentResponse, ApiError> {
    let at = at.unwrap_or_else(|| state.now());
    let policies = state.shared().index.policies();
    let purposes: Vec<Purpose> = match purpose_name {
        Some(name) => vec![defined_purpose(&policies, &name)?],
        None => policies.defined_purposes().into_iter().cloned().collect(),
    };
    let ledger_position = state
        .ledger()
        .head()?
        .map_or_else(Default::default, |head| head.position);
    let mut answers = Vec::with_capacity(purposes.len());
    for purpose in purposes {
        let choices: Vec<_> = state
            .ledger()
            .member_choices(member, &purpose)?
            .iter()
            .map(ChoiceAt::explicit)
            .collect();
        let decision = decide_from_history(&policies, &purpose, jurisdiction, at, &choices);
        answers.push(PurposeConsent {
            purpose,
            allowed: decision.allowed,
            reason: decision.reason.name(),
            detail: decision.reason,
            policy_version: decision.policy_version,
            explicit_choices: choices.len(),
        });
    }
    Ok(MemberConsentResponse {
        member,
        jurisdiction,
        at,
        ledger_position,
        purposes: answers,
    })
}

/// `GET /v1/ledger/checkpoint`: the signed ledger head.
#[utoipa::path(
    get,
    path = "/v1/ledger/checkpoint",
    tag = "platform",
    summary = "The signed ledger head",
    responses(
        (status = 200, description = "The signed checkpoint", body = crate::openapi::CheckpointSchema),
        (status = 404, description = "A problem document: `ledger-empty`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["ledger:read"])),
)]
pub async fn get_checkpoint(
    State(state): State<AppState>,
    _caller: ServiceCaller<LedgerRead>,
) -> Result<Json<Checkpoint>, ApiError> {
    state
        .blocking(|state| {
            let head = state.ledger().head()?.ok_or(ApiError::LedgerEmpty)?;
            Ok(Checkpoint::sign(
                head.position,
                head.hash,
                state.now(),
                &state.shared().signer,
            ))
        })
        .await
        .map(Json)
}

pub(crate) fn query_error(rejection: QueryRejection) -> ApiError {
    let detail = rejection.body_text();
    match detail
        .split("unknown field `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
    {
        Some(field) => ApiError::FieldNotSettable {
            field: field.to_string(),
        },
        None => ApiError::InvalidParameter {
            what: "query",
            detail,
        },
    }
}
