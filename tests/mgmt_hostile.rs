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
use sigv4::Credentials;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let creds = secret.map(|secret| Credentials {
        access_key_id: KEY_ID.into(),
        secret_access_key: secret.into(),
    });
    let signed = creds.as_ref().map(|c| (c, "us-east-1"));
    hostile::aws_call(api, target, body, signed, fresh)
}

#[test]
fn a_thousand_hostile_sockets_do_not_lock_out_signed_callers() {
    require_root();
    // A listener capped below the attack: connections are evicted, never signed ones.
    let (_dir, mut fg, api) = start("lockout", |c| {
        c.set("mgmt", "max_connections", "512")
            .set("mgmt", "max_connections_per_ip", "64")
    });
    // 20 addresses, 50 sockets each: within the per-address cap.
    let attack = hostile::Attack::launch(api.parse().unwrap(), 1000, 50);
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
    let reopened = attack.stop();
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
