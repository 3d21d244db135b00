//! `optout demo`, the README's first command, end to end on a small population: it builds
//! the data and a sample dataset through the gate, serves the API, and the sign-in link and
//! the `curl` line it prints work against the server it started. Re-running reuses the data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod serve_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{optout, path_str, run_args, Scratch};
use serde_json::Value;
use serve_support::request;

const MEMBERS: &str = "3000";

/// Stops the demo's server if the test fails before it does (an orphan would keep the
/// test run's output pipe open).
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The ledger's event count from the demo's "Ledger verified: N events" line.
fn verified_events(output: &str) -> u64 {
    let line = output
        .lines()
        .find(|line| line.starts_with("Ledger verified: "))
        .unwrap_or_else(|| panic!("no verification line in:\n{output}"));
    line["Ledger verified: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The token in a printed `Bearer TOKEN'` fragment.
fn bearer_token(curl: &str) -> String {
    let start = curl.find("Bearer ").expect("a bearer token") + "Bearer ".len();
    curl[start..].split('\'').next().unwrap().to_string()
}

#[test]
fn demo_serves_what_it_prints_and_reuses_its_data() {
    let scratch = Scratch::new();
    let dir = scratch.file("optout-demo");
    let mut child = optout()
        .args([
            "demo",
            "--dir",
            &path_str(&dir),
            "--members",
            MEMBERS,
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start optout demo");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut child = KillOnDrop(Some(child));
    let mut printed = String::new();
    let mut line = String::new();
    // The last line the demo prints before it serves.
    while !printed.contains("optout ledger verify --export") {
        line.clear();
        let read = stdout.read_line(&mut line).expect("read the demo's output");
        assert!(read > 0, "the demo ended before serving:\n{printed}");
        printed.push_str(&line);
    }

    let base = printed
        .lines()
        .find_map(|line| line.strip_prefix("The service is running on http://"))
        .and_then(|rest| rest.split(' ').next())
        .expect("the service address")
        .to_string();
    assert_eq!(
        request(&base, "GET", "/healthz", None, &[], None)
            .unwrap()
            .status,
        200
    );

    // Each sign-in link opens a session on the settings page.
    let links: Vec<&str> = printed
        .lines()
        .filter_map(|line| line.trim().strip_prefix(&format!("http://{base}")))
        .collect();
    assert_eq!(links.len(), 3, "three demo members:\n{printed}");
    for link in &links {
        let signed_in = request(&base, "GET", link, None, &[], None).unwrap();
        assert_eq!(signed_in.status, 303, "{signed_in:?}");
        let cookie = signed_in.header("set-cookie").expect("a session cookie");
        let session = cookie.split(';').next().unwrap();
        let page = request(
            &base,
            "GET",
            "/settings",
            None,
            &[("Cookie", session)],
            None,
        )
        .unwrap();
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Data sharing and AI model training"));
    }

    // The printed curl line: the same request, with its token, answers for the three.
    let curl = printed
        .lines()
        .find(|line| line.contains("curl -s "))
        .unwrap();
    let body = curl
        .split(" -d '")
        .nth(1)
        .unwrap()
        .trim_end()
        .trim_end_matches('\'');
    let token = bearer_token(curl);
    let checked = request(
        &base,
        "POST",
        "/v1/consent:check",
        Some(&token),
        &[],
        Some(body),
    )
    .unwrap();
    assert_eq!(checked.status, 200, "{checked:?}");
    let answer: Value = checked.json();
    assert_eq!(answer["checked"], 3);
    // The member who opted out is not allowed; the one with no choice outside the opt-in
    // regions is (the third example); the opt-in-region member who never chose is not.
    let members: Value = serde_json::from_str(body).unwrap();
    let allowed = answer["allowed"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "{answer}");
    assert_eq!(allowed[0], members["members"][2]);

    // The report line and the OpenAPI document it points to.
    let report_line = printed
        .lines()
        .find(|line| line.contains("/v1/reports/choices"))
        .expect("a report line");
    let report_path = report_line
        .split('\'')
        .nth(1)
        .and_then(|url| url.strip_prefix(&format!("http://{base}")))
        .unwrap();
    let report = request(
        &base,
        "GET",
        report_path,
        Some(&bearer_token(report_line)),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(report.status, 200, "{report:?}");
    assert!(report
        .header("content-type")
        .unwrap()
        .starts_with("text/csv"));
    let openapi = request(&base, "GET", "/openapi.json", None, &[], None).unwrap();
    assert_eq!(openapi.status, 200);
    assert_eq!(
        openapi.json()["openapi"].as_str().map(|v| &v[..2]),
        Some("3.")
    );

    let mut demo = child.0.take().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(
        demo.wait().unwrap().success(),
        "SIGTERM stops the demo cleanly"
    );
    let events = verified_events(&printed);
    let dataset = dir.join("datasets/ai_training-sample/manifest.json");
    let manifest = std::fs::read(&dataset).expect("the sample dataset's manifest");

    let again = run_args(&[
        "demo",
        "--dir",
        &path_str(&dir),
        "--members",
        MEMBERS,
        "--no-serve",
    ])
    .success();
    assert!(again.stdout.contains("reusing it"), "{}", again.stdout);
    assert!(again.stdout.contains("Sample training dataset: reusing"));
    assert_eq!(verified_events(&again.stdout), events, "no new events");
    assert_eq!(std::fs::read(&dataset).unwrap(), manifest, "same dataset");

    // The dataset the demo built passes `optout verify` against its own manifest.
    let verify_line = again
        .stdout
        .lines()
        .find(|line| line.contains(" verify --purpose "))
        .unwrap();
    let arguments: Vec<&str> = verify_line.split_whitespace().skip(1).collect();
    let verified = run_args(&arguments).success();
    assert_eq!(verified.json()["verified"], true, "{}", verified.stdout);
}
