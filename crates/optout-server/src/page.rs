//! The member's settings page at `/settings`: "Data sharing and AI model training".
//!
//! Server-rendered HTML with no external resources. Each offered purpose is a form with a
//! real checkbox (`role="switch"`, with a `<label>` and the notice as its description) and
//! a Save button, so it works with a keyboard, a screen reader and without JavaScript (a
//! plain form post, answered with a redirect back to the page showing the receipt). With
//! JavaScript (`/settings/app.js`, same origin) a change submits the form at once.
//!
//! Sign-in: `/settings/login?token=JWT` (the link the platform's app or `optout demo`
//! hands out) verifies the member token and keeps it in an HttpOnly, SameSite=Strict
//! cookie scoped to `/settings`. Posts must come from the same origin. Each rendered form
//! carries a fresh idempotency key, so submitting it twice records one choice.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use optout_core::{LedgerPosition, Source};
use serde::Deserialize;

use crate::auth::{member_from_token, MemberCaller, SESSION_COOKIE};
use crate::dto::{HistoryResponse, PurposeSetting, SettingsResponse, UsageResponse};
use crate::member_settings::{self, ChoiceRequest};
use crate::problem::ApiError;
use crate::routes::member::gpc_signal;
use crate::state::AppState;
use crate::usage;

const PAGE_TITLE: &str = "Data sharing and AI model training";
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Lifetime of the page's cookie; the token's own `exp` still applies.
const SESSION_SECONDS_MAX: u64 = 3_600;

const APP_JS: &str = "document.querySelectorAll('form.setting').forEach(function (form) {\n  var save = form.querySelector('button');\n  if (save) { save.hidden = true; }\n  form.querySelector('input[type=checkbox]').addEventListener('change', function () { form.requestSubmit(); });\n});\n";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct LoginQuery {
    token: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    receipt: Option<u64>,
}

/// The settings form: the checkbox is sent only when checked.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SettingForm {
    #[serde(default)]
    allowed: Option<String>,
    key: String,
}

/// `GET /settings/login?token=JWT`: keep the token in a cookie and go to the page.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return sign_in_page(StatusCode::BAD_REQUEST, "The sign-in link is incomplete.");
    };
    if let Err(error) = member_from_token(&query.token, &state) {
        return sign_in_page(StatusCode::UNAUTHORIZED, &error.to_string());
    }
    let secure = if is_loopback_host(&headers) {
        ""
    } else {
        "; Secure"
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/settings; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS_MAX}{secure}",
        query.token
    );
    let mut response = Redirect::to("/settings").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /settings`.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match page_member(&state, &headers) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let receipt_position = query.ok().and_then(|Query(query)| query.receipt);
    let gpc = gpc_signal(&headers);
    let limit = state.limits().history_choices_max;
    let loaded = state
        .blocking(move |state| {
            let settings = member_settings::settings(state, caller, gpc)?;
            let history = member_settings::history(state, caller, limit)?;
            let usage = usage::usage(state, caller.member)?;
            Ok((settings, history, usage))
        })
        .await;
    match loaded {
        Ok((settings, history, usage)) => {
            let receipt = receipt_position.map(LedgerPosition);
            html(
                StatusCode::OK,
                &render(&settings, &history, &usage, receipt),
            )
        }
        Err(error) => error_page(&error),
    }
}

/// `POST /settings/{purpose}`: the form post.
pub async fn change(
    State(state): State<AppState>,
    Path(purpose_name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<SettingForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let caller = match page_member(&state, &headers) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    if !same_origin(&headers) {
        return error_page(&ApiError::InvalidParameter {
            what: "Origin header",
            detail: "the form must be posted from this site".into(),
        });
    }
    let Ok(Form(form)) = form else {
        return error_page(&ApiError::InvalidBody("the form is incomplete".into()));
    };
    let request = ChoiceRequest {
        purpose_name,
        allowed: form.allowed.as_deref() == Some("true"),
        gpc_signal: gpc_signal(&headers),
        idempotency_key: Some(form.key),
        source: Source::Web,
    };
    let recorded = state
        .blocking(move |state| member_settings::record_choice(state, caller, request))
        .await;
    match recorded {
        Ok((receipt, _)) => {
            Redirect::to(&format!("/settings?receipt={}", receipt.position)).into_response()
        }
        Err(error) => error_page(&error),
    }
}

/// `GET /settings/app.js`: progressive enhancement only.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

fn page_member(state: &AppState, headers: &HeaderMap) -> Result<MemberCaller, Box<Response>> {
    let token = session_token(headers).ok_or_else(|| {
        Box::new(sign_in_page(
            StatusCode::UNAUTHORIZED,
            "Open this page from the link in your app to sign in.",
        ))
    })?;
    member_from_token(&token, state).map_err(|error| match error {
        ApiError::RateLimited { .. } => Box::new(error_page(&error)),
        other => Box::new(sign_in_page(StatusCode::UNAUTHORIZED, &other.to_string())),
    })
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
}

fn is_loopback_host(headers: &HeaderMap) -> bool {
    host(headers).is_some_and(|host| {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        matches!(name, "localhost" | "127.0.0.1" | "[::1]")
    })
}

/// A post without `Origin` (older browsers, curl) is accepted: the cookie is
/// SameSite=Strict. One with an `Origin` must match the `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host(headers).is_some_and(|host| host == origin_host)
}

