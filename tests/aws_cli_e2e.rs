//! The stock AWS CLI and boto3 (from PyPI, in the venv `scripts/test.sh` makes at
//! `$FLOWGATE_TEST_VENV`) against the real appliance with SigV4 auth: all five flow
//! actions, pagination, every error case of the AWS API checked by the error code the
//! client reports, parity of AWS-CLI results with the native API, refused credentials that
//! start nothing, and the audit log's record of each call. The stock AWS SDK for
//! JavaScript v3 (from npm, `tests/helpers/sdk`) drives the same actions over the Smithy
//! RPC v2 CBOR protocol.

mod common;

use common::*;
use ctl::Api;
use dataplane::packet::tcp_flags::SYN;
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use serde_json::{json, Value};
use sigv4::Credentials;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY_ID: &str = "AKIAFLOWGATETEST0001";
const SECRET: &str = "flowgate-test-secret-key-0123456789";
const REGION: &str = "us-east-1";
const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/cli-test";
const ZONE: &str = "test-zone-a";
const ZONE_ID: &str = "use1-az4";

/// TCP SYN flows and UDP flows from 198.18.0.1 (40 flows in 198.18.0.0/24) and IPv6 SYN
/// flows from 2001:2::1 (4 flows outside it).
const TCP_FLOWS: u16 = 30;
const UDP_FLOWS: u16 = 10;
const V6_FLOWS: u16 = 4;

/// One flow as both APIs report it: (src, dst, sport, dport, proto, packets, bytes).
type FlowRow = (String, String, u16, u16, u8, u64, u64);

fn venv() -> PathBuf {
    let v = std::env::var_os("FLOWGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    assert!(
        v.join("bin/aws").is_file() && v.join("bin/python").is_file(),
        "no AWS CLI venv at {}: run scripts/test.sh, or `python3 -m venv .venv && .venv/bin/pip install awscli boto3`",
        v.display()
    );
    v
}

fn traffic() -> Vec<Vec<u8>> {
    let ip = |s: &str| s.parse().unwrap();
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.1.1"));
    let u = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.1.2"));
    let c6 = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"));
    let syn = |b: &FrameBuilder, sport: u16, dport: u16| {
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
    };
    let mut frames: Vec<Vec<u8>> = (0..TCP_FLOWS).map(|i| syn(&c, 40000 + i, 80)).collect();
    for i in 0..UDP_FLOWS {
        // 1-3 packets per UDP flow so the counters differ between flows.
        for _ in 0..=(i % 3) {
            frames.push(u.udp(5000 + i, 53, &vec![b'q'; 10 + i as usize]));
        }
    }
    frames.extend((0..V6_FLOWS).map(|i| syn(&c6, 41000 + i, 443)));
    frames
}

fn config(dir: &TempDir, api: &str) -> String {
    TestConfig::pcap(dir, "cli-test", api)
        .set_str("appliance", "firewall_arn", ARN)
        .set_str("appliance", "zone", ZONE)
        .set_str("appliance", "zone_id", ZONE_ID)
        // The flows must outlive the test (SYN-only TCP and one-way UDP stay in NEW).
        .set("flow_table.timeouts", "tcp_new", "900")
        .set("flow_table.timeouts", "udp_new", "900")
        .sigv4(KEY_ID, SECRET, REGION)
        .set("mgmt", "max_body_bytes", "65536")
        .set_str("logging", "alert_log", "off")
        .set("operations", "worker_timeout_ms", "30000")
        .set("debug", "fault_injection", "true")
        .render()
}

const PASS_ALL: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
"#;

/// A running appliance fed with [`traffic`], all flows in its table.
struct Fixture {
    dir: TempDir,
    fg: Appliance,
    api: String,
}

impl Fixture {
    fn start(tag: &str) -> Fixture {
        require_root();
        let dir = TempDir::new(tag);
        let frames = traffic();
        write_pcap(&dir.path("in_a.pcap"), &frames);
        write_pcap(&dir.path("in_b.pcap"), &[]);
        std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
        let api = format!("127.0.0.1:{}", free_port());
        let fg = Appliance::start(&dir.0, &config(&dir, &api), &api);
        let n = frames.len() as f64;
        fg.wait_for(20, "all frames received", |a| {
            a.metric("flowgate_rx_packets_total", "port=\"net_pcap0\"") >= n
        });
        let flows = fg.metric("flowgate_flows_created_total", "");
        assert_eq!(
            flows,
            f64::from(TCP_FLOWS + UDP_FLOWS + V6_FLOWS),
            "flow table content"
        );
        Fixture { dir, fg, api }
    }

