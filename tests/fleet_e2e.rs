//! `flowgate-fleet` in front of two real appliances (zones `test-zone-a`, `test-zone-b`, each
//! fed its own sessions through the DPDK pcap driver), driven by the stock AWS CLI over
//! HTTPS with the fleet's self-signed certificate, and by `flowgatectl --all-zones`:
//! routing by zone, parallel zones, per-zone throttling, merged listing with pagination,
//! flushes in every zone, and a zone whose appliance is stopped and restarted.
//! Policy across zones is in `fleet_policy.rs`.

mod common;

use common::fleet::{AwsOutcome, FleetProc};
use common::*;
use ctl::Api;
use dataplane::packet::tcp_flags::SYN;
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use serde_json::{json, Value};
use sigv4::Credentials;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";
const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fleet-test";
const FLEET_KEY: &str = "AKIAFLEETTEST0000001";
const FLEET_SECRET: &str = "fleet-test-secret-0123456789";
const ZONE_A: &str = "test-zone-a";
const ZONE_B: &str = "test-zone-b";
const ZONE_B_ID: &str = "test-az2";
/// Every session of both zones (198.18.0.0/15 is the whole test range).
const ALL_FILTER: &str = r#"[{"SourceAddress":{"AddressDefinition":"198.18.0.0/15"}}]"#;

/// One zone: an appliance with `sessions` TCP sessions from `client` to `server`.
struct Zone {
    name: &'static str,
    dir: TempDir,
    api: String,
    fg: Option<Appliance>,
    key: String,
    secret: String,
    client: &'static str,
    sessions: u16,
}

impl Zone {
    fn start(
        name: &'static str,
        client: &'static str,
        server: &'static str,
        sessions: u16,
    ) -> Zone {
        let dir = TempDir::new(name);
        let ip = |s: &str| s.parse().unwrap();
        let b = FrameBuilder::new(ip(client), ip(server));
        let frames: Vec<Vec<u8>> = (0..sessions)
            .map(|i| {
                b.tcp(&TcpSegment {
                    src_port: 40000 + i,
                    dst_port: 443,
                    seq: 1,
                    ack: 0,
                    flags: SYN,
                    window: 65535,
                    options: &[],
                    payload: &[],
                })
            })
            .collect();
        write_pcap(&dir.path("in_a.pcap"), &frames);
        write_pcap(&dir.path("in_b.pcap"), &[]);
        std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
        let mut z = Zone {
            name,
            api: format!("127.0.0.1:{}", free_port()),
            dir,
            fg: None,
            key: format!("AKIAZONE{}", name.to_ascii_uppercase().replace('-', "")),
            secret: format!("secret-of-{name}"),
            client,
            sessions,
        };
        z.boot();
        z
    }

    /// Starts (or restarts) the appliance with the same state directory and port.
    fn boot(&mut self) {
        // The pcap is read once per start: the restarted appliance sees the sessions again.
        let fg = Appliance::start(&self.dir.0, &self.config(), &self.api);
        let n = f64::from(self.sessions);
        fg.wait_for(20, "sessions in the flow table", |a| {
            a.metric("flowgate_flows_created_total", "") >= n
        });
        self.fg = Some(fg);
    }

    fn stop(&mut self) {
        if let Some(mut fg) = self.fg.take() {
            fg.stop();
        }
    }

    fn config(&self) -> String {
        let d = &self.dir;
        let vdev = |i: u8, side: &str| {
            format!(
                "net_pcap{i},rx_pcap={},tx_pcap={}",
                d.path(&format!("in_{side}.pcap")).display(),
                d.path(&format!("out_{side}.pcap")).display()
            )
        };
        format!(
            r#"
[appliance]
firewall_name = "fleet-test"
firewall_arn = "{ARN}"
zone = "{zone}"
state_dir = "state"
[eal]
args = {eal}
mbufs = 4095
[[port_pair]]
a = "net_pcap0"
b = "net_pcap1"
[workers]
lcores = [1]
[flow_table]
capacity_per_worker = 4096
[flow_table.timeouts]
tcp_new = 900
[policy]
file = "policy.toml"
[mgmt]
listen = "{api}"
auth = "sigv4"
region = "{REGION}"
[[mgmt.keys]]
access_key_id = "{key}"
secret_access_key = "{secret}"
[logging]
flow_log = "off"
alert_log = "off"
audit_log = "audit.log"
[operations]
worker_timeout_ms = 60000
[debug]
fault_injection = true
"#,
            zone = self.name,
            api = self.api,
            key = self.key,
            secret = self.secret,
            eal = eal_args(1, &[vdev(0, "a"), vdev(1, "b")])
        )
    }

