//! Drives a real `optout serve` process: starts it on a free loopback port (it prints
//! `{"listening": ADDR}`), mints tokens with the data directory's token key, and speaks
//! just enough HTTP/1.1 over a `TcpStream` (one request per connection) to test it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use optout_core::{Clock, Jurisdiction, MemberId, SystemClock};
use optout_server::token::{TokenKey, TokenRules};
use serde_json::Value;

use crate::common::{optout, path_str};

/// A running server process.
pub struct Server {
    pub child: Child,
    pub address: String,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `optout --data-dir DIR serve --listen 127.0.0.1:0` and waits for its address.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut command = optout();
        command
            .args([
                "--data-dir",
                &path_str(data_dir),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .env("OPTOUT_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start optout serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let listening: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|error| panic!("not a listening line ({error}): {line:?}"));
        let address = listening["listening"]
            .as_str()
            .expect("address")
            .to_string();
        Server {
            child,
            address,
            _stdout: stdout,
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("wait for optout serve").code()
    }

    /// SIGKILL.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Answer> {
        request(&self.address, method, path, token, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one request got back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        text.push_str("Content-Type: application/json\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(text.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Answer> {
    let text = String::from_utf8_lossy(raw);
    let broken = || std::io::Error::new(std::io::ErrorKind::InvalidData, "incomplete response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(broken)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(broken)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok());
    if length.is_some_and(|length| body.len() < length) {
        return Err(broken());
    }
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A member token signed with `DIR/token.key` (as `optout token member` makes).
pub fn member_token(data_dir: &Path, member: u64, jurisdiction: &str) -> String {
    TokenKey::load_or_create(data_dir)
        .unwrap()
        .issuer(TokenRules::default())
        .member(
            MemberId(member),
            Jurisdiction::parse(jurisdiction).ok(),
            SystemClock.now(),
            3600,
        )
        .unwrap()
}
