//! The AWS JSON 1.0 API: request and response shapes of the five actions, and every error
//! case, by calling `aws_api::handle` with constructed requests (workers played by the test).

mod ops_support;

use std::net::SocketAddr;

use api_server::{Request, Response};
use mgmt::audit::Audit;
use mgmt::aws_api;
use mgmt::config::LogTarget;
use ops_support::*;
use serde_json::{json, Value};

struct Api {
    h: Harness,
    audit: Audit,
}

fn peer() -> SocketAddr {
    "127.0.0.1:40123".parse().unwrap()
}

fn raw(target: Option<&str>, method: &str, body: &[u8]) -> Request {
    let mut headers = vec![(
        "content-type".to_string(),
        "application/x-amz-json-1.0".to_string(),
    )];
    if let Some(t) = target {
        headers.push(("x-amz-target".into(), t.into()));
    }
    Request {
        method: method.into(),
        path: "/".into(),
        query: String::new(),
        headers,
        body: body.to_vec(),
        peer: peer(),
    }
}

impl Api {
    fn new(tag: &str, workers: usize, operations: &str) -> Api {
        let h = Harness::new(tag, workers, operations);
        let audit =
            Audit::open(Some(LogTarget::File(h.dir.0.join("audit.log"))), 1 << 20, 2).unwrap();
        Api { h, audit }
    }