    fn endpoint(&self) -> String {
        format!("https://{}", self.api)
    }

    fn native(&self) -> Api {
        Api::new(
            &self.endpoint(),
            Some(&test_tls().ca_file),
            Some(Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
            }),
            REGION.into(),
        )
        .unwrap()
    }

    /// Runs `aws network-firewall ARGS` with `secret` as the secret key (None: unsigned).
    fn aws_as(&self, secret: Option<&str>, args: &[&str]) -> AwsOutcome {
        let mut cmd = Command::new(venv().join("bin/aws"));
        cmd.arg("network-firewall")
            .args(args)
            .args(["--endpoint-url", &self.endpoint(), "--output", "json"])
            .arg("--ca-bundle")
            .arg(&test_tls().ca_file)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir.0)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", secret.unwrap_or(SECRET))
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // One attempt: a refused call must surface as-is, not be retried (throttling).
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_PAGER", "");
        if secret.is_none() {
            cmd.arg("--no-sign-request");
        }
        let out = cmd.output().expect("run aws");
        AwsOutcome {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn aws(&self, args: &[&str]) -> AwsOutcome {
        self.aws_as(Some(SECRET), args)
    }

    /// Runs a successful call and returns its JSON output.
    fn aws_ok(&self, args: &[&str]) -> Value {
        let o = self.aws(args);
        assert!(o.ok, "aws {args:?} failed:\n{}", o.stderr);
        if o.stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
    }

    /// Asserts the call fails with `code` as the CLI reports it for `operation`.
    fn aws_err(&self, args: &[&str], code: &str, operation: &str) {
        let o = self.aws(args);
        o.assert_error(code, operation, args);
    }

    fn python(&self, args: &[&str]) -> Value {
        let out = Command::new(venv().join("bin/python"))
            .arg(repo().join("tests/helpers/boto3_flow_ops.py"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir.0)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("FLOWGATE_CA_FILE", &test_tls().ca_file)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "boto3 helper {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("helper prints JSON")
    }

    /// A SigV4-signed raw AWS JSON request (botocore's signer): (HTTP status, body).
    fn raw(&self, target: &str, body: &str) -> (u64, Value) {
        let v = self.python(&["raw", &self.endpoint(), target, body]);
        (v["status"].as_u64().unwrap(), v["body"].clone())
    }

    fn start_capture(&self, filters: &str) -> String {
        let v = self.aws_ok(&[
            "start-flow-capture",
            "--firewall-arn",
            ARN,
            "--flow-filters",
            filters,
        ]);
        assert_eq!(v["FirewallArn"], ARN);
        v["FlowOperationId"].as_str().unwrap().to_string()
    }

    /// Polls `describe-flow-operation` until the operation is settled.
    fn wait_settled(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = self.aws_ok(&[
                "describe-flow-operation",
                "--firewall-arn",
                ARN,
                "--flow-operation-id",
                id,
            ]);
            if d["FlowOperationStatus"] != "IN_PROGRESS" {
                return d;
            }
            assert!(Instant::now() < deadline, "operation {id} never settled");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn native_rows(&self, id: &str) -> BTreeSet<FlowRow> {
        let v = self
            .native()
            .call(
                "GET",
                &format!("/v1/operations/{id}/results"),
                "max=10000",
                None,
            )
            .unwrap();
        v["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["src"].as_str().unwrap().to_string(),
                    f["dst"].as_str().unwrap().to_string(),
                    f["src_port"].as_u64().unwrap() as u16,
                    f["dst_port"].as_u64().unwrap() as u16,
                    f["protocol"].as_u64().unwrap() as u8,
                    f["packets"].as_u64().unwrap(),
                    f["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Fault injection: worker `w` stops polling for `millis` (signed native call).
    fn stall(&self, w: usize, millis: u64) -> Value {
        self.native()
            .call(
                "POST",
                "/v1/debug/stall",
                &format!("worker={w}&millis={millis}"),
                None,
            )
            .unwrap_or_else(|e| panic!("stall: {e}"))
    }

    fn operations_started(&self) -> f64 {
        self.fg.metric("flowgate_operations_started_total", "")
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path("state/audit.log"))
            .or_else(|_| std::fs::read_to_string(self.dir.path("audit.log")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

struct AwsOutcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl AwsOutcome {
    fn assert_error(&self, code: &str, operation: &str, args: &[&str]) {
        assert!(
            !self.ok,
            "aws {args:?} should fail with {code}:\n{}",
            self.stdout
        );
        let want = format!("An error occurred ({code}) when calling the {operation} operation");
        assert!(
            self.stderr.contains(&want),
            "aws {args:?}: expected `{want}`, got:\n{}",
            self.stderr
        );
    }
}

/// An AWS `Flow` as a [`FlowRow`], with the host forms the API documents (/32, /128).
fn aws_row(f: &Value) -> FlowRow {
    let host = |a: &Value| {
        let s = a["AddressDefinition"].as_str().unwrap();
        let (ip, len) = s.split_once('/').expect("host form is CIDR");
        let is_v6 = ip.contains(':');
        assert_eq!(len, if is_v6 { "128" } else { "32" }, "{s}");
        ip.to_string()
    };
    let num = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    (
        host(&f["SourceAddress"]),
        host(&f["DestinationAddress"]),
        num(&f["SourcePort"]) as u16,
        num(&f["DestinationPort"]) as u16,
        num(&f["Protocol"]) as u8,
        f["PacketCount"].as_u64().unwrap(),
        f["ByteCount"].as_u64().unwrap(),
    )
}

/// The flows of [`traffic`] in 198.18.0.0/24 without their byte counts.
fn expected_v4() -> BTreeSet<(String, String, u16, u16, u8, u64)> {
    let mut s = BTreeSet::new();
    for i in 0..TCP_FLOWS {
        s.insert((
            "198.18.0.1".into(),
            "198.18.1.1".into(),
            40000 + i,
            80,
            6,
            1,
        ));
    }
    for i in 0..UDP_FLOWS {
        s.insert((
            "198.18.0.1".into(),
            "198.18.1.2".into(),
            5000 + i,
            53,
            17,
            u64::from(i % 3) + 1,
        ));
    }
    s
}

const V4_FILTER: &str = r#"[{"SourceAddress":{"AddressDefinition":"198.18.0.0/24"}}]"#;

#[test]
fn aws_cli_drives_all_actions_with_pagination_and_native_parity() {
    let fx = Fixture::start("awscli");

    // StartFlowCapture → DescribeFlowOperation.
    let id = fx.start_capture(V4_FILTER);
    assert_eq!(id.len(), 36);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == '-'));
    let d = fx.wait_settled(&id);
    assert_eq!(d["FlowOperationStatus"], "COMPLETED", "{d}");
    assert_eq!(d["FlowOperationType"], "FLOW_CAPTURE");
    assert_eq!(d["AvailabilityZone"], ZONE);
    // AvailabilityZoneId is not in the AWS CLI v1's copy of the model (its output drops
    // it); the boto3 scenario checks it.
    assert_eq!(d["FlowOperationId"], id.as_str());
    assert_eq!(
        d["FlowOperation"]["FlowFilters"][0]["SourceAddress"]["AddressDefinition"],
        "198.18.0.0/24"
    );
    assert!(d["FlowRequestTimestamp"].is_number() || d["FlowRequestTimestamp"].is_string());

    // ListFlowOperationResults, all pages (the CLI paginates with --page-size 7).
    let all = fx.aws_ok(&[
        "list-flow-operation-results",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &id,
        "--page-size",
        "7",
    ]);
    let rows: Vec<FlowRow> = all["Flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(aws_row)
        .collect();
    let set: BTreeSet<FlowRow> = rows.iter().cloned().collect();
    assert_eq!(
        rows.len(),
        set.len(),
        "a flow was listed twice across pages"
    );
    let got: BTreeSet<_> = set
        .iter()
        .map(|r| (r.0.clone(), r.1.clone(), r.2, r.3, r.4, r.5))
        .collect();
    assert_eq!(got, expected_v4(), "captured flows");
    for r in &set {
        assert!(r.6 >= 40 * r.5, "byte count {} for {} packets", r.6, r.5);
    }

    // Parity: the native API's results for the same operation are the same flows and counters.
    assert_eq!(
        fx.native_rows(&id),
        set,
        "AWS CLI and native results differ"
    );

    // --max-items stops early with a NextToken; --starting-token resumes exactly there.
    let first = fx.aws_ok(&[
        "list-flow-operation-results",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &id,
        "--max-items",
        "15",
        "--page-size",
        "4",
    ]);
    assert_eq!(first["Flows"].as_array().unwrap().len(), 15);
    let token = first["NextToken"]
        .as_str()
        .expect("NextToken after 15 items");
    let rest = fx.aws_ok(&[
        "list-flow-operation-results",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &id,
        "--starting-token",
        token,
        "--page-size",
        "4",
    ]);
    assert!(rest.get("NextToken").is_none_or(|t| t.is_null()), "{rest}");
    let resumed: Vec<FlowRow> = first["Flows"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["Flows"].as_array().unwrap())
        .map(aws_row)
        .collect();
    assert_eq!(resumed, rows, "paged listing differs from the full one");

    // The server honours MaxResults (one raw page).
    let page = fx.aws_ok(&[
        "list-flow-operation-results",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &id,
        "--no-paginate",
        "--max-results",
        "3",
    ]);
    assert_eq!(page["Flows"].as_array().unwrap().len(), 3);
    assert!(page["NextToken"].is_string());

    // StartFlowFlush of the UDP flows, with the zone given explicitly.
    let f = fx.aws_ok(&[
        "start-flow-flush",
        "--firewall-arn",
        ARN,
        "--availability-zone",
        ZONE,
        "--flow-filters",
        r#"[{"SourceAddress":{"AddressDefinition":"198.18.0.0/24"},"Protocols":["17"]}]"#,
    ]);
    let flush_id = f["FlowOperationId"].as_str().unwrap().to_string();
    let d = fx.wait_settled(&flush_id);
    assert_eq!(d["FlowOperationStatus"], "COMPLETED", "{d}");
    assert_eq!(d["FlowOperationType"], "FLOW_FLUSH");
    let flushed = fx.aws_ok(&[
        "list-flow-operation-results",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &flush_id,
    ]);
    let flushed: BTreeSet<FlowRow> = flushed["Flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(aws_row)
        .collect();
    let udp: BTreeSet<FlowRow> = set.iter().filter(|r| r.4 == 17).cloned().collect();
    assert_eq!(flushed, udp, "flush results are the UDP flows");
    assert_eq!(fx.native_rows(&flush_id), udp);

    // A capture after the flush sees only the TCP flows.
    let after = fx.start_capture(V4_FILTER);
    fx.wait_settled(&after);
    let left = fx.native_rows(&after);
    let tcp: BTreeSet<FlowRow> = set.iter().filter(|r| r.4 == 6).cloned().collect();
    assert_eq!(left, tcp, "flows left after the flush");

    // ListFlowOperations: newest first, type filter, --max-items/--page-size/--starting-token.
    let all_ops = fx.aws_ok(&[
        "list-flow-operations",
        "--firewall-arn",
        ARN,
        "--page-size",
        "1",
    ]);
    let ids: Vec<&str> = all_ops["FlowOperations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["FlowOperationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![after.as_str(), flush_id.as_str(), id.as_str()]);
    let captures = fx.aws_ok(&[
        "list-flow-operations",
        "--firewall-arn",
        ARN,
        "--flow-operation-type",
        "FLOW_CAPTURE",
        "--max-items",
        "1",
        "--page-size",
        "1",
    ]);
    let ops = captures["FlowOperations"].as_array().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["FlowOperationId"], after.as_str());
    assert_eq!(ops[0]["FlowOperationType"], "FLOW_CAPTURE");
    assert_eq!(ops[0]["FlowOperationStatus"], "COMPLETED");
    let more = fx.aws_ok(&[
        "list-flow-operations",
        "--firewall-arn",
        ARN,
        "--flow-operation-type",
        "FLOW_CAPTURE",
        "--starting-token",
        captures["NextToken"].as_str().expect("NextToken"),
    ]);
    let more: Vec<&str> = more["FlowOperations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["FlowOperationId"].as_str().unwrap())
        .collect();
    assert_eq!(more, vec![id.as_str()], "second page of captures");

    // The audit log has each start with the caller and the id it created.
    let audit = fx.audit();
    for (action, op) in [
        ("StartFlowCapture", &id),
        ("StartFlowFlush", &flush_id),
        ("StartFlowCapture", &after),
    ] {
        assert!(
            audit.iter().any(|a| a["action"] == action
                && a["operation_id"] == op.as_str()
                && a["outcome"] == "ok"
                && a["access_key_id"] == KEY_ID
                && a["source_address"] == "127.0.0.1"),
            "no audit record of {action} {op}: {audit:?}"
        );
    }
}

#[test]
fn aws_cli_reports_every_error_type_and_refused_credentials_start_nothing() {
    let mut fx = Fixture::start("awserr");
    let cap = |filters: &str| {
        vec![
            "start-flow-capture".to_string(),
            "--firewall-arn".into(),
            ARN.into(),
            "--flow-filters".into(),
            filters.into(),
        ]
    };
    let refs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let run_err = |args: Vec<String>, code: &str, op: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        fx.aws_err(&a, code, op);
    };
    let bad = "InvalidRequestException";
    // Malformed members the CLI passes through (it checks only types and required members).
    run_err(cap("[]"), bad, "StartFlowCapture");
    run_err(cap("[{}]"), bad, "StartFlowCapture");
    run_err(
        cap(r#"[{"DestinationPort":"80"}]"#),
        bad,
        "StartFlowCapture",
    );
    for cidr in [
        "198.18.0.1/33",
        "198.18.0.1/24",
        "198.18.300.0/24",
        "2001:2::/129",
    ] {
        run_err(
            cap(&format!(
                r#"[{{"SourceAddress":{{"AddressDefinition":"{cidr}"}}}}]"#
            )),
            bad,
            "StartFlowCapture",
        );
    }
    for port in ["70000", "90:80", "http", "-1", "1:2:3"] {
        run_err(
            cap(&format!(
                r#"[{{"SourceAddress":{{"AddressDefinition":"198.18.0.0/24"}},"DestinationPort":"{port}"}}]"#
            )),
            bad,
            "StartFlowCapture",
        );
    }
    run_err(
        cap(r#"[{"SourceAddress":{"AddressDefinition":"198.18.0.0/24"},"Protocols":["300"]}]"#),
        bad,
        "StartFlowCapture",
    );
    let f21 = format!(
        "[{}]",
        vec![r#"{"SourceAddress":{"AddressDefinition":"198.18.0.0/24"}}"#; 21].join(",")
    );
    run_err(cap(&f21), bad, "StartFlowCapture");
    let mut neg_age = cap(V4_FILTER);
    neg_age.extend(["--minimum-flow-age-in-seconds".into(), "-5".into()]);
    run_err(neg_age, bad, "StartFlowCapture");
    // Scope: another zone is invalid, another firewall is not found.
    let mut other_zone = refs(&cap(V4_FILTER));
    other_zone.extend(["--availability-zone".into(), "us-east-1z".into()]);
    run_err(other_zone, bad, "StartFlowCapture");
    fx.aws_err(
        &[
            "start-flow-flush",
            "--firewall-arn",
            "arn:aws:network-firewall:us-east-1:000000000000:firewall/someone-else",
            "--flow-filters",
            V4_FILTER,
        ],
        "ResourceNotFoundException",
        "StartFlowFlush",
    );
    // Operation ids: wrong pattern (36 characters, upper case) and unknown.
    let upper = "0F8FAD5B-D9CB-469F-A165-70867728950E";
    let unknown = "0f8fad5b-d9cb-469f-a165-70867728950e";
    fx.aws_err(
        &[
            "describe-flow-operation",
            "--firewall-arn",
            ARN,
            "--flow-operation-id",
            upper,
        ],
        bad,
        "DescribeFlowOperation",
    );
    fx.aws_err(
        &[
            "describe-flow-operation",
            "--firewall-arn",
            ARN,
            "--flow-operation-id",
            unknown,
        ],
        "ResourceNotFoundException",
        "DescribeFlowOperation",
    );
    fx.aws_err(
        &[
            "list-flow-operation-results",
            "--firewall-arn",
            ARN,
            "--flow-operation-id",
            unknown,
        ],
        "ResourceNotFoundException",
        "ListFlowOperationResults",
    );
    fx.aws_err(
        &[
            "list-flow-operations",
            "--firewall-arn",
            ARN,
            "--no-paginate",
            "--max-results",
            "101",
        ],
        bad,
        "ListFlowOperations",
    );
    fx.aws_err(
        &[
            "list-flow-operations",
            "--firewall-arn",
            ARN,
            "--no-paginate",
            "--next-token",
            "bm90LWEtdG9rZW4=",
        ],
        bad,
        "ListFlowOperations",
    );
    fx.aws_err(
        &["list-flow-operations", "--firewall-arn", &format!("{ARN}x")],
        "ResourceNotFoundException",
        "ListFlowOperations",
    );
    assert_eq!(
        fx.operations_started(),
        0.0,
        "a refused call started an operation"
    );

    // Throttling: worker 0 stalls, so the first capture stays IN_PROGRESS meanwhile. The
    // stall outlasts the four AWS CLI runs below even on a loaded machine (each is a Python
    // start-up), and stays under the config's worker_timeout_ms.
    assert_eq!(fx.stall(0, 20000)["stall_millis"], 20000);
    let running = fx.start_capture(V4_FILTER);
    for op in ["start-flow-capture", "start-flow-flush"] {
        let o = fx.aws(&[op, "--firewall-arn", ARN, "--flow-filters", V4_FILTER]);
        let name = if op == "start-flow-capture" {
            "StartFlowCapture"
        } else {
            "StartFlowFlush"
        };
        o.assert_error("ThrottlingException", name, &[op]);
    }
    let d = fx.aws_ok(&[
        "describe-flow-operation",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &running,
    ]);
    assert_eq!(
        d["FlowOperationStatus"], "IN_PROGRESS",
        "the stall did not hold the operation"
    );
    let pending = fx.aws_ok(&[
        "list-flow-operation-results",
        "--firewall-arn",
        ARN,
        "--flow-operation-id",
        &running,
    ]);
    assert_eq!(pending["Flows"], json!([]), "results while IN_PROGRESS");
    assert_eq!(
        fx.wait_settled(&running)["FlowOperationStatus"],
        "COMPLETED"
    );
    assert_eq!(
        fx.native_rows(&running).len(),
        usize::from(TCP_FLOWS + UDP_FLOWS)
    );

    // Raw requests (botocore's signer): unknown target, not JSON, wrong JSON type, oversized.
    let (st, b) = fx.raw("NetworkFirewall_20201112.DeleteFirewall", "{}");
    assert_eq!(
        (st, b["__type"].as_str()),
        (400, Some("UnknownOperationException")),
        "{b}"
    );
    let (st, b) = fx.raw("", "{}");
    assert_eq!(
        (st, b["__type"].as_str()),
        (400, Some("UnknownOperationException")),
        "{b}"
    );
    let (st, b) = fx.raw("NetworkFirewall_20201112.StartFlowCapture", "FirewallArn=x");
    assert_eq!(
        (st, b["__type"].as_str()),
        (400, Some("SerializationException")),
        "{b}"
    );
    let (st, b) = fx.raw("NetworkFirewall_20201112.StartFlowCapture", "[1,2]");
    assert_eq!(
        (st, b["__type"].as_str()),
        (400, Some("SerializationException")),
        "{b}"
    );
    let (st, b) = fx.raw(
        "NetworkFirewall_20201112.StartFlowCapture",
        &format!(r#"{{"FirewallArn":"{ARN}","FlowFilters":"all"}}"#),
    );
    assert_eq!(
        (st, b["__type"].as_str()),
        (400, Some("SerializationException")),
        "{b}"
    );
    let (st, b) = fx.raw("NetworkFirewall_20201112.StartFlowCapture", "@size:70000");
    assert_eq!(
        (st, b["__type"].as_str()),
        (413, Some("InvalidRequestException")),
        "{b}"
    );

    // Refused credentials: a wrong secret and an unsigned request; nothing starts.
    let before = fx.operations_started();
    let listed_before = fx.aws_ok(&["list-flow-operations", "--firewall-arn", ARN]);
    let wrong = fx.aws_as(
        Some("not-the-secret"),
        &[
            "start-flow-flush",
            "--firewall-arn",
            ARN,
            "--flow-filters",
            V4_FILTER,
        ],
    );
    wrong.assert_error(
        "InvalidSignatureException",
        "StartFlowFlush",
        &["wrong secret"],
    );
    let unsigned = fx.aws_as(
        None,
        &[
            "start-flow-flush",
            "--firewall-arn",
            ARN,
            "--flow-filters",
            V4_FILTER,
        ],
    );
    unsigned.assert_error(
        "MissingAuthenticationTokenException",
        "StartFlowFlush",
        &["unsigned"],
    );
    assert_eq!(
        fx.operations_started(),
        before,
        "a refused credential started an operation"
    );
    assert_eq!(
        fx.aws_ok(&["list-flow-operations", "--firewall-arn", ARN]),
        listed_before
    );
    assert_eq!(
        fx.native_rows(&running).len(),
        usize::from(TCP_FLOWS + UDP_FLOWS),
        "flows were flushed"
    );

    // Refusals are tallied per source and error type (written when their window closes,
    // here at shutdown), with a count and a sample action; nothing of the request's own
    // headers is copied.
    fx.fg.stop();
    let audit = fx.audit();
    let refused = |ty: &str| -> u64 {
        audit
            .iter()
            .filter(|a| a["outcome"] == "refused" && a["error_type"] == ty)
            .map(|a| a["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        refused(bad),
        3 + 4 + 5 + 1 + 1 + 1 + 1 + 1 + 2,
        "{audit:#?}"
    );
    assert_eq!(refused("ResourceNotFoundException"), 4, "{audit:#?}");
    assert_eq!(refused("ThrottlingException"), 2, "{audit:#?}");
    assert_eq!(refused("UnknownOperationException"), 2, "{audit:#?}");
    assert_eq!(refused("SerializationException"), 3, "{audit:#?}");
    assert_eq!(refused("InvalidSignatureException"), 1, "{audit:#?}");
    assert_eq!(
        refused("MissingAuthenticationTokenException"),
        1,
        "{audit:#?}"
    );
    assert!(audit.iter().any(|a| a["action"] == "StartFlowFlush"
        && a["error_type"] == "InvalidSignatureException"
        && a["access_key_id"] == KEY_ID
        && a["outcome"] == "refused"));
    assert!(audit.iter().all(
        |a| a["source_address"] == "127.0.0.1" && a["detail"].is_null()
            || a["outcome"] != "refused"
    ));
    assert!(audit.iter().any(|a| a["action"] == "StartFlowCapture"
        && a["operation_id"] == running.as_str()
        && a["outcome"] == "ok"));
}

/// What every SDK scenario (`boto3_flow_ops.py scenario`, `sdk/cbor_scenario.mjs`) must
/// show: a capture of the 40 IPv4 flows paged 4 at a time with the native API's results, a
/// flush of the UDP ones, the operations listed newest first, and the service's error codes.
fn assert_sdk_scenario(fx: &Fixture, v: &Value, client: &str) {
    assert_eq!(v["start_status"], "IN_PROGRESS", "{v}");
    let d = &v["describe"];
    assert_eq!(d["type"], "FLOW_CAPTURE");
    assert_eq!(d["status"], "COMPLETED");
    assert_eq!(d["zone"], ZONE);
    assert_eq!(
        d["filters"],
        json!([{"SourceAddress": {"AddressDefinition": "198.18.0.0/24"}}])
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ts = d["timestamp_epoch"].as_f64().unwrap();
    assert!(
        (now - ts).abs() < 120.0,
        "FlowRequestTimestamp {ts} vs now {now}"
    );
    // 40 flows in pages of 4.
    let pages: Vec<u64> = v["result_page_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(pages, vec![4; 10], "{v}");
    let row = |f: &Value| -> FlowRow {
        let s = |i: usize| f[i].as_str().unwrap().to_string();
        let ip = |i: usize| s(i).split('/').next().unwrap().to_string();
        (
            ip(0),
            ip(1),
            s(2).parse().unwrap(),
            s(3).parse().unwrap(),
            s(4).parse().unwrap(),
            f[5].as_u64().unwrap(),
            f[6].as_u64().unwrap(),
        )
    };
    let captured: BTreeSet<FlowRow> = v["flows"].as_array().unwrap().iter().map(row).collect();
    let id = v["capture_id"].as_str().unwrap();
    assert_eq!(
        captured,
        fx.native_rows(id),
        "{client} and native results differ"
    );
    assert_eq!(captured.len(), usize::from(TCP_FLOWS + UDP_FLOWS));
    assert_eq!(v["flush_status"], "COMPLETED");
    let flushed: BTreeSet<FlowRow> = v["flushed"].as_array().unwrap().iter().map(row).collect();
    let udp: BTreeSet<FlowRow> = captured.iter().filter(|r| r.4 == 17).cloned().collect();
    assert_eq!(flushed, udp);
    let flush_id = v["flush_id"].as_str().unwrap();
    assert_eq!(
        v["operations"],
        json!([[flush_id, "FLOW_FLUSH"], [id, "FLOW_CAPTURE"]]),
        "paginated list, newest first"
    );
    let e = &v["errors"];
    assert_eq!(e["bad_cidr"], "InvalidRequestException");
    assert_eq!(e["unknown_id"], "ResourceNotFoundException");
    assert_eq!(e["wrong_arn"], "ResourceNotFoundException");
}

#[test]
fn boto3_drives_all_actions_and_reports_error_codes() {
    let fx = Fixture::start("boto3");
    let v = fx.python(&["scenario", &fx.endpoint(), ARN, ZONE, ZONE_ID]);
    assert_sdk_scenario(&fx, &v, "boto3");
    assert_eq!(v["describe"]["zone_id"], ZONE_ID);
    assert_eq!(v["results_zone_ids"], json!([ZONE_ID]));
    assert_eq!(v["by_zone_id"], "vpce-0a1b2c3d", "{v}");
    let message = v["bad_cidr_message"].as_str().unwrap_or_default();
    assert!(message.contains("198.18.0.1/33"), "modelled Message: {v}");
    let e = &v["errors"];
    assert_eq!(e["both_zones"], "InvalidRequestException");
    assert_eq!(e["other_zone_id"], "InvalidRequestException");
    assert_eq!(e["bad_vpce"], "InvalidRequestException");
    assert_eq!(e["missing_filters"], "InvalidRequestException");
    assert_eq!(e["missing_arn"], "InvalidRequestException");
    assert_eq!(e["string_age"], "SerializationException");
    assert_eq!(fx.operations_started(), 2.0);
}

/// The SDK for JavaScript's install (`npm ci` in `tests/helpers/sdk`, done by scripts/test.sh).
fn js_sdk() -> PathBuf {
    let dir = repo().join("tests/helpers/sdk");
    assert!(
        dir.join("node_modules/@aws-sdk/client-network-firewall")
            .is_dir(),
        "no AWS SDK for JavaScript in {}: run scripts/test.sh, or `npm ci --prefix {}`",
        dir.display(),
        dir.display()
    );
    dir
}

#[test]
fn js_sdk_drives_all_actions_over_smithy_rpc_v2_cbor() {
    let sdk = js_sdk();
    let mut fx = Fixture::start("js-cbor");
    let out = Command::new("node")
        .arg(sdk.join("cbor_scenario.mjs"))
        .args([&fx.endpoint(), ARN, ZONE, KEY_ID, SECRET, REGION])
        .arg(&test_tls().ca_file)
        .current_dir(&sdk)
        .output()
        .expect("run node (apt-get install nodejs)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cbor_scenario.mjs failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).expect("scenario JSON");
    // It really was CBOR on the wire, both ways.
    assert_eq!(v["wire"]["protocols"], json!(["rpc-v2-cbor"]), "{v}");
    assert_eq!(
        v["wire"]["content_types"],
        json!(["application/cbor"]),
        "{v}"
    );
    assert!(v["wire"]["paths"].as_array().unwrap().iter().all(|p| p
        .as_str()
        .unwrap()
        .starts_with("/service/NetworkFirewall_20201112/operation/")));
    assert_sdk_scenario(&fx, &v, "the JavaScript SDK over CBOR");
    // The SDK turned the CBOR epoch-time tag into a Date.
    assert_eq!(v["describe"]["timestamp_is_date"], true, "{v}");
    let e = &v["errors"];
    assert_eq!(e["wrong_secret"], "InvalidSignatureException", "{v}");
    assert_eq!(
        fx.operations_started(),
        2.0,
        "the wrong secret started nothing"
    );
    fx.fg.stop(); // writes the refusal tallies
    let audit = fx.audit();
    assert!(audit.iter().any(|a| a["action"] == "StartFlowFlush"
        && a["operation_id"] == v["flush_id"]
        && a["outcome"] == "ok"));
    assert!(
        audit.iter().any(|a| a["action"] == "StartFlowCapture"
            && a["outcome"] == "refused"
            && a["error_type"] == "InvalidSignatureException"),
        "{audit:?}"
    );
}
