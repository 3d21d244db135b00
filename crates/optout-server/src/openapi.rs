//! The OpenAPI 3.1 document of the `/v1` API, served at `GET /openapi.json`.
//!
//! It is generated from the code: each handler's `#[utoipa::path]` (method, path,
//! parameters, request and success bodies, the errors particular to it) and the DTOs'
//! `ToSchema` derives. What every operation shares is added here once by [`Shared`]:
//! the two bearer security schemes and the problem documents every route can answer
//! (401, 403, 429, 500, 503; 400 where there is input; 413 and 415 where there is a
//! body). Domain types from optout-core are described by the small mirror schemas
//! below, which must serialize as those types do; the schemathesis test checks real
//! responses against them.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::problem::{problem_kinds, ProblemDocument, PROBLEM_CONTENT_TYPE};
use crate::routes::{member, platform, reports, snapshots};

/// Name of the member bearer scheme in the document.
pub const MEMBER_TOKEN: &str = "member_token";
/// Name of the service bearer scheme in the document.
pub const SERVICE_TOKEN: &str = "service_token";

/// The channel a choice was made through.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Source)]
pub enum SourceName {
    Web,
    Mobile,
    Api,
    Gpc,
    Admin,
    Import,
}

/// The channels a service may record a choice with.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ServiceSource)]
pub enum ServiceSourceName {
    Web,
    Mobile,
    Api,
    Gpc,
}

/// How a jurisdiction is treated for a purpose.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Mode)]
pub enum ModeName {
    OptOut,
    OptIn,
    Excluded,
}

/// What a report's buckets are.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportByName {
    Day,
    Jurisdiction,
    Source,
}

/// The media type of a report.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormatName {
    Json,
    Csv,
}

/// A signed receipt for one choice (verify with the ledger's `signing.pub`).
#[derive(Serialize, ToSchema)]
#[schema(as = Receipt)]
pub struct ReceiptSchema {
    pub position: u64,
    /// SHA-256 of the event in the hash chain, hex.
    pub hash: String,
    /// When the member made the choice.
    #[schema(format = DateTime)]
    pub at: String,
    /// When the ledger made it durable.
    #[schema(format = DateTime)]
    pub recorded_at: String,
    pub member: u64,
    pub purpose: String,
    pub allowed: bool,
    pub source: SourceName,
    /// Ed25519 public key, hex.
    pub public_key: String,
    pub signature: String,
}

/// A signed statement of the ledger head at a time.
#[derive(Serialize, ToSchema)]
#[schema(as = Checkpoint)]
pub struct CheckpointSchema {
    pub position: u64,
    pub hash: String,
    #[schema(format = DateTime)]
    pub at: String,
    pub public_key: String,
    pub signature: String,
}

/// Why a decision is what it is: `reason`, and the facts that reason rests on.
#[derive(Serialize, ToSchema)]
#[schema(as = ReasonDetail)]
pub struct ReasonDetailSchema {
    /// `explicit_choice`, `jurisdiction_default`, `before_deadline`, `excluded`,
    /// `unknown_jurisdiction`, `no_policy_in_force` or `purpose_not_in_policy`.
    pub reason: String,
    /// Of the explicit choice.
    #[schema(required = false)]
    pub position: Option<u64>,
    /// Of the explicit choice.
    #[schema(required = false, format = DateTime)]
    pub at: Option<String>,
    /// Of the jurisdiction default.
    #[schema(required = false)]
    pub mode: Option<ModeName>,
    /// The opt-out deadline not yet reached.
    #[schema(required = false, format = DateTime)]
    pub deadline: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "optout",
        description = "Members choose whether their data may be used for AI training; every choice is an event in a hash-chained ledger. Errors are RFC 9457 problem documents; `GET /problems/{slug}` describes each type.",
    ),
    paths(
        member::get_settings,
        member::put_setting,
        member::get_history,
        member::get_usage,
        platform::post_choices_batch,
        platform::post_consent_check,
        platform::get_member_consent,
        platform::get_checkpoint,
        reports::get_choice_report,
        snapshots::post_snapshot,
        snapshots::get_snapshot,
        snapshots::get_snapshot_file,
    ),
    components(schemas(ProblemDocument, ReportByName, ReportFormatName)),
    modifiers(&Shared),
    tags(
        (name = "member", description = "A member's own settings (member token)"),
        (name = "platform", description = "Platform services (service token with scopes)"),
        (name = "reports", description = "Aggregates for privacy officers and auditors"),
        (name = "snapshots", description = "Deterministic consent snapshots for other engines"),
    )
)]
pub struct ApiDoc;

/// Adds what every operation shares: security schemes and the common problem answers.
struct Shared;

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                MEMBER_TOKEN,
                "A member token: JWT (EdDSA or HS256) with `sub` = member id and a `jurisdiction` claim, no `scope`.",
            ),
            (
                SERVICE_TOKEN,
                "A service token: JWT (EdDSA or HS256) with `sub` = service name and `scope` = space-separated scopes.",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(description))
                        .build(),
                ),
            );
        }
        link_snapshots(openapi);
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common_problems(operation);
            }
        }
    }
}

/// Links from a created snapshot to reading it and its manifest, so clients (and
/// schemathesis' stateful phase) can follow the id `POST /v1/snapshots` answers.
fn link_snapshots(openapi: &mut utoipa::openapi::OpenApi) {
    let Some(operation) = openapi
        .paths
        .paths
        .get_mut("/v1/snapshots")
        .and_then(|item| item.post.as_mut())
    else {
        return;
    };
    for status in ["200", "201"] {
        if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
            response.links.insert(
                "GetSnapshot".into(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id("get_snapshot")
                        .parameter("id", "$response.body#/id")
                        .description("The snapshot just answered")
                        .build(),
                ),
            );
            response.links.insert(
                "GetSnapshotManifest".into(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id("get_snapshot_file")
                        .parameter("id", "$response.body#/id")
                        .parameter("name", "snapshot.json")
                        .description("Its signed manifest")
                        .build(),
                ),
            );
        }
    }
}

fn add_common_problems(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let has_input = has_body
        || operation
            .parameters
            .as_ref()
            .is_some_and(|parameters| !parameters.is_empty());
    let mut statuses = vec![401, 403, 429, 500, 503];
    if has_input {
        statuses.push(400);
    }
    if has_body {
        statuses.extend([413, 415]);
    }
    for status in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem_response(status)));
    }
}

/// A problem-document response whose description lists the problem types with `status`.
pub fn problem_response(status: u16) -> Response {
    let slugs: Vec<String> = problem_kinds()
        .into_iter()
        .filter(|kind| kind.status.as_u16() == status)
        .map(|kind| format!("`{}` ({})", kind.slug, kind.title))
        .collect();
    let description = if slugs.is_empty() {
        "A problem document".to_string()
    } else {
        format!("A problem document: {}", slugs.join(", "))
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDocument")))
                .build(),
        )
        .build()
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
pub async fn get_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
