//! A small, bounded HTTP load generator for `bench/load.sh`: keep-alive HTTP/1.1 over
//! loopback only, a fixed number of connections, stopping after a duration or a request
//! count, whichever comes first. It mints its tokens with the data directory's token key.
//!
//! ```text
//! load_generator --data-dir DIR --address 127.0.0.1:PORT --mode put|batch|check
//!     [--connections 64] [--seconds 10] [--requests-max 1000000]
//!     [--batch 1000] [--ids 100000] [--members 1000000]
//! ```
//! Prints one JSON line: requests, errors, seconds, requests/s, items/s, p50/p90/p99/max
//! latency in milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use optout_core::splitmix::SplitMix64;
use optout_core::{Clock, Jurisdiction, MemberId, SystemClock};
use optout_server::token::{TokenKey, TokenRules};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Put,
    Batch,
    Check,
}

#[derive(Clone, Debug)]
struct Options {
    data_dir: PathBuf,
    address: SocketAddr,
    mode: Mode,
    connections: usize,
    seconds: u64,
    requests_max: u64,
    batch: usize,
    ids: usize,
    members: u64,
}

fn options() -> Options {
    let mut options = Options {
        data_dir: PathBuf::from("./optout-data"),
        address: "127.0.0.1:8080".parse().unwrap(),
        mode: Mode::Put,
        connections: 64,
        seconds: 10,
        requests_max: 1_000_000,
        batch: 1_000,
        ids: 100_000,
        members: 1_000_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let (flag, value) = (
            pair[0].as_str(),
            pair.get(1).expect("a value after each flag"),
        );
        match flag {
            "--data-dir" => options.data_dir = PathBuf::from(value),
            "--address" => options.address = value.parse().expect("--address IP:PORT"),
            "--mode" => {
                options.mode = match value.as_str() {
                    "put" => Mode::Put,
                    "batch" => Mode::Batch,
                    "check" => Mode::Check,
                    other => panic!("--mode {other}: expected put, batch or check"),
                }
            }
            "--connections" => options.connections = value.parse().unwrap(),
            "--seconds" => options.seconds = value.parse().unwrap(),
            "--requests-max" => options.requests_max = value.parse().unwrap(),
            "--batch" => options.batch = value.parse().unwrap(),
            "--ids" => options.ids = value.parse().unwrap(),
            "--members" => options.members = value.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        options.address.ip().is_loopback(),
        "the load generator only targets loopback addresses"
    );
    options
}

const JURISDICTIONS: [&str; 8] = ["US", "US", "US", "IN", "BR", "DE", "GB", "FR"];

struct Shared {
    options: Options,
    service_token: String,
    member_tokens: Vec<String>,
    sent: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = options();
    let key = TokenKey::load_or_create(&options.data_dir).expect("DIR/token.key");
    let issuer = key.issuer(TokenRules::default());
    let now = SystemClock.now();
    let service_token = issuer
        .service(
            "load-generator",
            &["choices:write".to_string(), "consent:read".to_string()],
            now,
            3600,
        )
        .unwrap();
    // One token per connection's member range would do; a few thousand distinct members
    // keep the per-member rate limit out of the way (configure it high for the run).
    let token_members = if options.mode == Mode::Put { 4_096 } else { 0 };
    let member_tokens = (0..token_members)
        .map(|index| {
            issuer
                .member(MemberId(index), Jurisdiction::parse("US").ok(), now, 3600)
                .unwrap()
        })
        .collect();
    let shared = Arc::new(Shared {
        options: options.clone(),
        service_token,
        member_tokens,
        sent: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..options.connections)
        .map(|connection| tokio::spawn(worker(Arc::clone(&shared), connection as u64)))
        .collect();
    let deadline = tokio::time::sleep(Duration::from_secs(options.seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if shared.sent.load(Ordering::Relaxed) >= options.requests_max { break; }
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut latencies_us: Vec<u32> = Vec::new();
    for worker in workers {
        latencies_us.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let quantile = |q: f64| -> f64 {
        if latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(latencies_us[index]) / 1_000.0
    };
    let requests = latencies_us.len() as f64;
    let items_per_request = match options.mode {
        Mode::Put => 1.0,
        Mode::Batch => options.batch as f64,
        Mode::Check => options.ids as f64,
    };
    println!(
        "{}",
        serde_json::json!({
            "mode": format!("{:?}", options.mode).to_lowercase(),
            "connections": options.connections,
            "requests": latencies_us.len(),
            "errors": shared.errors.load(Ordering::Relaxed),
            "seconds": (elapsed * 1000.0).round() / 1000.0,
            "requests_per_second": (requests / elapsed).round(),
            "items_per_second": (requests * items_per_request / elapsed).round(),
            "p50_ms": quantile(0.50),
            "p90_ms": quantile(0.90),
            "p99_ms": quantile(0.99),
            "max_ms": quantile(1.0),
        })
    );
}

async fn worker(shared: Arc<Shared>, connection: u64) -> Vec<u32> {
    let mut latencies = Vec::new();
    let mut random = SplitMix64(connection.wrapping_mul(0x1234_5678_9ABC_DEF1));
    let Ok(stream) = TcpStream::connect(shared.options.address).await else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return latencies;
    };
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    let mut sequence = 0u64;
    while !shared.stop.load(Ordering::Relaxed)
        && shared.sent.fetch_add(1, Ordering::Relaxed) < shared.options.requests_max
    {
        let request = build_request(&shared, connection, sequence, &mut random);
        sequence += 1;
        let started = Instant::now();
        match exchange(&mut stream, &request).await {
            Ok(status) if (200..300).contains(&status) => {
                latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Ok(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    latencies
}

fn build_request(
    shared: &Shared,
    connection: u64,
    sequence: u64,
    random: &mut SplitMix64,
) -> Vec<u8> {
    let options = &shared.options;
    let (method, path, token, body) = match options.mode {
        Mode::Put => {
            let index = (connection * 7_919 + sequence) as usize % shared.member_tokens.len();
            let allowed = random.next() & 3 == 0;
            (
                "PUT",
                "/v1/me/settings/ai_training".to_string(),
                shared.member_tokens[index].as_str(),
                format!("{{\"allowed\":{allowed}}}"),
            )
        }
        Mode::Batch => {
            let mut body = String::with_capacity(options.batch * 80 + 16);
            body.push_str("{\"choices\":[");
            for item in 0..options.batch {
                if item > 0 {
                    body.push(',');
                }
                let member = random.next() % options.members;
                let allowed = random.next() & 3 == 0;
                let jurisdiction = JURISDICTIONS[(random.next() % 8) as usize];
                body.push_str(&format!(
                    "{{\"member\":{member},\"purpose\":\"ai_training\",\"allowed\":{allowed},\"jurisdiction\":\"{jurisdiction}\"}}"
                ));
            }
            body.push_str("]}");
            (
                "POST",
                "/v1/choices:batch?receipts=false".to_string(),
                shared.service_token.as_str(),
                body,
            )
        }
        Mode::Check => {
            let mut members = String::with_capacity(options.ids * 9);
            let mut jurisdictions = String::with_capacity(options.ids * 5);
            for item in 0..options.ids {
                if item > 0 {
                    members.push(',');
                    jurisdictions.push(',');
                }
                members.push_str(&(random.next() % options.members).to_string());
                jurisdictions.push('"');
                jurisdictions.push_str(JURISDICTIONS[(random.next() % 8) as usize]);
                jurisdictions.push('"');
            }
            (
                "POST",
                "/v1/consent:check".to_string(),
                shared.service_token.as_str(),
                format!("{{\"purpose\":\"ai_training\",\"format\":\"bitmask\",\"members\":[{members}],\"jurisdictions\":[{jurisdictions}]}}"),
            )
        }
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        options.address,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// Sends one request and reads its response; returns the status.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status line"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(status)
}
