//! The fleet's listener against unauthenticated attackers: `flowgate-fleet` serves on the
//! appliance's listener (per-address caps, fair-share eviction of connections that have
//! not signed a request), so the attack of tests/mgmt_hostile.rs — 1,000 hostile sockets
//! from 20 addresses, kept open and reopened as they are closed, on a listener capped at
//! 512 — must not keep 50 signed requests on fresh connections out. The zones are
//! unreachable on purpose: `ListFirewalls` is answered by the fleet itself, so only the
//! listener is under test. No root needed (loopback only).

mod common;

use common::fleet::FleetProc;
use common::*;
use sigv4::Credentials;
use std::time::Instant;

const REGION: &str = "us-east-1";
const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fleet-hostile";
const KEY: &str = "AKIAFLEETHOSTILE0001";
const SECRET: &str = "fleet-hostile-secret";

fn inventory(dir: &TempDir, port: u16) -> String {
    let tls = test_tls();
    format!(
        r#"
[fleet]
firewall_name = "fleet-hostile"
firewall_arn = "{ARN}"
listen = "127.0.0.1:{port}"
region = "{REGION}"
state_dir = "{}"
max_connections = 512
max_connections_per_ip = 64
[fleet.tls]
cert_file = {:?}
key_file = {:?}
[[fleet.keys]]
access_key_id = "{KEY}"
secret_access_key = "{SECRET}"
[[zone]]
name = "hostile-zone-a"
id = "use1-az1"
api = "http://127.0.0.1:{}"
access_key_id = "AKIAZONEA"
secret_access_key = "unused"
"#,
        dir.path("state").display(),
        tls.cert_file,
        tls.key_file,
        free_port(),
    )
}

#[test]
fn a_thousand_hostile_sockets_do_not_lock_signed_callers_out_of_the_fleet() {
    let dir = TempDir::new("fleet-hostile");
    let port = free_port();
    let fleet = FleetProc::start_trusting(
        &dir.0,
        &inventory(&dir, port),
        port,
        [KEY, SECRET, REGION, ARN],
        test_tls().ca_file.clone(),
    );
    let api = format!("127.0.0.1:{port}");
    let creds = Credentials {
        access_key_id: KEY.into(),
        secret_access_key: SECRET.into(),
    };
    // 20 addresses, 50 sockets each: within the per-address cap, twice the listener's.
    let attack = hostile::Attack::launch(api.parse().unwrap(), 1000, 50);
    let started = Instant::now();
    // Each request has the test client's 30 s deadline: locked out means refused or timed
    // out, not slow (no timing is asserted; the figure is printed with FG_REL_REPORT=1).
    let mut failures = Vec::new();
    for _ in 0..50 {
        let (status, text) =
            hostile::aws_call(&api, "ListFirewalls", "{}", Some((&creds, REGION)), true);
        if status != 200 || !text.contains(ARN) {
            failures.push((status, text));
        }
    }
    let took = started.elapsed();
    let reopened = attack.stop();
    assert!(
        failures.is_empty(),
        "signed requests failed: {failures:?}\n--- fleet ---\n{}",
        fleet.output()
    );
    // The listener evicted attackers to let the callers in: more connections were opened
    // than the sockets the attack holds.
    assert!(reopened > 1000, "no attacker was ever closed ({reopened})");
    // An unsigned request is still refused (the listener did not let anything through).
    let (status, _) = hostile::aws_call(&api, "ListFirewalls", "{}", None, true);
    assert_eq!(status, 403);
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!(
            "fleet lockout: 1000 hostile sockets ({reopened} connections opened), 50/50 signed requests ok in {:.2}s",
            took.as_secs_f64()
        );
    }
}
