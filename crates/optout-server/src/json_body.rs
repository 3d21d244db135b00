//! `JsonBody<T>`: the request-body extractor every JSON endpoint uses.
//!
//! It exists so that each way a body can be wrong has its own problem type: not JSON at
//! all (415), over the route's size limit (413), malformed (400 `malformed-json`), a field
//! the caller may not set (400 `field-not-settable`, from `deny_unknown_fields`), or a
//! value of the wrong shape (400 `invalid-body`). Handlers run only on a body that
//! deserialized completely, so a rejected body can never have written anything.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON request body of type `T` (which should use `#[serde(deny_unknown_fields)]`).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes_max = request
            .extensions()
            .get::<BodyBytesMax>()
            .map_or(0, |limit| limit.0);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge { bytes_max }
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, classifying the error. The body must be an object: serde would
/// otherwise also accept a struct written as an array of its fields.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        return Err(ApiError::InvalidBody(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(classify)
}

fn classify(error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = error.to_string();
    match error.classify() {
        Category::Data => match unknown_field(&message) {
            Some(field) => ApiError::FieldNotSettable { field },
            None => ApiError::InvalidBody(message),
        },
        Category::Syntax | Category::Eof | Category::Io => ApiError::MalformedJson(message),
    }
}

/// The field name in serde's "unknown field `name`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    rest.get(..end).map(str::to_string)
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body size limit of a group of routes, put in each request's extensions (next to
/// axum's `DefaultBodyLimit`, which enforces it) so a 413 can say what the limit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyBytesMax(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Setting {
        allowed: bool,
    }

    #[test]
    fn classifies_each_kind_of_bad_body() {
        assert!(matches!(
            parse_json::<Setting>(br#"{"allowed": false, "member": 7}"#),
            Err(ApiError::FieldNotSettable { field }) if field == "member"
        ));
        assert!(matches!(
            parse_json::<Setting>(br#"{"allowed": "no"}"#),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            parse_json::<Setting>(br#"{"allowed": fal"#),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(parse_json::<Setting>(br#"{"allowed": true}"#).is_ok());
    }

    #[test]
    fn accepts_json_media_types_only() {
        let json = header::HeaderValue::from_static("application/json; charset=utf-8");
        let problem = header::HeaderValue::from_static("application/merge-patch+json");
        let form = header::HeaderValue::from_static("application/x-www-form-urlencoded");
        assert!(is_json(Some(&json)));
        assert!(is_json(Some(&problem)));
        assert!(!is_json(Some(&form)));
        assert!(!is_json(None));
    }
}
