//! Who is calling, as extractors: [`MemberCaller`] for member endpoints and
//! [`ServiceCaller<S>`] for platform endpoints needing scope `S`.
//!
//! The member is always the token's `sub`; no member endpoint takes a member id from the
//! path or body, so a member can only ever read or change their own settings. A member
//! token on a platform endpoint gets 403, and so does a service token on a member
//! endpoint or without the required scope. Rate limits are taken here, after the token
//! verified, so a forged token cannot spend a member's budget.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use optout_core::{Jurisdiction, MemberId};

use crate::problem::ApiError;
use crate::rate_limit::RateKey;
use crate::state::AppState;
use crate::token::{
    Principal, SCOPE_CHOICES_WRITE, SCOPE_CONSENT_READ, SCOPE_LEDGER_READ, SCOPE_REPORTS_READ,
    SCOPE_SNAPSHOTS_READ, SCOPE_SNAPSHOTS_WRITE,
};

/// The name of the cookie the settings page keeps the member's token in.
pub const SESSION_COOKIE: &str = "optout_session";

/// A member, authenticated by a member token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberCaller {
    pub member: MemberId,
    pub jurisdiction: Option<Jurisdiction>,
}

impl FromRequestParts<AppState> for MemberCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or(ApiError::TokenMissing)?;
        member_from_token(token, state)
    }
}

/// Verifies a member token and takes one request from the member's rate budget.
pub fn member_from_token(token: &str, state: &AppState) -> Result<MemberCaller, ApiError> {
    match state.shared().tokens.verify(token, state.now())? {
        Principal::Member {
            member,
            jurisdiction,
        } => {
            state.acquire_rate(RateKey::Member(member.get()))?;
            Ok(MemberCaller {
                member,
                jurisdiction,
            })
        }
        Principal::Service { .. } => Err(ApiError::MemberTokenRequired),
    }
}

/// A scope a platform endpoint requires.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: &'static str;
}

/// `choices:write`.
#[derive(Debug)]
pub struct ChoicesWrite;
impl RequiredScope for ChoicesWrite {
    const SCOPE: &'static str = SCOPE_CHOICES_WRITE;
}

/// `consent:read`.
#[derive(Debug)]
pub struct ConsentRead;
impl RequiredScope for ConsentRead {
    const SCOPE: &'static str = SCOPE_CONSENT_READ;
}

/// `ledger:read`.
#[derive(Debug)]
pub struct LedgerRead;
impl RequiredScope for LedgerRead {
    const SCOPE: &'static str = SCOPE_LEDGER_READ;
}

/// `reports:read`.
#[derive(Debug)]
pub struct ReportsRead;
impl RequiredScope for ReportsRead {
    const SCOPE: &'static str = SCOPE_REPORTS_READ;
}

/// `snapshots:write`.
#[derive(Debug)]
pub struct SnapshotsWrite;
impl RequiredScope for SnapshotsWrite {
    const SCOPE: &'static str = SCOPE_SNAPSHOTS_WRITE;
}

/// `snapshots:read`.
#[derive(Debug)]
pub struct SnapshotsRead;
impl RequiredScope for SnapshotsRead {
    const SCOPE: &'static str = SCOPE_SNAPSHOTS_READ;
}

/// A platform service whose token carries scope `S`.
#[derive(Debug)]
pub struct ServiceCaller<S: RequiredScope> {
    pub name: String,
    scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequestParts<AppState> for ServiceCaller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or(ApiError::TokenMissing)?;
        match state.shared().tokens.verify(token, state.now())? {
            Principal::Service {
                name,
                scopes,
                token_fingerprint,
            } => {
                if !scopes.iter().any(|scope| scope == S::SCOPE) {
                    return Err(ApiError::ScopeMissing { required: S::SCOPE });
                }
                state.acquire_rate(RateKey::ServiceToken(token_fingerprint))?;
                Ok(ServiceCaller {
                    name,
                    scope: PhantomData,
                })
            }
            Principal::Member { .. } => Err(ApiError::ServiceTokenRequired { required: S::SCOPE }),
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}
