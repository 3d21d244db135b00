//! Snapshot endpoints, for services holding `snapshots:write` (take one) and
//! `snapshots:read` (show one, download its files).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body::Frame;
use optout_core::LedgerPosition;
use optout_index::export::{ExportFormat, SnapshotManifest, MANIFEST_FILE};
use tokio::io::{AsyncRead, ReadBuf};

use crate::auth::{ServiceCaller, SnapshotsRead, SnapshotsWrite};
use crate::dto::{CreateSnapshotRequest, SnapshotFileLink, SnapshotFormat, SnapshotResponse};
use crate::json_body::JsonBody;
use crate::problem::ApiError;
use crate::problem::ProblemDocument;
use crate::routes::platform::defined_purpose;
use crate::snapshots::{self, SnapshotKey};
use crate::state::AppState;

/// Bytes read from a snapshot file per chunk of a download.
const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// `POST /v1/snapshots`: takes the snapshot (201), or answers the one already taken for
/// the same purpose, cutoff, position and format (200).
#[utoipa::path(
    post,
    path = "/v1/snapshots",
    tag = "snapshots",
    summary = "Take a snapshot (or answer the one already taken for the same purpose, cutoff, position and format)",
    request_body = CreateSnapshotRequest,
    responses(
        (status = 201, description = "Taken", body = SnapshotResponse, headers(("Location" = String, description = "/v1/snapshots/{id}"))),
        (status = 200, description = "Taken before", body = SnapshotResponse, headers(("Location" = String, description = "/v1/snapshots/{id}"))),
        (status = 404, description = "A problem document: `unknown-purpose`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A problem document: `snapshot-limit-reached`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["snapshots:write"])),
)]
pub async fn post_snapshot(
    State(state): State<AppState>,
    _caller: ServiceCaller<SnapshotsWrite>,
    JsonBody(body): JsonBody<CreateSnapshotRequest>,
) -> Result<Response, ApiError> {
    let now = state.now();
    if body.cutoff > now {
        return Err(ApiError::CutoffInFuture(body.cutoff.to_string()));
    }
    let purpose = defined_purpose(&state.shared().index.policies(), &body.purpose)?;
    let format = match body.format {
        SnapshotFormat::Roaring => ExportFormat::Roaring,
        SnapshotFormat::Parquet => ExportFormat::Parquet,
    };
    let (manifest, id, created) = state
        .blocking(move |state| {
            let head = state
                .ledger()
                .head()?
                .map_or(LedgerPosition(0), |head| head.position);
            let position = body.position.unwrap_or(head);
            if position > head {
                return Err(ApiError::InvalidBody(format!(
                    "position: {position} is beyond the ledger head {head}"
                )));
            }
            let key = SnapshotKey {
                purpose,
                cutoff: body.cutoff,
                position,
                format,
            };
            let (manifest, created) = snapshots::create(state, &key)?;
            Ok((manifest, key.id(), created))
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = HeaderValue::from_str(&format!("/v1/snapshots/{id}"))
        .map_err(|error| ApiError::internal(format!("snapshot location: {error}")))?;
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(response(&id, &manifest)),
    )
        .into_response())
}

/// `GET /v1/snapshots/{id}`.
#[utoipa::path(
    get,
    path = "/v1/snapshots/{id}",
    tag = "snapshots",
    summary = "A snapshot: what it is, its counts and its files",
    params(("id" = String, Path, description = "What `POST /v1/snapshots` answered")),
    responses(
        (status = 200, description = "The snapshot", body = SnapshotResponse),
        (status = 404, description = "A problem document: `snapshot-not-found`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["snapshots:read"])),
)]
pub async fn get_snapshot(
    State(state): State<AppState>,
    _caller: ServiceCaller<SnapshotsRead>,
    Path(id): Path<String>,
) -> Result<Json<SnapshotResponse>, ApiError> {
    state
        .blocking(move |state| snapshots::find(state, &id).map(|manifest| response(&id, &manifest)))
        .await
        .map(Json)
}

/// `GET /v1/snapshots/{id}/files/{name}`: one file of the snapshot, streamed.
#[utoipa::path(
    get,
    path = "/v1/snapshots/{id}/files/{name}",
    tag = "snapshots",
    summary = "Download a file of a snapshot: `snapshot.json` or a file it lists",
    params(
        ("id" = String, Path, description = "What `POST /v1/snapshots` answered"),
        ("name" = String, Path, description = "`snapshot.json` or a file name the snapshot lists"),
    ),
    responses(
        (status = 200, description = "The file; `ETag` is its SHA-256 (except for `snapshot.json`)",
            content(
                (String = "application/octet-stream"),
                (String = "application/vnd.apache.parquet"),
                (Object = "application/json"),
                (String = "text/csv"),
            )),
        (status = 404, description = "A problem document: `snapshot-not-found`, `snapshot-file-not-found`", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("service_token" = ["snapshots:read"])),
)]
pub async fn get_snapshot_file(
    State(state): State<AppState>,
    _caller: ServiceCaller<SnapshotsRead>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (path, sha256, name) = state
        .blocking(move |state| {
            snapshots::file_path(state, &id, &name).map(|(path, sha256)| (path, sha256, name))
        })
        .await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|error| ApiError::internal(format!("{}: {error}", path.display())))?;
    let bytes = file
        .metadata()
        .await
        .map_err(|error| ApiError::internal(format!("{}: {error}", path.display())))?
        .len();
    let mut response = Body::new(FileBody {
        file,
        buffer: vec![0; DOWNLOAD_CHUNK_BYTES].into_boxed_slice(),
    })
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(&name)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes));
    // Names come from the manifest's own list (or are snapshot.json): plain ASCII.
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if let Some(etag) =
        sha256.and_then(|digest| HeaderValue::from_str(&format!("\"{digest}\"")).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

fn media_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

fn response(id: &str, manifest: &SnapshotManifest) -> SnapshotResponse {
    let members = |set: &str| {
        manifest
            .files
            .iter()
            .find(|file| file.set == set)
            .map_or(0, |file| file.members)
    };
    let href = |name: &str| format!("/v1/snapshots/{id}/files/{name}");
    SnapshotResponse {
        id: id.to_string(),
        purpose: manifest.purpose.clone(),
        cutoff: manifest.cutoff,
        position: manifest.position,
        ledger_hash: manifest.ledger_hash.to_hex(),
        policy_version: manifest.policy_version,
        format: match manifest.format {
            ExportFormat::Roaring => SnapshotFormat::Roaring,
            ExportFormat::Parquet => SnapshotFormat::Parquet,
        },
        explicit_allowed: members("explicit_allowed"),
        explicit_denied: members("explicit_denied"),
        created_at: manifest.created_at,
        public_key: manifest.public_key.to_hex(),
        manifest_href: href(MANIFEST_FILE),
        files: manifest
            .files
            .iter()
            .map(|file| SnapshotFileLink {
                name: file.name.clone(),
                set: file.set.clone(),
                members: file.members,
                bytes: file.bytes,
                sha256: file.sha256.clone(),
                href: href(&file.name),
            })
            .collect(),
    }
}

/// A file as a response body, read in chunks as the client takes them, so a snapshot of
/// a billion members is never held in memory.
struct FileBody {
    file: tokio::fs::File,
    buffer: Box<[u8]>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let mut read = ReadBuf::new(&mut this.buffer);
        match Pin::new(&mut this.file).poll_read(context, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
            }
        }
    }
}