    fn send(&self, req: &Request) -> (u16, Value) {
        let r: Response = aws_api::handle(
            &self.h.ops,
            &self.h.cfg,
            req,
            "AKIDTEST",
            &self.audit,
            aws_api::Protocol::Json,
        );
        assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.0"));
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    /// Calls `action` with `body` plus this appliance's FirewallArn (unless `body` sets one).
    fn call(&self, action: &str, mut body: Value) -> (u16, Value) {
        if body.get("FirewallArn").is_none() {
            body["FirewallArn"] = json!(ARN);
        }
        let target = format!("NetworkFirewall_20201112.{action}");
        self.send(&raw(Some(&target), "POST", body.to_string().as_bytes()))
    }

    fn ok(&self, action: &str, body: Value) -> Value {
        let (status, v) = self.call(action, body);
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Asserts an error of `kind` with HTTP `status`; returns its message.
    fn err(&self, action: &str, body: Value, status: u16, kind: &str) -> String {
        let (s, v) = self.call(action, body);
        assert_eq!(
            (s, v["__type"].as_str().unwrap_or("")),
            (status, kind),
            "{v}"
        );
        v["message"].as_str().unwrap().to_string()
    }

    /// The audit log, refusal tallies included (written now).
    fn audit_lines(&self) -> Vec<Value> {
        self.audit.flush();
        std::fs::read_to_string(self.h.dir.0.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Starts a capture and completes it with `flows` played results.
    fn completed_capture(&self, flows: &[dataplane::worker::FlowRecord]) -> String {
        let v = self.ok(
            "StartFlowCapture",
            json!({"FlowFilters": [{"SourceAddress": {"AddressDefinition": "0.0.0.0/0"}}]}),
        );
        let id = v["FlowOperationId"].as_str().unwrap().to_string();
        let op = self.h.take_scan(0).op;
        for f in flows {
            self.h.flow(0, op, *f);
        }
        self.h.done(0, op, 10, flows.len() as u64);
        id
    }
}

fn filter_src(cidr: &str) -> Value {
    json!({"SourceAddress": {"AddressDefinition": cidr}})
}

#[test]
fn start_flow_capture_and_describe_have_the_service_shapes() {
    let api = Api::new("aws-start", 1, "");
    let filters = json!([{
        "SourceAddress": {"AddressDefinition": "198.18.0.0/24"},
        "DestinationAddress": {"AddressDefinition": "198.18.1.0/24"},
        "SourcePort": "ANY",
        "DestinationPort": "80:90",
        "Protocols": ["6", "17"]
    }]);
    let v = api.ok(
        "StartFlowCapture",
        json!({
            "FlowFilters": filters,
            "MinimumFlowAgeInSeconds": 60,
            "AvailabilityZone": ZONE,
            "VpcEndpointId": "vpce-0123456789abcdef0",
            "SomeFutureMember": true
        }),
    );
    let id = v["FlowOperationId"].as_str().unwrap().to_string();
    assert_eq!(
        v,
        json!({"FirewallArn": ARN, "FlowOperationId": id, "FlowOperationStatus": "IN_PROGRESS"})
    );
    let scan = api.h.take_scan(0);
    assert_eq!(scan.filter.min_age_ticks, 60 * TPS);
    assert_eq!(scan.filter.filters[0].protocol_list(), vec![6, 17]);

    let d = api.ok(
        "DescribeFlowOperation",
        json!({"FlowOperationId": id, "VpcEndpointId": "vpce-0123456789abcdef0"}),
    );
    assert_eq!(d["FirewallArn"], ARN);
    assert_eq!(d["AvailabilityZone"], ZONE);
    assert_eq!(d["VpcEndpointId"], "vpce-0123456789abcdef0");
    assert_eq!(d["FlowOperationId"], id.as_str());
    assert_eq!(d["FlowOperationType"], "FLOW_CAPTURE");
    assert_eq!(d["FlowOperationStatus"], "IN_PROGRESS");
    assert!(d.get("StatusMessage").is_none());
    let ts = d["FlowRequestTimestamp"]
        .as_f64()
        .expect("epoch seconds as a number");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 60.0, "{ts}");
    assert_eq!(
        d["FlowOperation"],
        json!({"MinimumFlowAgeInSeconds": 60, "FlowFilters": filters})
    );

    api.h.done(0, scan.op, 5, 0);
    let d = api.ok("DescribeFlowOperation", json!({"FlowOperationId": id}));
    assert_eq!(d["FlowOperationStatus"], "COMPLETED");

    let audit = api.audit_lines();
    assert_eq!(audit[0]["action"], "StartFlowCapture");
    assert_eq!(audit[0]["access_key_id"], "AKIDTEST");
    assert_eq!(audit[0]["source_address"], "127.0.0.1");
    assert_eq!(audit[0]["operation_id"], id.as_str());
    assert_eq!(audit[0]["outcome"], "ok");
    // Reads are audited too, as CloudTrail records them.
    assert!(audit[1..]
        .iter()
        .all(|l| l["action"] == "DescribeFlowOperation" && l["read_only"] == true));
    assert_eq!(audit.len(), 3, "{audit:?}");
}

#[test]
fn start_flow_flush_is_a_flush() {
    let api = Api::new("aws-flush", 1, "");
    let v = api.ok(
        "StartFlowFlush",
        json!({"FlowFilters": [filter_src("2001:2::/48")], "AvailabilityZone": ZONE}),
    );
    assert_eq!(
        api.h.take_scan(0).kind,
        dataplane::worker::cmd::ScanKind::Flush
    );
    let d = api.ok(
        "DescribeFlowOperation",
        json!({"FlowOperationId": v["FlowOperationId"]}),
    );
    assert_eq!(d["FlowOperationType"], "FLOW_FLUSH");
    assert_eq!(d["FlowOperation"]["MinimumFlowAgeInSeconds"], 0);
}

#[test]
fn list_flow_operation_results_renders_flows_and_pages() {
    let api = Api::new("aws-results", 1, "");
    let mut icmp = record("198.18.0.9", 0, "198.18.1.9", 0, 5, 0);
    icmp.tuple.proto = 1;
    icmp.tuple.src_port = 8; // ICMP type/code/id are not ports to AWS
    let mut big = record("2001:2::1", 5000, "2001:2::2", 443, 3, 0);
    big.pkts = [u64::from(u32::MAX), 5];
    big.bytes = [u64::MAX, 1];
    let id = api.completed_capture(&[
        record("198.18.0.1", 40000, "198.18.1.1", 80, 30, 0),
        icmp,
        big,
    ]);
    let v = api.ok(
        "ListFlowOperationResults",
        json!({"FlowOperationId": id, "MaxResults": 2}),
    );
    assert_eq!(v["FirewallArn"], ARN);
    assert_eq!(v["AvailabilityZone"], ZONE);
    assert_eq!(v["FlowOperationId"], id.as_str());
    assert_eq!(v["FlowOperationStatus"], "COMPLETED");
    assert!(v["FlowRequestTimestamp"].is_f64());
    assert!(v.get("FlowOperationType").is_none());
    let flows = v["Flows"].as_array().unwrap();
    assert_eq!(flows.len(), 2);
    assert_eq!(
        flows[0],
        json!({
            "SourceAddress": {"AddressDefinition": "198.18.0.1/32"},
            "DestinationAddress": {"AddressDefinition": "198.18.1.1/32"},
            "SourcePort": "40000",
            "DestinationPort": "80",
            "Protocol": "6",
            "Age": 30,
            "PacketCount": 15,
            "ByteCount": 2200
        })
    );
    assert_eq!(flows[1]["SourcePort"], "0");
    assert_eq!(flows[1]["Protocol"], "1");
    let token = v["NextToken"].as_str().unwrap();
    let v = api.ok(
        "ListFlowOperationResults",
        json!({"FlowOperationId": id, "MaxResults": 2, "NextToken": token}),
    );
    let flows = v["Flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1);
    assert!(v.get("NextToken").is_none());
    assert_eq!(
        flows[0]["SourceAddress"]["AddressDefinition"],
        "2001:2::1/128"
    );
    assert_eq!(flows[0]["PacketCount"], i32::MAX, "int32 saturates");
    assert_eq!(flows[0]["ByteCount"], i64::MAX, "int64 saturates");
}

#[test]
fn results_of_an_operation_in_progress_are_empty() {
    let api = Api::new("aws-inprog", 1, "");
    let v = api.ok(
        "StartFlowCapture",
        json!({"FlowFilters": [filter_src("198.18.0.0/15")]}),
    );
    let op = api.h.take_scan(0).op;
    api.h.flow(0, op, nth(1, 0));
    let r = api.ok(
        "ListFlowOperationResults",
        json!({"FlowOperationId": v["FlowOperationId"]}),
    );
    assert_eq!(r["FlowOperationStatus"], "IN_PROGRESS");
    assert_eq!(r["Flows"], json!([]));
}

#[test]
fn list_flow_operations_is_newest_first_filtered_and_paged() {
    let api = Api::new("aws-list", 1, "");
    let a = api.completed_capture(&[]);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let f = api.ok(
        "StartFlowFlush",
        json!({"FlowFilters": [filter_src("198.18.0.0/15")]}),
    );
    let op = api.h.take_scan(0).op;
    api.h.done(0, op, 1, 0);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let c = api.completed_capture(&[]);

    let v = api.ok("ListFlowOperations", json!({"MaxResults": 2}));
    let items = v["FlowOperations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["FlowOperationId"], c.as_str());
    assert_eq!(items[1]["FlowOperationId"], f["FlowOperationId"]);
    assert_eq!(items[0]["FlowOperationType"], "FLOW_CAPTURE");
    assert_eq!(items[0]["FlowOperationStatus"], "COMPLETED");
    assert!(items[0]["FlowRequestTimestamp"].is_f64());
    assert_eq!(items[0].as_object().unwrap().len(), 4);
    let v = api.ok(
        "ListFlowOperations",
        json!({"MaxResults": 2, "NextToken": v["NextToken"]}),
    );
    assert_eq!(v["FlowOperations"][0]["FlowOperationId"], a.as_str());
    assert!(v.get("NextToken").is_none());

    let v = api.ok(
        "ListFlowOperations",
        json!({"FlowOperationType": "FLOW_FLUSH"}),
    );
    assert_eq!(v["FlowOperations"].as_array().unwrap().len(), 1);
    let m = api.err(
        "ListFlowOperations",
        json!({"FlowOperationType": "FLOW_EXPLODE"}),
        400,
        "InvalidRequestException",
    );
    assert!(m.contains("FlowOperationType"), "{m}");
}

#[test]
fn protocol_level_errors() {
    let api = Api::new("aws-proto", 1, "");
    let body = json!({"FirewallArn": ARN}).to_string();
    let cases: Vec<(Request, u16, &str)> = vec![
        (
            raw(
                Some("NetworkFirewall_20201112.DeleteFirewall"),
                "POST",
                body.as_bytes(),
            ),
            400,
            "UnknownOperationException",
        ),
        (
            raw(Some("Bogus.StartFlowCapture"), "POST", body.as_bytes()),
            400,
            "UnknownOperationException",
        ),
        (
            raw(None, "POST", body.as_bytes()),
            400,
            "UnknownOperationException",
        ),
        (
            raw(
                Some("NetworkFirewall_20201112.ListFlowOperations"),
                "POST",
                b"{not json",
            ),
            400,
            "SerializationException",
        ),
        (
            raw(
                Some("NetworkFirewall_20201112.ListFlowOperations"),
                "POST",
                b"[1,2]",
            ),
            400,
            "SerializationException",
        ),
        (
            raw(
                Some("NetworkFirewall_20201112.ListFlowOperations"),
                "GET",
                body.as_bytes(),
            ),
            400,
            "InvalidRequestException",
        ),
    ];
    for (req, status, kind) in cases {
        let (s, v) = api.send(&req);
        assert_eq!((s, v["__type"].as_str().unwrap()), (status, kind), "{v}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    // An empty body is an empty structure: FirewallArn is then missing.
    let (s, v) = api.send(&raw(
        Some("NetworkFirewall_20201112.ListFlowOperations"),
        "POST",
        b"",
    ));
    assert_eq!(
        (s, v["__type"].as_str().unwrap()),
        (400, "InvalidRequestException")
    );
    assert_eq!(v["message"], "FirewallArn: missing required parameter");
    // Refused calls are audited as tallies per source and error type.
    let audit = api.audit_lines();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert!(audit.iter().all(|l| l["outcome"] == "refused"));
    assert_eq!(audit[0]["error_type"], "UnknownOperationException");
    assert_eq!(audit[0]["action"], "DeleteFirewall");
    let total: u64 = audit.iter().map(|l| l["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 7);
}

#[test]
fn scope_errors() {
    let api = Api::new("aws-scope", 1, "");
    let list = |body: Value| api.call("ListFlowOperations", body);
    let m = api.err(
        "ListFlowOperations",
        json!({"FirewallArn": "arn:aws:network-firewall:us-east-1:000000000000:firewall/other"}),
        400,
        "ResourceNotFoundException",
    );
    assert!(m.contains("firewall/other"), "{m}");
    for bad in ["", "not-an-arn", &format!("arn:aws:{}", "x".repeat(300))] {
        api.err(
            "ListFlowOperations",
            json!({"FirewallArn": bad}),
            400,
            "InvalidRequestException",
        );
    }
    api.err(
        "ListFlowOperations",
        json!({"FirewallArn": 5}),
        400,
        "SerializationException",
    );
    let m = api.err(
        "ListFlowOperations",
        json!({"AvailabilityZone": "zone-b"}),
        400,
        "InvalidRequestException",
    );
    assert!(
        m.starts_with("AvailabilityZone: 'zone-b' is not this firewall's"),
        "{m}"
    );
    api.err(
        "ListFlowOperations",
        json!({"AvailabilityZoneId": "use1-az9"}),
        400,
        "InvalidRequestException",
    );
    api.err(
        "ListFlowOperations",
        json!({"VpcEndpointAssociationArn": "nope"}),
        400,
        "InvalidRequestException",
    );
    assert_eq!(list(json!({"AvailabilityZone": ZONE})).0, 200);
}

#[test]
fn start_validation_errors_name_the_field() {
    let api = Api::new("aws-valid", 1, "");
    let start = |body: Value| api.err("StartFlowCapture", body, 400, "InvalidRequestException");
    assert_eq!(start(json!({})), "FlowFilters: missing required parameter");
    assert_eq!(
        start(json!({"FlowFilters": []})),
        "FlowFilters: at least 1 filter is required"
    );
    let many: Vec<Value> = (0..21).map(|_| filter_src("198.18.0.0/24")).collect();
    assert_eq!(
        start(json!({"FlowFilters": many})),
        "FlowFilters: at most 20 filters are allowed, got 21"
    );
    let m = start(json!({"FlowFilters": [filter_src("198.18.0.300/24")]}));
    assert!(
        m.starts_with("FlowFilters[0].SourceAddress.AddressDefinition: '198.18.0.300/24'"),
        "{m}"
    );
    let m = start(json!({"FlowFilters": [
        filter_src("198.18.0.0/24"),
        filter_src("198.18.0.0/24"),
        {"DestinationAddress": {"AddressDefinition": "198.18.1.0/24"}, "DestinationPort": "70000"}
    ]}));
    assert!(
        m.starts_with("FlowFilters[2].DestinationPort: '70000' is not a valid port"),
        "{m}"
    );
    let m = start(json!({"FlowFilters": [{"SourcePort": "80"}]}));
    assert!(
        m.starts_with("FlowFilters[0]: a filter needs at least one address"),
        "{m}"
    );
    let m = start(json!({"FlowFilters": [{"SourceAddress": {}}]}));
    assert_eq!(
        m,
        "FlowFilters[0].SourceAddress.AddressDefinition: missing required parameter"
    );
    let m = start(
        json!({"FlowFilters": [{"SourceAddress": {"AddressDefinition": "198.18.0.0/24"}, "Protocols": ["tcpx"]}]}),
    );
    assert!(m.starts_with("FlowFilters[0].Protocols[0]: 'tcpx'"), "{m}");
    let m =
        start(json!({"FlowFilters": [filter_src("198.18.0.0/24")], "MinimumFlowAgeInSeconds": -1}));
    assert!(
        m.starts_with("MinimumFlowAgeInSeconds: -1 is out of range"),
        "{m}"
    );
    for body in [
        json!({"FlowFilters": "x"}),
        json!({"FlowFilters": ["x"]}),
        json!({"FlowFilters": [{"SourceAddress": "198.18.0.0/24"}]}),
        json!({"FlowFilters": [{"SourceAddress": {"AddressDefinition": "198.18.0.0/24"}, "Protocols": [6]}]}),
        json!({"FlowFilters": [filter_src("198.18.0.0/24")], "MinimumFlowAgeInSeconds": 1.5}),
    ] {
        api.err("StartFlowCapture", body, 400, "SerializationException");
    }
    assert!(api.h.rings[0].commands.is_empty(), "nothing was started");
    let audit = api.audit_lines();
    assert!(audit
        .iter()
        .all(|l| l["outcome"] == "refused" && l["operation_id"].is_null()));
}

#[test]
fn operation_id_pagination_and_throttling_errors() {
    let api = Api::new("aws-ids", 1, "");
    for action in ["DescribeFlowOperation", "ListFlowOperationResults"] {
        api.err(action, json!({}), 400, "InvalidRequestException");
        let m = api.err(
            action,
            json!({"FlowOperationId": "ABC"}),
            400,
            "InvalidRequestException",
        );
        assert!(
            m.starts_with("FlowOperationId: 'ABC' does not match"),
            "{m}"
        );
        let m = api.err(
            action,
            json!({"FlowOperationId": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
            400,
            "ResourceNotFoundException",
        );
        assert!(m.contains("0f8fad5b-d9cb-469f-a165-70867728950e"), "{m}");
    }
    for max in [0, 101, -1] {
        let m = api.err(
            "ListFlowOperations",
            json!({"MaxResults": max}),
            400,
            "InvalidRequestException",
        );
        assert!(m.starts_with("MaxResults"), "{m}");
    }
    for token in ["has spaces", "", "Zm9v"] {
        let m = api.err(
            "ListFlowOperations",
            json!({"NextToken": token}),
            400,
            "InvalidRequestException",
        );
        assert!(m.starts_with("NextToken"), "{m}");
    }

    let first = api.ok(
        "StartFlowCapture",
        json!({"FlowFilters": [filter_src("198.18.0.0/15")]}),
    );
    let m = api.err(
        "StartFlowFlush",
        json!({"FlowFilters": [filter_src("198.18.0.0/15")]}),
        429,
        "ThrottlingException",
    );
    assert!(
        m.contains(first["FlowOperationId"].as_str().unwrap()),
        "{m}"
    );
    let audit = api.audit_lines();
    let refusal = audit
        .iter()
        .find(|l| l["outcome"] == "refused" && l["error_type"] == "ThrottlingException")
        .unwrap();
    assert_eq!(refusal["action"], "StartFlowFlush");
    assert_eq!(refusal["count"], 1);
}

#[test]
fn status_messages_stay_within_the_aws_pattern() {
    let api = Api::new("aws-msg", 2, "worker_timeout_ms = 50\nresult_cap = 1");
    let v = api.ok(
        "StartFlowCapture",
        json!({"FlowFilters": [filter_src("198.18.0.0/15")]}),
    );
    let op = api.h.take_scan(0).op;
    api.h.take_scan(1);
    api.h.flow(0, op, nth(1, 0));
    api.h.flow(0, op, nth(2, 0)); // beyond the cap
    std::thread::sleep(std::time::Duration::from_millis(80));
    api.h.ops.tick(); // and both workers time out
    let d = api.ok(
        "DescribeFlowOperation",
        json!({"FlowOperationId": v["FlowOperationId"]}),
    );
    assert_eq!(d["FlowOperationStatus"], "COMPLETED_WITH_ERRORS");
    let msg = d["StatusMessage"].as_str().unwrap();
    assert_eq!(msg, "Flow timeout");
    let r = api.ok(
        "ListFlowOperationResults",
        json!({"FlowOperationId": v["FlowOperationId"]}),
    );
    assert_eq!(r["StatusMessage"], msg);
    assert_eq!(r["Flows"].as_array().unwrap().len(), 1);

    let api = Api::new("aws-msg2", 1, "result_cap = 1");
    let v = api.ok(
        "StartFlowCapture",
        json!({"FlowFilters": [filter_src("198.18.0.0/15")]}),
    );
    let op = api.h.take_scan(0).op;
    api.h.flow(0, op, nth(1, 0));
    api.h.flow(0, op, nth(2, 0));
    api.h.cancelled(0, op);
    let d = api.ok(
        "DescribeFlowOperation",
        json!({"FlowOperationId": v["FlowOperationId"]}),
    );
    let msg = d["StatusMessage"].as_str().unwrap();
    assert_eq!(msg, "Result cap of 1 flows reached");
    for m in ["Flow timeout", msg, "Flow operation error"] {
        assert!(
            m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b' '),
            "{m}"
        );
    }
}
