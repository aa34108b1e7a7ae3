//! Injected faults through the real binary (`[debug] fault_injection = true`), and kill -9
//! crash safety of the state directory:
//! * a stalled worker is reported (`/readyz` 503, `flowgate_worker_stalled 1`), an operation
//!   started during the stall ends `COMPLETED_WITH_ERRORS` instead of hanging, and no frame
//!   was forwarded without a verdict (a dropped port never leaks, rx = tx + drops);
//! * a full command ring makes an operation start fail promptly, not hang;
//! * a panicking management handler answers 500 and the appliance keeps serving;
//! * `kill -9` while a capture and a flush are in progress, and in the middle of policy
//!   reloads: after restart history and audit are intact (every record parses), the
//!   interrupted operation is `FAILED` or `COMPLETED_WITH_ERRORS`, and the policy in force
//!   is a validated one.

mod common;

use common::*;
use dataplane::packet::tcp_flags::SYN;
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
[[stateful.rule_groups]]
name = "t"
rules = [
  { action = "drop", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "23", sid = 1, msg = "telnet" },
]
"#;

const POLICY_B: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
[[stateful.rule_groups]]
name = "t"
rules = [
  { action = "drop", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "23", sid = 1, msg = "telnet" },
  { action = "drop", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "25", sid = 2, msg = "smtp" },
]
"#;

fn syn(b: &FrameBuilder, sport: u16, dport: u16) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: sport,
        dst_port: dport,
        seq: 1,
        ack: 0,
        flags: SYN,
        window: 65535,
        options: &[],
        payload: &[],
    })
}

