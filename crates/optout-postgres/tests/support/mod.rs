//! Reaching the test PostgreSQL: `OPTOUT_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`. Unreachable: the test is skipped with a
//! message, except under `CI=true`, where it fails. Each ledger gets its own schema,
//! derived from the temporary directory the conformance suite hands out, and the schemas
//! are dropped when the test ends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use optout_postgres::PostgresConfig;

pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn test_url() -> String {
    std::env::var("OPTOUT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_string())
}

/// The database if it answers; None (after saying so) if not, outside CI.
pub fn database_or_skip(test: &str) -> Option<TestDatabase> {
    let url = test_url();
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(client) => Some(TestDatabase {
            url,
            admin: Mutex::new(client),
            schemas: Mutex::new(Vec::new()),
        }),
        Err(error) => {
            let message = format!(
                "{test}: PostgreSQL at {} is unreachable ({error}); set OPTOUT_TEST_POSTGRES_URL",
                optout_postgres::redact_url(&url)
            );
            if std::env::var("CI").is_ok_and(|value| value == "true") {
                panic!("{message} (CI=true: PostgreSQL tests may not be skipped)");
            }
            // Straight to stderr, not eprintln!, which the test harness captures: a skip
            // must be seen.
            let _ = writeln!(std::io::stderr().lock(), "SKIPPED {message}");
            None
        }
    }
}

pub struct TestDatabase {
    pub url: String,
    admin: Mutex<postgres::Client>,
    schemas: Mutex<Vec<String>>,
}

impl TestDatabase {
    /// The config of the ledger for `dir`: the same directory always gives the same schema,
    /// so reopening a location reopens its ledger.
    pub fn config_for(&self, dir: &Path) -> PostgresConfig {
        let name = format!(
            "optout_test_{:016x}",
            fnv1a(dir.as_os_str().as_encoded_bytes())
        );
        let mut schemas = self.schemas.lock().unwrap();
        if !schemas.contains(&name) {
            // A leftover of an interrupted run with the same directory name would not be empty.
            self.drop_schema(&name);
            schemas.push(name.clone());
        }
        PostgresConfig::new(&self.url, &name).unwrap()
    }

    /// A fresh schema for a test that is not given a directory.
    pub fn fresh_config(&self) -> (tempfile::TempDir, PostgresConfig) {
        let dir = tempfile::tempdir().unwrap();
        let config = self.config_for(dir.path());
        (dir, config)
    }

    fn drop_schema(&self, name: &str) {
        let mut admin = self.admin.lock().unwrap();
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .unwrap();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        for name in schemas {
            if let Ok(mut admin) = self.admin.lock() {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
            }
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
