//! Policy across zones through `flowgate-fleet`, driven by the stock AWS CLI: an
//! `update-firewall-policy` is validated on every zone (a dry run that changes nothing),
//! then applied on each; `describe-firewall` reports PENDING until every zone has it and
//! IN_SYNC after; a stale token and an invalid policy are refused with the service's
//! errors; a zone that is down while the policy changes — even across a restart of the
//! fleet itself — catches up when it returns. The zones are `tests/helpers/policy_zone_stub.py`
//! (the appliance's policy actions over loopback HTTP, state kept in a file).

mod common;

use common::fleet::FleetProc;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";
const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fleet-policy";
const KEY: &str = "AKIAFLEETPOLICY00001";
const SECRET: &str = "fleet-policy-secret";
const ZONES: [&str; 2] = ["policy-zone-a", "policy-zone-b"];

/// One stub zone; killed on drop.
struct StubZone {
    name: &'static str,
    port: u16,
    state: PathBuf,
    child: Option<Child>,
}

impl StubZone {
    fn start(dir: &TempDir, name: &'static str) -> StubZone {
        let mut z = StubZone {
            name,
            port: free_port(),
            state: dir.path(&format!("{name}.json")),
            child: None,
        };
        z.boot();
        z
    }

    fn boot(&mut self) {
        let child = Command::new("python3")
            .arg(repo().join("tests/helpers/policy_zone_stub.py"))
            .args([
                &self.port.to_string(),
                self.state.to_str().unwrap(),
                self.name,
                ARN,
            ])
            .arg(&test_tls().cert_file)
            .arg(&test_tls().key_file)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn python3 policy_zone_stub.py");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = format!("127.0.0.1:{}", self.port);
        // The stub may not be listening yet: probe the port before asking for /healthz.
        while std::net::TcpStream::connect(&addr).is_err()
            || http("GET", &addr, "/healthz", "").0 != 200
        {
            assert!(
                Instant::now() < deadline,
                "stub zone {} not ready",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The stub's persisted state: `policy`, `token`, `updates`.
    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.state).unwrap()).unwrap()
    }
}

impl Drop for StubZone {
    fn drop(&mut self) {
        self.stop();
    }
}

fn inventory(dir: &TempDir, port: u16, zones: &[StubZone]) -> String {
    let mut s = format!(
        r#"
[fleet]
firewall_name = "fleet-policy"
firewall_arn = "{ARN}"
listen = "127.0.0.1:{port}"
region = "{REGION}"
state_dir = "{}"
reconcile_interval_ms = 200
upstream_timeout_ms = 5000
[[fleet.keys]]
access_key_id = "{KEY}"
secret_access_key = "{SECRET}"
"#,
        dir.path("state").display()
    );
    for (i, z) in zones.iter().enumerate() {
        s.push_str(&format!(
            r#"
[[zone]]
name = "{}"
id = "use1-az{}"
api = "https://127.0.0.1:{}"
ca_file = {:?}
access_key_id = "AKIASTUB{i}"
secret_access_key = "stub"
"#,
            z.name,
            i + 1,
            z.port,
            test_tls().ca_file
        ));
    }
    s
}

const POLICY_NAME: &str = "fleet-policy-policy";

fn policy(action: &str) -> String {
    format!(
        r#"{{"StatelessDefaultActions":["{action}"],"StatelessFragmentDefaultActions":["{action}"]}}"#
    )
}

fn token(fleet: &FleetProc) -> String {
    let v = fleet.aws_ok(&[
        "describe-firewall-policy",
        "--firewall-policy-name",
        POLICY_NAME,
    ]);
    v["UpdateToken"].as_str().unwrap().to_string()
}

fn update(fleet: &FleetProc, token: &str, action: &str) -> common::fleet::AwsOutcome {
    fleet.aws(&[
        "update-firewall-policy",
        "--firewall-policy-name",
        POLICY_NAME,
        "--update-token",
        token,
        "--firewall-policy",
        &policy(action),
    ])
}

fn summary(v: &Value) -> &str {
    v["FirewallStatus"]["ConfigurationSyncStateSummary"]
        .as_str()
        .unwrap_or("")
}