/// `frames` on port A; SYNs to port 80 (pass) and 23 (drop), alternating.
fn write_inputs(dir: &TempDir, frames: u16) -> Vec<Vec<u8>> {
    let b = FrameBuilder::new("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
    let all: Vec<Vec<u8>> = (0..frames)
        .map(|i| syn(&b, 20000 + i, if i % 2 == 0 { 80 } else { 23 }))
        .collect();
    write_pcap(&dir.path("in_a.pcap"), &all);
    write_pcap(&dir.path("in_b.pcap"), &[]);
    all
}

fn config(dir: &TempDir, api: &str, worker_timeout_ms: u64) -> String {
    TestConfig::pcap(dir, "fault-test", api)
        .set_str(
            "appliance",
            "state_dir",
            &dir.path("state").display().to_string(),
        )
        .set_str(
            "logging",
            "audit_log",
            &dir.path("state/audit.log").display().to_string(),
        )
        .set(
            "operations",
            "worker_timeout_ms",
            &worker_timeout_ms.to_string(),
        )
        .set("debug", "fault_injection", "true")
        .render()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn start_op(api: &str, kind: &str) -> (u16, serde_json::Value) {
    let (code, body) = http(
        "POST",
        api,
        &format!("/v1/operations/{kind}"),
        r#"{"filters":[{"src":"198.18.0.0/15"}]}"#,
    );
    (code, serde_json::from_str(&body).unwrap_or_default())
}

fn op_status(api: &str, id: &str) -> String {
    let (code, body) = http("GET", api, &format!("/v1/operations/{id}"), "");
    assert_eq!(code, 200, "{body}");
    json(&body)["status"].as_str().unwrap_or("").to_string()
}

/// Every audit line is a whole JSON record (no torn writes); returns their actions.
fn audit_actions(dir: &TempDir) -> Vec<String> {
    let text = std::fs::read_to_string(dir.path("state/audit.log")).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "torn last audit record"
    );
    text.lines()
        .map(|l| json(l)["action"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn stalled_worker_is_reported_ops_complete_with_errors_and_nothing_passes_unjudged() {
    require_root();
    let dir = TempDir::new("stall");
    let frames = write_inputs(&dir, 200);
    std::fs::write(dir.path("policy.toml"), POLICY).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut fg = Appliance::start(&dir.0, &config(&dir, &api, 1500), &api);
    fg.wait_for(20, "frames received", |a| {
        a.metric("flowgate_rx_packets_total", "port=\"net_pcap0\"") >= 200.0
    });

    let (code, body) = http("POST", &api, "/v1/debug/stall?worker=0&millis=6000", "");
    assert_eq!(code, 200, "{body}");
    fg.wait_for(10, "stall reported on /readyz", |a| {
        http("GET", &a.api, "/readyz", "").0 == 503
    });
    assert_eq!(fg.metric("flowgate_worker_stalled", ""), 1.0);
    let (code, op) = start_op(&api, "capture");
    assert_eq!(code, 202, "{op}");
    let id = op["id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    fg.wait_for(10, "operation settled", |a| {
        op_status(&a.api, &id) != "IN_PROGRESS"
    });
    assert_eq!(op_status(&api, &id), "COMPLETED_WITH_ERRORS");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "op took {:?}",
        t0.elapsed()
    );

    // Ring fill while stalled: the next operation start does not hang; the worker it
    // could not reach is reported and the operation is settled at once.
    let (code, body) = http("POST", &api, "/v1/debug/fill_ring?worker=0", "");
    assert_eq!(code, 200, "{body}");
    assert!(json(&body)["commands_pushed"].as_u64().unwrap() > 0);
    let t0 = Instant::now();
    let (code, op) = start_op(&api, "flush");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "start hung {:?}",
        t0.elapsed()
    );
    assert_eq!(code, 202, "{op}");
    let id = op["id"].as_str().unwrap().to_string();
    let st = op_status(&api, &id);
    assert!(
        st == "FAILED" || st == "COMPLETED_WITH_ERRORS",
        "flush with a full ring: {st}"
    );
    let (_, desc) = http("GET", &api, &format!("/v1/operations/{id}"), "");
    assert!(desc.contains("unreachable"), "{desc}");

    // A panicking handler: 500, and the appliance keeps serving.
    let (code, _) = http("POST", &api, "/v1/debug/panic", "");
    assert_eq!(code, 500);
    assert_eq!(http("GET", &api, "/healthz", "").0, 200);

    // The stall ends: the worker recovers, drains the ring, and is ready again.
    fg.wait_for(20, "worker recovered", |a| {
        http("GET", &a.api, "/readyz", "").0 == 200
    });
    assert_eq!(fg.metric("flowgate_worker_stalled", ""), 0.0);
    let (code, op) = start_op(&api, "capture");
    assert_eq!(code, 202, "{op}");
    let id = op["id"].as_str().unwrap().to_string();
    fg.wait_for(10, "capture after recovery", |a| {
        op_status(&a.api, &id) != "IN_PROGRESS"
    });
    assert_eq!(op_status(&api, &id), "COMPLETED");

    let m = fg.metrics();
    let rx = metric_sum(&m, "flowgate_rx_packets_total", "");
    let tx = metric_sum(&m, "flowgate_tx_packets_total", "");
    let dropped = metric_sum(&m, "flowgate_dropped_packets_total", "");
    assert_eq!(rx, tx + dropped, "a frame left without a verdict:\n{m}");
    fg.stop();
    let out = read_pcap(&dir.path("out_b.pcap"));
    let passed: Vec<&Vec<u8>> = frames.iter().step_by(2).collect();
    assert_eq!(out.len(), passed.len(), "only port-80 SYNs pass");
    assert!(out.iter().all(|f| passed.contains(&f)));
}

#[test]
fn kill_9_during_capture_flush_and_reload_keeps_history_audit_and_a_valid_policy() {
    require_root();
    let dir = TempDir::new("crash");
    write_inputs(&dir, 20);
    std::fs::write(dir.path("policy.toml"), POLICY).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    // Long worker timeout: the stalled worker keeps the operation IN_PROGRESS at the kill.
    let cfg = config(&dir, &api, 120_000);
    let mut interrupted = Vec::new();
    let mut completed = Vec::new();
    let mut audit_lines = 0;
    for (round, kind) in ["capture", "flush"].iter().enumerate() {
        let mut fg = Appliance::start(&dir.0, &cfg, &api);
        if round == 0 {
            // One completed operation in history before the crash.
            let (code, op) = start_op(&api, "capture");
            assert_eq!(code, 202, "{op}");
            let id = op["id"].as_str().unwrap().to_string();
            fg.wait_for(10, "first capture", |a| {
                op_status(&a.api, &id) == "COMPLETED"
            });
            completed.push(id);
        }
        let (code, body) = http("POST", &api, "/v1/debug/stall?worker=0&millis=60000", "");
        assert_eq!(code, 200, "{body}");
        std::thread::sleep(Duration::from_millis(100));
        let (code, op) = start_op(&api, kind);
        assert_eq!(code, 202, "{op}");
        let id = op["id"].as_str().unwrap().to_string();
        assert_eq!(op_status(&api, &id), "IN_PROGRESS");
        interrupted.push(id);
        // kill -9: no shutdown path runs.
        let mut child = fg.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let actions = audit_actions(&dir);
        assert!(
            actions.len() > audit_lines,
            "start not audited: {actions:?}"
        );
        audit_lines = actions.len();
    }

    // Reload storm between two valid policies, killed mid-way; an invalid policy written
    // and refused before the storm never comes into force.
    let mut fg = Appliance::start(&dir.0, &cfg, &api);
    std::fs::write(dir.path("policy.toml"), "[stateless\nbroken").unwrap();
    let (code, body) = http("POST", &api, "/v1/policy/reload", "");
    assert_eq!(code, 400, "invalid policy must be refused: {body}");
    let mut child = fg.child.take().unwrap();
    let writer_dir = dir.0.clone();
    let api2 = api.clone();
    let storm = std::thread::spawn(move || {
        for i in 0..200 {
            let text = if i % 2 == 0 { POLICY_B } else { POLICY };
            // Atomic replace: the reload never reads a half-written file.
            let tmp = writer_dir.join("policy.toml.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, writer_dir.join("policy.toml")).unwrap();
            if std::net::TcpStream::connect(&api2).is_err() {
                return i;
            }
            let _ = std::panic::catch_unwind(|| http("POST", &api2, "/v1/policy/reload", ""));
        }
        200
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let reloads = storm.join().unwrap();
    assert!(reloads > 0, "no reload happened before the kill");

    let mut fg = Appliance::start(&dir.0, &cfg, &api);
    for id in &interrupted {
        let st = op_status(&api, id);
        assert!(
            st == "FAILED" || st == "COMPLETED_WITH_ERRORS",
            "interrupted op {id} is {st}"
        );
    }
    for id in &completed {
        assert_eq!(op_status(&api, id), "COMPLETED", "completed op changed");
    }
    let (code, list) = http("GET", &api, "/v1/operations", "");
    assert_eq!(code, 200);
    let listed = json(&list).to_string();
    for id in interrupted.iter().chain(&completed) {
        assert!(listed.contains(id.as_str()), "{id} missing from history");
    }
    let (_, pol) = http("GET", &api, "/v1/policy", "");
    let rules = json(&pol)["rules"].as_u64().unwrap();
    assert!(rules >= 1, "policy in force is a validated one: {pol}");
    let actions = audit_actions(&dir);
    assert!(actions.len() > audit_lines, "audit lost records");
    assert!(actions.iter().any(|a| a == "ReloadPolicy"));

    // The policy file is broken on disk when the appliance dies (an edit cut short): the
    // restart runs the last validated policy, kept under the state directory, and says so.
    let (_, before) = http("GET", &api, "/v1/policy", "");
    let before = json(&before);
    let mut child = fg.child.take().unwrap();
    std::fs::write(
        dir.path("policy.toml"),
        "[stateful]\nrule_order = \"default_act",
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut fg = Appliance::start(&dir.0, &cfg, &api);
    let (code, pol) = http("GET", &api, "/v1/policy", "");
    assert_eq!(code, 200);
    let pol = json(&pol);
    assert_eq!(
        pol["rules"], before["rules"],
        "the last validated policy runs: {pol}"
    );
    assert_eq!(pol["summary"], before["summary"], "{pol}");
    let err = pol["last_reload_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("at start-up") && err.contains("policy.toml:2"),
        "the file's error is reported: {pol}"
    );
    assert_eq!(fg.metric("flowgate_policy_last_reload_ok", ""), 0.0);
    fg.stop();
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!(
            "CRASH kills=4 fallback_to_last_validated_policy=1 interrupted_ops={} completed_ops_kept={} reloads_before_kill={reloads} audit_records={} policy_rules={rules}",
            interrupted.len(),
            completed.len(),
            actions.len()
        );
    }
}