    /// Fault injection on the appliance itself: its worker stops polling for `millis`.
    fn stall(&self, millis: u64) {
        Api::new(
            &format!("https://{}", self.api),
            Some(&test_tls().ca_file),
            Some(Credentials {
                access_key_id: self.key.clone(),
                secret_access_key: self.secret.clone(),
            }),
            REGION.into(),
        )
        .unwrap()
        .call(
            "POST",
            "/v1/debug/stall",
            &format!("worker=0&millis={millis}"),
            None,
        )
        .unwrap_or_else(|e| panic!("stall: {e}"));
    }

    fn inventory_entry(&self, id: &str) -> String {
        format!(
            r#"
[[zone]]
name = "{}"
id = "{id}"
api = "https://{}"
ca_file = {:?}
access_key_id = "{}"
secret_access_key = "{}"
"#,
            self.name,
            self.api,
            test_tls().ca_file,
            self.key,
            self.secret
        )
    }
}

const PASS_ALL: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
"#;

fn fleet_inventory(dir: &TempDir, port: u16, zones: &[(&Zone, &str)]) -> String {
    let mut s = format!(
        r#"
[fleet]
firewall_name = "fleet-test"
firewall_arn = "{ARN}"
listen = "127.0.0.1:{port}"
region = "{REGION}"
state_dir = "{}"
reconcile_interval_ms = 200
upstream_timeout_ms = 10000
[[fleet.keys]]
access_key_id = "{FLEET_KEY}"
secret_access_key = "{FLEET_SECRET}"
"#,
        dir.path("state").display()
    );
    for (z, id) in zones {
        s.push_str(&z.inventory_entry(id));
    }
    s
}

