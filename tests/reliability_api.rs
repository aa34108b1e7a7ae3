//! The management API under abuse, through the real binary with SigV4 on: concurrent
//! clients mixing valid and invalid calls (unsigned, wrong signature, malformed JSON,
//! oversized bodies) while slowloris connections hold partial heads. No crash, no
//! deadlock, bounded latency, bounded memory, and only validly signed well-formed starts
//! ever start an operation.
//!
//! CI runs the short version; `scripts/reliability/api_abuse.sh` scales it with
//! `FG_REL_API_CLIENTS`, `FG_REL_API_SECS`, `FG_REL_API_SLOW` and prints the figures.

mod common;

use common::*;
use sigv4::Credentials;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/abuse-test";
const KEY_ID: &str = "AKIAFLOWGATEABUSE001";
const SECRET: &str = "abuse-test-secret";
const MAX_CONNECTIONS: usize = 32;
const MAX_BODY: usize = 65536;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &TempDir, api: &str) -> String {
    TestConfig::pcap(dir, "abuse-test", api)
        .set_str("appliance", "firewall_arn", ARN)
        .sigv4(KEY_ID, SECRET, "us-east-1")
        .set("mgmt", "max_connections", &MAX_CONNECTIONS.to_string())
        .set("mgmt", "max_body_bytes", &MAX_BODY.to_string())
        .set("mgmt", "header_timeout_ms", "1500")
        .set("operations", "worker_timeout_ms", "2000")
        .render()
}

/// The calls a client cycles through, and what each may answer.
#[derive(Clone, Copy, Debug)]
enum Call {
    List,
    Start,
    Unsigned,
    BadSignature,
    Malformed,
    Oversized,
}

const CALLS: [Call; 6] = [
    Call::List,
    Call::Start,
    Call::Unsigned,
    Call::BadSignature,
    Call::Malformed,
    Call::Oversized,
];

fn aws_call(api: &str, call: Call) -> (u16, Duration) {
    let (target, body): (&str, Vec<u8>) = match call {
        Call::List => ("ListFlowOperations", format!(r#"{{"FirewallArn":"{ARN}"}}"#).into()),
        Call::Start | Call::Unsigned | Call::BadSignature => (
            "StartFlowCapture",
            format!(
                r#"{{"FirewallArn":"{ARN}","FlowFilters":[{{"SourceAddress":{{"AddressDefinition":"198.18.0.0/15"}}}}]}}"#
            )
            .into(),
        ),
        Call::Malformed => ("StartFlowCapture", b"{\"FirewallArn\": [1,2".to_vec()),
        Call::Oversized => ("StartFlowCapture", vec![b' '; MAX_BODY * 2]),
    };
    let secret = if matches!(call, Call::BadSignature) {
        "not-the-secret"
    } else {
        SECRET
    };
    let creds = Credentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: secret.into(),
    };
    let signed = (!matches!(call, Call::Unsigned)).then_some((&creds, "us-east-1"));
    let headers = aws_json_headers(api, target, &body, signed);
    let t0 = Instant::now();
    let status = send("POST", api, "/", &headers, &body).0;
    (status, t0.elapsed())
}

fn allowed(call: Call, status: u16) -> bool {
    match call {
        Call::List => status == 200,
        // 200 started; 429 one already running.
        Call::Start => status == 200 || status == 429,
        Call::Unsigned => status == 403 || status == 400,
        Call::BadSignature => status == 403,
        Call::Malformed => status == 400,
        Call::Oversized => status == 413,
    }
}

#[test]
fn concurrent_abusive_clients_never_start_ops_or_exhaust_the_server() {
    require_root();
    let clients = env_or("FG_REL_API_CLIENTS", 6) as usize;
    let secs = env_or("FG_REL_API_SECS", 4);
    let slow = env_or("FG_REL_API_SLOW", 8) as usize;
    let dir = TempDir::new("abuse");
    for f in ["in_a.pcap", "in_b.pcap"] {
        write_pcap(&dir.path(f), &[]);
    }
    std::fs::write(
        dir.path("policy.toml"),
        "[stateless]\ndefault_action = \"forward_to_sfe\"\n[stateful]\nrule_order = \"default_action_order\"\n",
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut fg = Appliance::start(&dir.0, &config(&dir, &api), &api);
    let pid = fg.child.as_ref().unwrap().id();
    let rss = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let rss_before = rss();

    // Slowloris: partial heads, one byte now and then, until the server drops them.
    let slowloris: Vec<_> = (0..slow)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(&api) else {
                    return 0u64;
                };
                let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n");
                let mut sent = 0;
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(secs + 2) {
                    if s.write_all(b"X").is_err() {
                        break;
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(300));
                }
                sent
            })
        })
        .collect();

    let started_ok = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let api = api.clone();
            let started_ok = Arc::clone(&started_ok);
            std::thread::spawn(move || {
                let mut tried = 0u64;
                let mut refused = 0u64;
                let mut latencies = Vec::new();
                let mut unexpected = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let call = CALLS[i % CALLS.len()];
                    i += 1;
                    let (status, took) = aws_call(&api, call);
                    tried += 1;
                    latencies.push(took);
                    if status >= 400 {
                        refused += 1;
                    }
                    if matches!(call, Call::Start) && status == 200 {
                        started_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    // 503 = connection cap reached (the slowloris hold slots): allowed, bounded.
                    if !allowed(call, status) && status != 503 {
                        unexpected.push((call, status));
                    }
                }
                (tried, refused, latencies, unexpected)
            })
        })
        .collect();

    let mut tried = 0;
    let mut refused = 0;
    let mut latencies = Vec::new();
    let mut unexpected = Vec::new();
    for w in workers {
        let (t, r, l, u) = w.join().unwrap();
        tried += t;
        refused += r;
        latencies.extend(l);
        unexpected.extend(u);
    }
    let slow_bytes: u64 = slowloris.into_iter().map(|h| h.join().unwrap()).sum();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = *latencies.last().unwrap();
    let rss_after = rss();

    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert!(
        tried >= clients as u64 * 10,
        "only {tried} requests in {secs}s"
    );
    assert!(p99 < Duration::from_secs(2), "p99 latency {p99:?}");
    // Only the validly signed, well-formed starts started operations.
    let m = fg.metrics();
    let started = metric_sum(&m, "flowgate_operations_started_total", "");
    assert_eq!(started, started_ok.load(Ordering::Relaxed) as f64, "{m}");
    assert!(started >= 1.0, "no valid start got through:\n{m}");
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(http_status(&api), 200, "the appliance must still answer");
    fg.stop();
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!(
            "API clients={clients} secs={secs} slowloris={slow} tried={tried} refused={refused} \
             ops_started={started} p50_ms={} p99_ms={} max_ms={} slowloris_bytes={slow_bytes} \
             rss_kib_before={rss_before} rss_kib_after={rss_after} rps={:.0}",
            p50.as_millis(),
            p99.as_millis(),
            max.as_millis(),
            tried as f64 / secs as f64
        );
    }
}

fn http_status(api: &str) -> u16 {
    http("GET", api, "/healthz", "").0
}
