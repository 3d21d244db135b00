//! The settings page: sign-in through a link, one labelled switch per offered purpose,
//! a form post that works without JavaScript (and records source `web` once, even when
//! the same form is submitted twice), the receipt after a change, the history, and no
//! switch in an excluded jurisdiction.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request};
use common::{Answer, Service};

async fn page(service: &Service, cookie: &str, uri: &str) -> Answer {
    service
        .send(
            Request::builder()
                .uri(uri)
                .header(header::COOKIE, cookie)
                .header(header::HOST, "127.0.0.1:8080")
                .body(Body::empty())
                .unwrap(),
        )
        .await
}

async fn post_form(
    service: &Service,
    cookie: &str,
    purpose: &str,
    form: &str,
    origin: &str,
) -> Answer {
    service
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/settings/{purpose}"))
                .header(header::COOKIE, cookie)
                .header(header::HOST, "127.0.0.1:8080")
                .header(header::ORIGIN, origin)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_string()))
                .unwrap(),
        )
        .await
}

fn form_key(html: &str, purpose: &str) -> String {
    let form = html
        .split(&format!("action=\"/settings/{purpose}\""))
        .nth(1)
        .unwrap();
    let value = form.split("name=\"key\" value=\"").nth(1).unwrap();
    value.split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_member_signs_in_and_turns_the_switch_off_without_javascript() {
    let service = Service::new();
    let token = service.member_token(31, "US");
    let login = service
        .request(
            Method::GET,
            &format!("/settings/login?token={token}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(login.status, 303);
    assert_eq!(login.headers[header::LOCATION], "/settings");
    let set_cookie = login.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set_cookie.contains("HttpOnly"));
    assert!(set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let shown = page(&service, &cookie, "/settings").await;
    assert_eq!(shown.status, 200);
    assert!(shown.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(shown.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    let html = shown.text();
    assert!(html.contains("<h1>Data sharing and AI model training</h1>"));
    assert!(html.contains("role=\"switch\" id=\"switch-ai_training\""));
    assert!(html.contains("<label for=\"switch-ai_training\">Use of data for AI training</label>"));
    assert!(html.contains("checked"), "on by default in the US");
    assert!(html.contains("This is the default"));
    assert!(html.contains("2023-10-30T00:00:00Z"), "the deadline");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );

    let head = service.head();
    let key = form_key(&html, "ai_training");
    let form = format!("key={key}");
    let saved = post_form(
        &service,
        &cookie,
        "ai_training",
        &form,
        "http://127.0.0.1:8080",
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.text());
    let location = saved.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(location, format!("/settings?receipt={}", head + 1));
    // The same form posted again (a double click, a refresh) records nothing new.
    let again = post_form(
        &service,
        &cookie,
        "ai_training",
        &form,
        "http://127.0.0.1:8080",
    )
    .await;
    assert_eq!(again.status, 303);
    assert_eq!(service.head(), head + 1);

    let html = page(&service, &cookie, &location).await.text();
    assert!(html.contains("<h2>Saved</h2>"));
    assert!(html.contains(&format!("position {}", head + 1)));
    assert!(
        html.contains("<td>web</td>"),
        "recorded with source web: {html}"
    );
    assert!(html.contains("This is your own choice."));
}

#[tokio::test]
async fn the_page_refuses_strangers_and_cross_site_posts() {
    let service = Service::new();
    let anonymous = page(&service, "", "/settings").await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.text().contains("sign in"));
    let bad_login = service
        .request(Method::GET, "/settings/login?token=forged", None, &[], None)
        .await;
    assert_eq!(bad_login.status, 401);
    assert!(bad_login.headers.get(header::SET_COOKIE).is_none());

    let token = service.member_token(32, "US");
    let cookie = format!("optout_session={token}");
    let head = service.head();
    let cross_site = post_form(
        &service,
        &cookie,
        "ai_training",
        "key=k1",
        "https://evil.example",
    )
    .await;
    assert_eq!(cross_site.status, 400);
    let unknown = post_form(&service, &cookie, "nope", "key=k2", "http://127.0.0.1:8080").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("Unknown purpose"));
    let extra = post_form(
        &service,
        &cookie,
        "ai_training",
        "key=k3&member=1",
        "http://127.0.0.1:8080",
    )
    .await;
    assert_eq!(extra.status, 400);
    assert_eq!(service.head(), head);
}

#[tokio::test]
async fn an_excluded_jurisdiction_gets_no_switch() {
    let excluded_policy = optout_core::policy::DEFAULT_POLICY_TOML
        .replace("version = 1", "version = 2")
        .replace(
            "effective_from = \"2023-10-16T00:00:00Z\"",
            "effective_from = \"2024-01-01T00:00:00Z\"",
        )
        .replace("mode = \"opt_in\"", "mode = \"excluded\"");
    let service = Service::with_policies(
        Default::default(),
        &[optout_core::policy::DEFAULT_POLICY_TOML, &excluded_policy],
    );
    let cookie = format!("optout_session={}", service.member_token(33, "DE"));
    let html = page(&service, &cookie, "/settings").await.text();
    assert!(!html.contains("role=\"switch\""), "{html}");
    assert!(html.contains("Your data is not used for this in your region (DE)"));
}
