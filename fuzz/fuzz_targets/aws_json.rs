//! Fuzzes the AWS API (`aws_api::handle`, JSON 1.0 and Smithy RPC v2 CBOR) with a real
//! operation manager over real worker rings (nobody plays the workers: started operations
//! time out). Input layout: the first byte picks the action (low bits), the protocol
//! (0x40: CBOR) and the method (0x80: GET); the rest is the request body.
//!
//! Invariants beyond "does not panic": every response is a JSON object with `__type` on
//! errors; a refused request (non-200) never sends a scan to a worker, i.e. never starts
//! an operation.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dataplane::worker::engine::WorkerRings;
use dataplane::worker::Command;
use libfuzzer_sys::fuzz_target;
use mgmt::audit::Audit;
use mgmt::aws_api::{handle, Protocol, CBOR_PATH_PREFIX, TARGET_PREFIX};
use mgmt::clock::Clock;
use mgmt::config::Config;
use mgmt::control::{Control, WorkerLink};
use api_server::Request;
use mgmt::ops::OpsManager;

const ACTIONS: [&str; 7] = [
    "StartFlowCapture",
    "StartFlowFlush",
    "DescribeFlowOperation",
    "ListFlowOperations",
    "ListFlowOperationResults",
    "DeleteFirewall",
    "",
];

struct World {
    cfg: Config,
    rings: Arc<WorkerRings>,
    ops: Arc<OpsManager>,
    audit: Audit,
}

fn now_ticks() -> u64 {
    1_000_000
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir: PathBuf = std::env::temp_dir().join(format!("fg-fuzz-aws-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let text = format!(
            r#"
[appliance]
firewall_name = "fw"
firewall_arn = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fw"
zone = "zone-a"
state_dir = "{}"
[eal]
args = ["--no-huge"]
[[port_pair]]
a = "net_null0"
b = "net_null1"
[workers]
lcores = [1]
[policy]
file = "p.toml"
[mgmt]
auth = "none"
[operations]
worker_timeout_ms = 1
"#,
            dir.display()
        );
        let cfg = Config::from_str(&text, &dir.join("fw.toml")).expect("fuzz config");
        let rings = Arc::new(WorkerRings::new(64, 64, 64));
        let link = WorkerLink {
            index: 0,
            lcore: 1,
            rings: Arc::clone(&rings),
        };
        let control = Arc::new(Control::new(vec![link], Duration::from_secs(5)));
        let ops = OpsManager::new(&cfg, control, Clock::new(1000, now_ticks)).expect("ops");
        World {
            cfg,
            rings,
            ops,
            audit: Audit::disabled(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let action = ACTIONS[usize::from(pick) % ACTIONS.len()];
    let protocol = if pick & 0x40 == 0 {
        Protocol::Json
    } else {
        Protocol::Cbor
    };
    let (path, headers) = match protocol {
        Protocol::Json => (
            "/".to_string(),
            vec![
                ("x-amz-target".into(), format!("{TARGET_PREFIX}{action}")),
                ("content-type".into(), "application/x-amz-json-1.0".into()),
            ],
        ),
        Protocol::Cbor => (
            format!("{CBOR_PATH_PREFIX}{action}"),
            vec![
                ("smithy-protocol".into(), "rpc-v2-cbor".into()),
                ("content-type".into(), "application/cbor".into()),
            ],
        ),
    };
    let req = Request {
        method: if pick & 0x80 == 0 { "POST" } else { "GET" }.into(),
        path,
        query: String::new(),
        headers,
        body: body.to_vec(),
        peer: "127.0.0.1:4000".parse().expect("addr"),
    };
    let resp = handle(&w.ops, &w.cfg, &req, "fuzz", &w.audit, protocol);
    let status = resp.status;
    let json: serde_json::Value = match protocol {
        Protocol::Json => serde_json::from_slice(&resp.body).expect("response body is JSON"),
        Protocol::Cbor => mgmt::cbor::decode(&resp.body).expect("response body is CBOR"),
    };
    assert!(json.is_object(), "response is a JSON object");
    if status != 200 {
        assert!(json.get("__type").is_some(), "error without __type: {json}");
    }
    let mut scans = 0;
    while let Some(cmd) = w.rings.commands.pop() {
        if matches!(cmd, Command::StartScan(_)) {
            scans += 1;
        }
    }
    assert!(
        status == 200 || scans == 0,
        "refused request ({status}) started a scan: {json}"
    );
    // Nobody answers: the worker timeout (1 ms) settles a started operation.
    std::thread::sleep(Duration::from_millis(if scans > 0 { 2 } else { 0 }));
    w.ops.tick();
});
