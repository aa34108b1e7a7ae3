//! The management API against unauthenticated attackers, through the real binary over
//! HTTPS with SigV4 on:
//!
//! * lockout: 1,000 hostile sockets (raw slowloris before TLS, TLS then a trickled request
//!   head, TLS idle keep-alive after a `/healthz`) from 20 addresses, kept open (reopened
//!   as the appliance closes them), on a listener capped below that, while 50 signed
//!   requests on fresh connections must all succeed;
//! * audit flood: 20,000 junk requests (unsigned, forged signatures, malformed bodies) leave
//!   the audit log under a few MB, and a signed start still succeeds afterwards.
//!
//! Figures are printed with `FG_REL_REPORT=1`; no timing is asserted beyond generous
//! deadlines.

mod common;

use common::*;
use mgmt::sigv4::{sign, Credentials};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/hostile-test";
const KEY_ID: &str = "AKIAFLOWGATEHOSTILE1";
const SECRET: &str = "hostile-test-secret";

/// The appliance under attack; `tune` adjusts its limits.
fn config(dir: &TempDir, api: &str, tune: impl FnOnce(TestConfig) -> TestConfig) -> String {
    let c = TestConfig::pcap(dir, "hostile-test", api)
        .set_str("appliance", "firewall_arn", ARN)
        .sigv4(KEY_ID, SECRET, "us-east-1")
        .set("logging", "max_file_bytes", "1048576")
        .set("logging", "keep_files", "2");
    tune(c).render()
}

fn start(tag: &str, tune: impl FnOnce(TestConfig) -> TestConfig) -> (TempDir, Appliance, String) {
    let dir = TempDir::new(tag);
    for f in ["in_a.pcap", "in_b.pcap"] {
        write_pcap(&dir.path(f), &[]);
    }
    std::fs::write(
        dir.path("policy.toml"),
        "[stateless]\ndefault_action = \"forward_to_sfe\"\n[stateful]\nrule_order = \"default_action_order\"\n",
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let fg = Appliance::start(&dir.0, &config(&dir, &api, tune), &api);
    (dir, fg, api)
}

/// A JSON 1.0 call, signed with `secret` (or unsigned); on a new connection if `fresh`.
fn aws(api: &str, target: &str, body: &str, secret: Option<&str>, fresh: bool) -> (u16, String) {
    let mut headers = vec![
        (
            "x-amz-target".to_string(),
            format!("NetworkFirewall_20201112.{target}"),
        ),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
    ];
    if let Some(secret) = secret {
        sign(
            "POST",
            api,
            "/",
            "",
            &mut headers,
            body.as_bytes(),
            &Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: secret.into(),
            },
            "us-east-1",
            "network-firewall",
            SystemTime::now(),
        );
    }
    let client = if fresh { fresh_client() } else { client() };
    let (status, body) = send_with(client, "POST", api, "/", &headers, body.as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&test_tls().ca_file).unwrap();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    roots.add(ca).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A TCP connection from loopback address `127.0.0.<last>` (std cannot bind a client
/// socket before connecting; tokio's `TcpSocket` can).
fn connect_from(last: u8, api: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, last], 0)))?;
    let stream = rt.block_on(socket.connect(api))?.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

#[derive(Clone, Copy)]
enum Hostile {
    /// Bytes of a never-finished TLS ClientHello, one every half second.
    RawTrickle,
    /// A TLS session, then a request head one byte at a time.
    TlsTrickle,
    /// A TLS session, one `/healthz`, then silence on the kept-alive connection.
    TlsIdle,
}

