//! The member's settings page in a real browser (headless Chromium through Selenium and
//! Debian's chromedriver, `tests/python/settings_browser.py`): reached and flipped with
//! the keyboard alone, with JavaScript (the switch submits at once) and without it (the
//! Save button posts the form); each change shows its receipt and lands in the ledger.
//!
//! Needs `chromium` and `chromium-driver` (Debian) and the test venv's selenium
//! (`scripts/test.sh`); without them the test is skipped, except under CI=true, where it
//! fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod serve_support;

use std::path::Path;
use std::process::Command;

use common::{missing, python_with, Scratch};
use serde_json::Value;
use serve_support::{member_token, Server};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/python/settings_browser.py"
);

/// The chromedriver to use, if there is one.
fn chromedriver() -> Option<String> {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&driver).exists() && Path::new(&chromium).exists() {
        return Some(driver);
    }
    missing(&format!(
        "the browser test needs {chromium} and {driver} (Debian: apt-get install chromium chromium-driver)"
    ))
}

#[test]
fn settings_page_works_with_a_keyboard_with_and_without_javascript() {
    let Some(python) = python_with(&["selenium"], "the browser test") else {
        return;
    };
    let Some(driver) = chromedriver() else {
        return;
    };
    let scratch = Scratch::initialized();
    let server = Server::start(&scratch.data, &[]);
    // A US member: opt-out region, so the page offers the switch.
    let member = 4_294_967_301u64; // above 2^32
    let token = member_token(&scratch.data, member, "US");

    let output = Command::new(&python)
        .args([
            SCRIPT,
            &format!("http://{}", server.address),
            &token,
            "ai_training",
        ])
        .env("CHROMEDRIVER", &driver)
        .output()
        .expect("run settings_browser.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "settings_browser.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["label"], "Use of data for AI training");
    // With JavaScript the switch went from the default (on) to off; the form put it back.
    assert_eq!(seen["javascript"]["before"], true);
    assert_eq!(seen["javascript"]["after"], false);
    assert_eq!(seen["form"]["after"], true);
    assert_eq!(server.terminate(), Some(0));

    // Both changes are in the ledger, with the web as their source, and the chain verifies.
    let status = scratch.status(&member.to_string(), "ai_training", Some("US"), None);
    assert_eq!(status["allowed"], true, "{status}");
    let choices: Vec<Value> = scratch
        .exported_lines()
        .into_iter()
        .filter(|line| line["event"]["kind"] == "choice")
        .collect();
    assert_eq!(choices.len(), 2, "{choices:?}");
    for choice in &choices {
        assert_eq!(choice["event"]["member"], member);
        assert_eq!(choice["event"]["source"], "web");
    }
    scratch.run(&["ledger", "verify"]).success();
}