fn html(status: StatusCode, body: &str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn sign_in_page(status: StatusCode, message: &str) -> Response {
    let body = layout(&format!("<p role=\"alert\">{}</p>", escape(message)));
    html(status, &body)
}

fn error_page(error: &ApiError) -> Response {
    let kind = error.kind();
    let document = error.document();
    let body = layout(&format!(
        "<p role=\"alert\"><strong>{}</strong>: {}</p><p><a href=\"/settings\">Back to your settings</a></p>",
        escape(kind.title),
        escape(&document.detail)
    ));
    html(kind.status, &body)
}

fn layout(main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{PAGE_TITLE}</title>\n<style>\nbody{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}}\nsection.purpose{{border:1px solid #ccc;border-radius:.5rem;padding:1rem;margin:1rem 0}}\nlabel{{font-weight:600;font-size:1.1rem}}\ninput[type=checkbox]{{width:1.4rem;height:1.4rem;vertical-align:middle;margin-right:.5rem}}\n:focus-visible{{outline:3px solid #0a58ca;outline-offset:2px}}\n.meta{{color:#444;font-size:.9rem}}\ntable{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd}}\ncode{{word-break:break-all}}\n</style>\n</head>\n<body>\n<main>\n<h1>{PAGE_TITLE}</h1>\n{main}\n</main>\n<script src=\"/settings/app.js\" defer></script>\n</body>\n</html>\n"
    )
}

/// The page for a member.
pub fn render(
    settings: &SettingsResponse,
    history: &HistoryResponse,
    usage: &UsageResponse,
    receipt: Option<LedgerPosition>,
) -> String {
    let mut main = String::new();
    if let Some(entry) = receipt.and_then(|position| {
        history
            .choices
            .iter()
            .find(|entry| entry.receipt.position == position)
    }) {
        let _ = write!(
            main,
            "<section aria-live=\"polite\" role=\"status\"><h2>Saved</h2><p>{} is now <strong>{}</strong>. Your receipt: position {}, recorded {}, hash <code>{}</code>, signature <code>{}</code>.</p></section>",
            escape(entry.purpose.as_str()),
            if entry.allowed { "on" } else { "off" },
            entry.receipt.position,
            entry.receipt.recorded_at,
            entry.receipt.hash.to_hex(),
            escape(&entry.receipt.signature),
        );
    }
    for setting in &settings.purposes {
        main.push_str(&purpose_section(setting));
    }
    main.push_str(&history_section(history));
    main.push_str(&usage_section(usage));
    layout(&main)
}

fn purpose_section(setting: &PurposeSetting) -> String {
    let id = escape(setting.purpose.as_str());
    let mut section = format!(
        "<section class=\"purpose\" aria-labelledby=\"title-{id}\"><h2 id=\"title-{id}\">{}</h2><p id=\"notice-{id}\">{}</p>",
        escape(&setting.title),
        escape(&setting.notice.text)
    );
    if setting.offered {
        let checked = if setting.allowed { " checked" } else { "" };
        let key = fresh_key();
        let _ = write!(
            section,
            "<form class=\"setting\" method=\"post\" action=\"/settings/{id}\"><input type=\"hidden\" name=\"key\" value=\"{key}\"><input type=\"checkbox\" role=\"switch\" id=\"switch-{id}\" name=\"allowed\" value=\"true\" aria-describedby=\"notice-{id} state-{id}\"{checked}><label for=\"switch-{id}\">{}</label> <button type=\"submit\">Save</button></form>",
            escape(&setting.title)
        );
    }
    let mut state = escape(&setting.message);
    if setting.offered {
        let default_note = if setting.is_default {
            " This is the default; you have not chosen."
        } else {
            ""
        };
        let _ = write!(
            state,
            " Currently <strong>{}</strong>.{default_note}",
            if setting.allowed { "on" } else { "off" }
        );
    }
    if let Some(deadline) = setting.deadline {
        let _ = write!(state, " Deadline: {deadline}.");
    }
    let _ = write!(
        section,
        "<p class=\"meta\" id=\"state-{id}\">{state}</p></section>"
    );
    section
}

fn history_section(history: &HistoryResponse) -> String {
    let mut section = String::from("<section><h2>Your history</h2>");
    if history.choices.is_empty() {
        section.push_str("<p>You have not made a choice yet.</p></section>");
        return section;
    }
    section.push_str("<table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Setting</th><th scope=\"col\">Value</th><th scope=\"col\">How</th><th scope=\"col\">Receipt</th></tr></thead><tbody>");
    for entry in history.choices.iter().rev() {
        let _ = write!(
            section,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>position {}</td></tr>",
            entry.at,
            escape(entry.purpose.as_str()),
            if entry.allowed { "on" } else { "off" },
            entry.source,
            entry.receipt.position
        );
    }
    section.push_str("</tbody></table></section>");
    section
}

/// The datasets that used the member's data, and those that could not be checked: a
/// member is never told "not used" about a dataset the service could not check.
fn usage_section(usage: &UsageResponse) -> String {
    let mut section = String::from("<section><h2>Datasets that used your data</h2>");
    if usage.included.is_empty() {
        section.push_str("<p>No training dataset recorded so far included your data.</p>");
    } else {
        section.push_str("<table><thead><tr><th scope=\"col\">Dataset</th><th scope=\"col\">Purpose</th><th scope=\"col\">Choices as of</th></tr></thead><tbody>");
        for dataset in &usage.included {
            let _ = write!(
                section,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&dataset.dataset_id),
                escape(dataset.purpose.as_str()),
                dataset.cutoff
            );
        }
        section.push_str("</tbody></table>");
    }
    if !usage.unchecked.is_empty() {
        let _ = write!(
            section,
            "<p class=\"meta\">{} dataset(s) could not be checked for your data: ",
            usage.unchecked.len()
        );
        let names: Vec<String> = usage
            .unchecked
            .iter()
            .map(|unchecked| format!("<code>{}</code>", escape(&unchecked.dataset.dataset_id)))
            .collect();
        let _ = write!(section, "{}.</p>", names.join(", "));
    }
    section.push_str("</section>");
    section
}

fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    format!("page-{}", hex::encode(bytes))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