/// Keeps one hostile socket open until `stop`, reopening it whenever the appliance closes
/// it; counts (re)connections.
fn hostile(
    kind: Hostile,
    from: u8,
    api: SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    let tls = tls_config();
    while !stop.load(Ordering::Relaxed) {
        let Ok(tcp) = connect_from(from, api) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        match kind {
            Hostile::RawTrickle => {
                let mut tcp = tcp;
                let hello = [
                    0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ];
                for b in hello.iter().cycle() {
                    if stop.load(Ordering::Relaxed) || tcp.write_all(&[*b]).is_err() {
                        break;
                    }
                    let mut buf = [0u8; 64];
                    if matches!(tcp.read(&mut buf), Ok(0)) {
                        break;
                    }
                }
            }
            Hostile::TlsTrickle | Hostile::TlsIdle => {
                let Ok(conn) = rustls::ClientConnection::new(
                    Arc::clone(&tls),
                    "127.0.0.1".try_into().unwrap(),
                ) else {
                    continue;
                };
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let first: &[u8] = match kind {
                    Hostile::TlsIdle => b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                    _ => b"POST / HTTP/1.1\r\nHost: x\r\nX-Drip: ",
                };
                if s.write_all(first).is_err() {
                    continue;
                }
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if matches!(kind, Hostile::TlsTrickle) && s.write_all(b"a").is_err() {
                        break;
                    }
                    let mut buf = [0u8; 512];
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

#[test]
fn a_thousand_hostile_sockets_do_not_lock_out_signed_callers() {
    require_root();
    // A listener capped below the attack: connections are evicted, never signed ones.
    let (_dir, mut fg, api) = start("lockout", |c| {
        c.set("mgmt", "max_connections", "512")
            .set("mgmt", "max_connections_per_ip", "64")
    });
    let addr: SocketAddr = api.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let kinds = [Hostile::RawTrickle, Hostile::TlsTrickle, Hostile::TlsIdle];
    let attackers: Vec<_> = (0..1000)
        .map(|i| {
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            let kind = kinds[i % kinds.len()];
            // 20 addresses, 50 sockets each: within the per-address cap.
            let from = 10 + (i / 50) as u8;
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || hostile(kind, from, addr, stop, opened))
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while opened.load(Ordering::Relaxed) < 1000 {
        assert!(
            Instant::now() < deadline,
            "attackers never opened 1,000 sockets"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let body = format!(r#"{{"FirewallArn":"{ARN}"}}"#);
    let mut failures = Vec::new();
    for _ in 0..50 {
        let (status, text) = aws(&api, "ListFlowOperations", &body, Some(SECRET), true);
        if status != 200 {
            failures.push((status, text));
        }
    }
    let took = started.elapsed();
    let reopened = opened.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.join();
    }
    assert!(failures.is_empty(), "signed requests failed: {failures:?}");
    assert!(
        took < Duration::from_secs(120),
        "50 signed requests took {took:?}"
    );
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!(
            "lockout: 1000 hostile sockets ({reopened} connections opened), 50/50 signed requests ok in {:.2}s",
            took.as_secs_f64()
        );
    }
    fg.stop();
}

#[test]
fn a_flood_of_junk_keeps_the_audit_log_small() {
    require_root();
    let (dir, mut fg, api) = start("auditflood", |c| c);
    let sent = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (api, sent) = (api.clone(), Arc::clone(&sent));
            std::thread::spawn(move || {
                let start = format!(
                    r#"{{"FirewallArn":"{ARN}","FlowFilters":[{{"SourceAddress":{{"AddressDefinition":"198.18.0.0/15"}}}}]}}"#
                );
                let junk = "x".repeat(2000);
                for i in 0..2500u32 {
                    let (target, body, secret) = match (i + t) % 4 {
                        0 => ("StartFlowCapture", start.as_str(), None),
                        1 => ("StartFlowCapture", start.as_str(), Some("forged-secret")),
                        2 => ("StartFlowFlush", "{\"FirewallArn\": [1,2", Some(SECRET)),
                        _ => (junk.as_str(), "{}", Some("forged-secret")),
                    };
                    let (status, _) = aws(&api, target, body, secret, false);
                    if status != 0 {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let answered = sent.load(Ordering::Relaxed);
    assert!(
        answered >= 19_000,
        "only {answered} of 20,000 junk requests were answered"
    );
    let body = format!(
        r#"{{"FirewallArn":"{ARN}","FlowFilters":[{{"SourceAddress":{{"AddressDefinition":"198.18.0.0/15"}}}}]}}"#
    );
    let (status, text) = aws(&api, "StartFlowCapture", &body, Some(SECRET), true);
    assert_eq!(status, 200, "{text}");
    fg.stop();
    let state = dir.path("audit.log");
    let total: u64 = ["", ".1", ".2"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", state.display())).ok())
        .map(|m| m.len())
        .sum();
    let text = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(total < 3 * 1024 * 1024, "audit log grew to {total} bytes");
    assert!(
        !text.contains("AWS4-HMAC-SHA256"),
        "the Authorization header was copied"
    );
    assert!(
        text.contains("\"outcome\":\"refused\""),
        "refusals were not tallied:\n{text}"
    );
    assert!(text.contains("StartFlowCapture"), "{text}");
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!("audit flood: {answered} junk requests answered, audit log {total} bytes");
    }
}