fn zone_sync(v: &Value, zone: &str) -> String {
    v["FirewallStatus"]["SyncStates"][zone]["Config"]
        .as_object()
        .and_then(|c| c.values().next())
        .and_then(|c| c["SyncStatus"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn policy_updates_reach_every_zone_and_a_returning_zone_catches_up() {
    let dir = TempDir::new("fleet-policy");
    let mut zones: Vec<StubZone> = ZONES.iter().map(|z| StubZone::start(&dir, z)).collect();
    let port = free_port();
    let inv = inventory(&dir, port, &zones);
    let who = [KEY, SECRET, REGION, ARN];
    let mut fleet = FleetProc::start(&dir.0, &inv, port, who);

    let fw = fleet.wait_firewall("both zones in sync", |v| summary(v) == "IN_SYNC");
    assert!(
        fw["Firewall"]["FirewallPolicyArn"]
            .as_str()
            .unwrap()
            .ends_with(POLICY_NAME),
        "{fw:#}"
    );

    // An update: validated on both (dry run: nothing applied), applied on both.
    let t1 = token(&fleet);
    let o = update(&fleet, &t1, "aws:drop");
    assert!(o.ok, "{}\n{}", o.stderr, fleet.output());
    let answer: Value = serde_json::from_str(&o.stdout).unwrap();
    let t2 = answer["UpdateToken"].as_str().unwrap().to_string();
    assert_ne!(t1, t2, "the fleet's token changes with the policy");
    assert_eq!(token(&fleet), t2);
    for z in &zones {
        let s = z.state();
        assert_eq!(
            s["updates"], 1,
            "{}: the dry run must not apply: {s}",
            z.name
        );
        assert_eq!(
            s["policy"]["StatelessDefaultActions"][0], "aws:drop",
            "{}",
            z.name
        );
    }
    let fw = fleet.wait_firewall("in sync after the update", |v| summary(v) == "IN_SYNC");
    for z in ZONES {
        assert_eq!(zone_sync(&fw, z), "IN_SYNC", "{fw:#}");
    }

    // A stale token, and a policy one zone refuses in validation: nothing changes anywhere.
    update(&fleet, &t1, "aws:pass").assert_error("InvalidTokenException", "UpdateFirewallPolicy");
    let o = update(&fleet, &t2, "aws:bogus");
    o.assert_error("InvalidRequestException", "UpdateFirewallPolicy");
    assert!(o.stderr.contains("zone policy-zone-"), "{}", o.stderr);
    for z in &zones {
        assert_eq!(
            z.state()["updates"],
            1,
            "{} changed by a refused update",
            z.name
        );
    }
    assert_eq!(token(&fleet), t2, "a refused update keeps the token");

    // Zone b is down while the policy changes: zone a takes it, the firewall is PENDING.
    zones[1].stop();
    let o = update(&fleet, &t2, "aws:pass");
    assert!(o.ok, "{}\n{}", o.stderr, fleet.output());
    assert_eq!(zones[0].state()["updates"], 2);
    let fw = fleet.wait_firewall("PENDING with zone b down", |v| summary(v) == "PENDING");
    assert_eq!(zone_sync(&fw, ZONES[0]), "IN_SYNC", "{fw:#}");
    assert_eq!(zone_sync(&fw, ZONES[1]), "PENDING", "{fw:#}");
    assert_eq!(
        fw["FirewallStatus"]["SyncStates"][ZONES[1]]["Attachment"]["Status"],
        "FAILED"
    );

    // The desired policy is durable: the fleet restarts before zone b returns.
    drop(fleet);
    fleet = FleetProc::start(&dir.0, &inv, port, who);
    let fw = fleet.wait_firewall("still PENDING after a fleet restart", |v| {
        summary(v) == "PENDING"
    });
    assert_eq!(zone_sync(&fw, ZONES[1]), "PENDING");

    // Zone b returns and catches up in the background: IN_SYNC, with the latest policy.
    zones[1].boot();
    fleet.wait_firewall("zone b caught up", |v| summary(v) == "IN_SYNC");
    let s = zones[1].state();
    assert_eq!(s["updates"], 2, "{s}");
    assert_eq!(s["policy"]["StatelessDefaultActions"][0], "aws:pass");
    let metrics = fleet.get("/metrics").unwrap().1;
    for z in ZONES {
        assert_eq!(
            metric_sum(
                &metrics,
                "flowgate_fleet_zone_policy_in_sync",
                &format!("zone=\"{z}\"")
            ),
            1.0,
            "{metrics}"
        );
    }
}