struct Fixture {
    a: Zone,
    b: Zone,
    fleet: FleetProc,
    _dir: TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        require_root();
        let a = Zone::start(ZONE_A, "198.18.0.1", "198.18.1.1", 5);
        let b = Zone::start(ZONE_B, "198.18.2.1", "198.18.3.1", 3);
        let dir = TempDir::new("fleet");
        let port = free_port();
        let inv = fleet_inventory(&dir, port, &[(&a, "test-az1"), (&b, ZONE_B_ID)]);
        let fleet = FleetProc::start(&dir.0, &inv, port, [FLEET_KEY, FLEET_SECRET, REGION, ARN]);
        Fixture {
            a,
            b,
            fleet,
            _dir: dir,
        }
    }

    fn start_op(&self, action: &str, zone_args: &[&str]) -> AwsOutcome {
        let mut args = vec![action, "--firewall-arn", ARN, "--flow-filters", ALL_FILTER];
        args.extend_from_slice(zone_args);
        self.fleet.aws(&args)
    }

    fn capture(&self, zone: &str) -> String {
        let o = self.start_op("start-flow-capture", &["--availability-zone", zone]);
        assert!(o.ok, "capture in {zone}: {}", o.stderr);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["FirewallArn"], ARN);
        v["FlowOperationId"].as_str().unwrap().to_string()
    }

    fn describe(&self, zone: &str, id: &str) -> Value {
        self.fleet.aws_ok(&[
            "describe-flow-operation",
            "--firewall-arn",
            ARN,
            "--availability-zone",
            zone,
            "--flow-operation-id",
            id,
        ])
    }

    fn wait_settled(&self, zone: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let d = self.describe(zone, id);
            if d["FlowOperationStatus"] != "IN_PROGRESS" {
                return d;
            }
            assert!(Instant::now() < deadline, "{id} in {zone} never settled");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The source addresses of a completed operation's flows (every page).
    fn result_sources(&self, zone: &str, id: &str) -> Vec<String> {
        let v = self.fleet.aws_ok(&[
            "list-flow-operation-results",
            "--firewall-arn",
            ARN,
            "--availability-zone",
            zone,
            "--flow-operation-id",
            id,
        ]);
        assert_eq!(v["AvailabilityZone"], zone);
        v["Flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["SourceAddress"]["AddressDefinition"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

#[test]
fn fleet_routes_flow_operations_by_zone_with_the_aws_cli() {
    let fx = Fixture::start();

    // describe-firewall: both zones, reachable, their ids as subnets.
    let fw = fx
        .fleet
        .aws_ok(&["describe-firewall", "--firewall-arn", ARN]);
    let states = fw["FirewallStatus"]["SyncStates"].as_object().unwrap();
    assert_eq!(
        states.keys().collect::<Vec<_>>(),
        [ZONE_A, ZONE_B],
        "{fw:#}"
    );
    for z in [ZONE_A, ZONE_B] {
        assert_eq!(states[z]["Attachment"]["Status"], "READY", "{fw:#}");
    }
    assert_eq!(fw["Firewall"]["FirewallArn"], ARN);
    assert_eq!(
        fw["Firewall"]["SubnetMappings"].as_array().unwrap().len(),
        2
    );

    // A capture in zone a finds only zone a's sessions, though the filter covers both.
    let id_a = fx.capture(ZONE_A);
    assert_eq!(
        fx.wait_settled(ZONE_A, &id_a)["FlowOperationStatus"],
        "COMPLETED"
    );
    let srcs = fx.result_sources(ZONE_A, &id_a);
    assert_eq!(srcs.len(), usize::from(fx.a.sessions), "{srcs:?}");
    assert!(
        srcs.iter().all(|s| s == &format!("{}/32", fx.a.client)),
        "{srcs:?}"
    );
    // The operation id is zone a's own: zone b does not know it.
    let o = fx.fleet.aws(&[
        "describe-flow-operation",
        "--firewall-arn",
        ARN,
        "--availability-zone",
        ZONE_B,
        "--flow-operation-id",
        &id_a,
    ]);
    o.assert_error("ResourceNotFoundException", "DescribeFlowOperation");

    // Zone b (AvailabilityZoneId routing is covered by the router's unit tests: the AWS
    // CLI v1's copy of the model lacks that member); an unknown zone is refused by name.
    let id_b = fx.capture(ZONE_B);
    assert_eq!(
        fx.wait_settled(ZONE_B, &id_b)["FlowOperationStatus"],
        "COMPLETED"
    );
    let srcs = fx.result_sources(ZONE_B, &id_b);
    assert_eq!(srcs.len(), usize::from(fx.b.sessions));
    assert!(srcs.iter().all(|s| s == "198.18.2.1/32"), "{srcs:?}");
    let o = fx.start_op("start-flow-capture", &["--availability-zone", "us-east-1z"]);
    o.assert_error("InvalidRequestException", "StartFlowCapture");
    assert!(
        o.stderr.contains("us-east-1z") && o.stderr.contains(ZONE_A),
        "{}",
        o.stderr
    );
    // A start without a zone is ambiguous across two zones.
    fx.start_op("start-flow-capture", &[])
        .assert_error("InvalidRequestException", "StartFlowCapture");
    // Another firewall is not found.
    fx.fleet
        .aws(&[
            "start-flow-capture",
            "--firewall-arn",
            "arn:aws:network-firewall:us-east-1:000000000000:firewall/other",
            "--availability-zone",
            ZONE_A,
            "--flow-filters",
            ALL_FILTER,
        ])
        .assert_error("ResourceNotFoundException", "StartFlowCapture");
    // Describe without a zone: the fleet finds the zone that knows the id.
    let d = fx.fleet.aws_ok(&[
        "describe-flow-operation",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &id_b,
    ]);
    assert_eq!(d["AvailabilityZone"], ZONE_B);

    // Parallel zones: zone a's worker stalls, so its capture stays IN_PROGRESS; a second
    // capture there is throttled, while zone b's capture runs and completes meanwhile. The
    // stall outlasts the AWS CLI runs in between even on a loaded machine (each is a Python
    // start-up) and stays under the appliance's worker_timeout_ms.
    fx.a.stall(25_000);
    let running_a = fx.capture(ZONE_A);
    fx.start_op("start-flow-capture", &["--availability-zone", ZONE_A])
        .assert_error("ThrottlingException", "StartFlowCapture");
    let parallel_b = fx.capture(ZONE_B);
    assert_eq!(
        fx.wait_settled(ZONE_B, &parallel_b)["FlowOperationStatus"],
        "COMPLETED"
    );
    assert_eq!(
        fx.describe(ZONE_A, &running_a)["FlowOperationStatus"],
        "IN_PROGRESS",
        "zone a's capture should still wait on its stalled worker"
    );
    assert_eq!(
        fx.wait_settled(ZONE_A, &running_a)["FlowOperationStatus"],
        "COMPLETED"
    );
    assert_eq!(
        fx.result_sources(ZONE_A, &running_a).len(),
        usize::from(fx.a.sessions)
    );

    // Merged listing: every operation of both zones exactly once, newest first, also when
    // the CLI pages through it one item at a time with the fleet's NextToken.
    let mine: BTreeSet<String> = [&id_a, &id_b, &running_a, &parallel_b]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for page_size in ["100", "1", "3"] {
        let v = fx.fleet.aws_ok(&[
            "list-flow-operations",
            "--firewall-arn",
            ARN,
            "--page-size",
            page_size,
        ]);
        let ops = v["FlowOperations"].as_array().unwrap();
        let ids: Vec<String> = ops
            .iter()
            .map(|o| o["FlowOperationId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids.iter().cloned().collect::<BTreeSet<_>>(),
            mine,
            "page size {page_size}: {ids:?}"
        );
        assert_eq!(ids.len(), mine.len(), "duplicates at page size {page_size}");
        let ts: Vec<f64> = ops
            .iter()
            .map(|o| o["FlowRequestTimestamp"].as_f64().unwrap())
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] >= w[1]),
            "not newest first: {ts:?}"
        );
    }
    // One zone's list through the fleet is that zone's alone.
    let v = fx.fleet.aws_ok(&[
        "list-flow-operations",
        "--firewall-arn",
        ARN,
        "--availability-zone",
        ZONE_B,
    ]);
    assert_eq!(v["FlowOperations"].as_array().unwrap().len(), 2);
    // A tampered merged token is refused, not reinterpreted.
    // (Sent as the raw NextToken: the CLI's --starting-token would decode it client-side.)
    let tampered = json!({
        "FirewallArn": ARN,
        "NextToken": "eyJ2IjoxLCJ0IjpudWxsLCJ6Ijp7Im5vcGUiOiIifX0="
    })
    .to_string();
    fx.fleet
        .aws(&[
            "list-flow-operations",
            "--no-paginate",
            "--cli-input-json",
            &tampered,
        ])
        .assert_error("InvalidRequestException", "ListFlowOperations");

    // flowgatectl --all-zones flush: one flush per zone in parallel, merged table with a
    // zone column, then no session is left in either zone.
    let out = Command::new(flowgatectl_bin())
        .args(["--all-zones", "flush", "--src", "198.18.0.0/15"])
        .env("FLOWGATE_FLEET_API", &fx.fleet.endpoint)
        .env("FLOWGATE_CA_FILE", &fx.fleet.ca)
        .env("FLOWGATE_ACCESS_KEY_ID", FLEET_KEY)
        .env("FLOWGATE_SECRET_ACCESS_KEY", FLEET_SECRET)
        .env("FLOWGATE_REGION", REGION)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "flowgatectl --all-zones flush:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("ZONE"), "{stdout}");
    for (z, n) in [(ZONE_A, fx.a.sessions), (ZONE_B, fx.b.sessions)] {
        let rows = stdout
            .lines()
            .filter(|l| l.starts_with(z) && l.contains("TCP"))
            .count();
        assert_eq!(rows, usize::from(n), "flushed rows of {z}:\n{stdout}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(z) && l.contains("COMPLETED")),
            "status of {z}:\n{stdout}"
        );
        assert!(stderr.contains(z), "progress of {z}:\n{stderr}");
    }
    for z in [ZONE_A, ZONE_B] {
        let id = fx.capture(z);
        fx.wait_settled(z, &id);
        assert!(fx.result_sources(z, &id).is_empty(), "sessions left in {z}");
    }

    // The fleet's own metrics: both zones up, requests counted by action.
    let (status, metrics) = fx.fleet.get("/metrics").unwrap();
    assert_eq!(status, 200);
    for z in [ZONE_A, ZONE_B] {
        assert_eq!(
            metric_sum(&metrics, "flowgate_fleet_zone_up", &format!("zone=\"{z}\"")),
            1.0,
            "{metrics}"
        );
    }
    assert!(
        metric_sum(
            &metrics,
            "flowgate_fleet_requests_total",
            "action=\"StartFlowCapture\""
        ) >= 6.0
    );
}

#[test]
fn an_unreachable_zone_fails_its_own_operations_and_returns_after_restart() {
    let mut fx = Fixture::start();
    fx.b.stop();

    // Zone a keeps working.
    let id = fx.capture(ZONE_A);
    assert_eq!(
        fx.wait_settled(ZONE_A, &id)["FlowOperationStatus"],
        "COMPLETED"
    );
    assert_eq!(
        fx.result_sources(ZONE_A, &id).len(),
        usize::from(fx.a.sessions)
    );

    // Zone b's operations fail with an error that names the zone and why.
    let o = fx.start_op("start-flow-capture", &["--availability-zone", ZONE_B]);
    o.assert_error("InternalServerError", "StartFlowCapture");
    assert!(
        o.stderr.contains(ZONE_B) && o.stderr.contains("unreachable"),
        "{}",
        o.stderr
    );
    // The merged list needs every zone and says so; zone a's own list works.
    let o = fx
        .fleet
        .aws(&["list-flow-operations", "--firewall-arn", ARN]);
    o.assert_error("InternalServerError", "ListFlowOperations");
    assert!(o.stderr.contains(ZONE_B), "{}", o.stderr);
    fx.fleet.aws_ok(&[
        "list-flow-operations",
        "--firewall-arn",
        ARN,
        "--availability-zone",
        ZONE_A,
    ]);
    let fw = fx.fleet.wait_firewall("zone b reported down", |v| {
        v["FirewallStatus"]["SyncStates"][ZONE_B]["Attachment"]["Status"] == "FAILED"
    });
    assert_eq!(
        fw["FirewallStatus"]["ConfigurationSyncStateSummary"],
        "PENDING"
    );
    assert_eq!(
        fw["FirewallStatus"]["SyncStates"][ZONE_A]["Attachment"]["Status"],
        "READY"
    );
    let msg = fw["FirewallStatus"]["SyncStates"][ZONE_B]["Attachment"]["StatusMessage"]
        .as_str()
        .unwrap_or("");
    assert!(msg.contains("unreachable"), "{fw:#}");
    // flowgatectl reports zone b's failure in its own row and exits 3 (unreachable).
    let out = Command::new(flowgatectl_bin())
        .args(["--all-zones", "capture", "--src", "198.18.0.0/15"])
        .env("FLOWGATE_FLEET_API", &fx.fleet.endpoint)
        .env("FLOWGATE_CA_FILE", &fx.fleet.ca)
        .env("FLOWGATE_ACCESS_KEY_ID", FLEET_KEY)
        .env("FLOWGATE_SECRET_ACCESS_KEY", FLEET_SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(ZONE_A) && l.contains("COMPLETED")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(ZONE_B) && l.contains("ERROR") && l.contains("unreachable")),
        "{stdout}"
    );

    // Zone b returns: READY and IN_SYNC again, and its operations work.
    fx.b.boot();
    fx.fleet.wait_firewall("zone b back in sync", |v| {
        v["FirewallStatus"]["ConfigurationSyncStateSummary"] == "IN_SYNC"
            && v["FirewallStatus"]["SyncStates"][ZONE_B]["Attachment"]["Status"] == "READY"
    });
    let id = fx.capture(ZONE_B);
    assert_eq!(
        fx.wait_settled(ZONE_B, &id)["FlowOperationStatus"],
        "COMPLETED"
    );
    assert_eq!(
        fx.result_sources(ZONE_B, &id).len(),
        usize::from(fx.b.sessions)
    );
}
