//! Helpers shared by the CLI integration tests: run the real `optout` binary, read its
//! JSON, export and parse the ledger, and tamper with the SQLite file through python3's
//! standard-library sqlite3 module (the `optout` crate has no direct rusqlite dependency).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `optout` binary built for these tests.
pub const OPTOUT: &str = env!("CARGO_BIN_EXE_optout");

/// A command for the binary with no ambient `OPTOUT_DATA_DIR`, quiet (no progress bars).
pub fn optout() -> Command {
    let mut command = Command::new(OPTOUT);
    command.env_remove("OPTOUT_DATA_DIR").env("USER", "tester");
    command
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(args: Vec<String>, output: Output) -> Self {
        Run {
            args,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected exit 0 from {self:#?}");
        self
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn exits(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code} from {self:#?}");
        self
    }

    /// Stdout parsed as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON value ({error}): {self:#?}"))
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}: {self:#?}"
        );
        self
    }
}

/// Runs `optout` with these arguments (no `--data-dir` added).
pub fn run_args<S: AsRef<str>>(args: &[S]) -> Run {
    let args: Vec<String> = args.iter().map(|arg| arg.as_ref().to_string()).collect();
    let output = optout()
        .arg("--quiet")
        .args(&args)
        .output()
        .expect("run optout");
    Run::from_output(args, output)
}

/// Runs `optout --data-dir DIR ARGS...`.
pub fn run<S: AsRef<str>>(dir: &Path, args: &[S]) -> Run {
    let mut all = vec!["--data-dir".to_string(), path_str(dir)];
    all.extend(args.iter().map(|arg| arg.as_ref().to_string()));
    run_args(&all)
}

pub fn path_str(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_string()
}

/// A fresh temporary directory and a data directory path inside it (not yet created).
pub struct Scratch {
    pub temp: tempfile::TempDir,
    pub data: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data = temp.path().join("data");
        Scratch { temp, data }
    }

    /// A path for a file in the scratch directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }

    /// Writes a file in the scratch directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }

    /// A new scratch directory with an initialized data directory (default policy).
    pub fn initialized() -> Self {
        let scratch = Scratch::new();
        run(&scratch.data, &["init"]).success();
        scratch
    }

    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Run {
        run(&self.data, args)
    }

    /// `choose MEMBER PURPOSE allow|deny`, returning the receipt.
    pub fn choose(&self, member: &str, purpose: &str, allowed: bool) -> Value {
        let decision = if allowed { "allow" } else { "deny" };
        self.run(&["choose", member, purpose, decision])
            .success()
            .json()
    }

    /// `status MEMBER --purpose P [--jurisdiction J] [--at T]`.
    pub fn status(
        &self,
        member: &str,
        purpose: &str,
        jurisdiction: Option<&str>,
        at: Option<&str>,
    ) -> Value {
        let mut args = vec!["status", member, "--purpose", purpose];
        if let Some(jurisdiction) = jurisdiction {
            args.extend(["--jurisdiction", jurisdiction]);
        }
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        self.run(&args).success().json()
    }

    /// The verified head `(position, hash)`; (0, "") for an empty ledger. Asserts exit 0.
    pub fn head(&self) -> (u64, String) {
        let verified = self.run(&["ledger", "verify"]).success().json();
        assert_eq!(verified["verified"], true, "{verified}");
        head_of(&verified)
    }

    /// Exports the ledger to `name` in the scratch directory; returns the file's path.
    pub fn export(&self, name: &str) -> PathBuf {
        let path = self.file(name);
        self.run(&["ledger", "export", &path_str(&path)]).success();
        path
    }

    /// Exports the ledger and parses every line.
    pub fn exported_lines(&self) -> Vec<Value> {
        let path = self.export("ledger-for-reading.jsonl");
        read_export(&path)
    }

    pub fn ledger_file(&self) -> PathBuf {
        self.data.join("ledger.sqlite")
    }

    pub fn public_key_file(&self) -> PathBuf {
        self.data.join("signing.pub")
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// `(position, hash)` of the `head` field of a JSON answer; (0, "") when null.
pub fn head_of(value: &Value) -> (u64, String) {
    let head = &value["head"];
    if head.is_null() {
        return (0, String::new());
    }
    (
        head["position"].as_u64().expect("head position"),
        head["hash"].as_str().expect("head hash").to_string(),
    )
}

/// Parses an export: one JSON object a line.
pub fn read_export(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read export")
        .lines()
        .map(|line| serde_json::from_str(line).expect("export line is JSON"))
        .collect()
}

/// Runs SQL statements against a SQLite database with python3's sqlite3 module, in one
/// transaction. Panics with python's stderr if it fails.
pub fn sql(database: &Path, statements: &str) {
    let script = "import sqlite3, sys\n\
                  connection = sqlite3.connect(sys.argv[1])\n\
                  connection.executescript('BEGIN;' + sys.argv[2] + ';COMMIT;')\n\
                  connection.close()\n";
    let output = Command::new("python3")
        .args(["-c", script, &path_str(database), statements])
        .output()
        .expect("python3 is required to tamper with the SQLite ledger");
    assert!(
        output.status.success(),
        "python3 sqlite3 failed on {statements:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs one SQL query with python3's sqlite3 module and returns the rows as JSON arrays
/// (blobs as hex strings).
pub fn sql_query(database: &Path, query: &str) -> Vec<Value> {
    let script = "import sqlite3, sys, json\n\
                  connection = sqlite3.connect(sys.argv[1])\n\
                  rows = connection.execute(sys.argv[2]).fetchall()\n\
                  print(json.dumps([[v.hex() if isinstance(v, bytes) else v for v in row] for row in rows]))\n\
                  connection.close()\n";
    let output = Command::new("python3")
        .args(["-c", script, &path_str(database), query])
        .output()
        .expect("python3 is required to read the SQLite ledger");
    assert!(
        output.status.success(),
        "python3 sqlite3 failed on {query:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("python printed JSON");
    parsed.as_array().expect("rows").clone()
}

/// Microseconds since the Unix epoch of a UTC civil time (proleptic Gregorian).
pub fn micros(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + hour) * 60 + minute) * 60 * 1_000_000 + second * 1_000_000
}

/// True when the tests run in CI, where every dependency must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// Skips a test part whose dependency is missing: prints why and returns `None`, or under
/// CI=true panics, so CI never passes by skipping.
pub fn missing<T>(message: &str) -> Option<T> {
    if in_ci() {
        panic!("CI=true: {message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// The test Python (`OPTOUT_TEST_PYTHON`, else `python3`) if it imports `modules`.
pub fn python_with(modules: &[&str], needed_by: &str) -> Option<String> {
    let python = std::env::var("OPTOUT_TEST_PYTHON")
        .ok()
        .filter(|python| !python.is_empty())
        .unwrap_or_else(|| "python3".to_string());
    let probe = Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output();
    let problem = match probe {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("import failed")
            .to_string(),
        Err(error) => format!("cannot run {python}: {error}"),
    };
    missing(&format!(
        "{needed_by} need Python with {} ({python}: {problem}); run scripts/test.sh, which \
         installs them in a venv and sets OPTOUT_TEST_PYTHON",
        modules.join(", ")
    ))
}

/// The crash tests' seed: `OPTOUT_CRASH_SEED` to replay a run, else fresh.
pub fn crash_seed() -> u64 {
    if let Ok(text) = std::env::var("OPTOUT_CRASH_SEED") {
        return text.trim().parse().expect("OPTOUT_CRASH_SEED is a u64");
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0x5EED)
}
