//! The state directory is input too: the real binary restarted over a history with a
//! planted record whose id is a path (`../../victim`) skips it, reports it, and leaves the
//! files that id names untouched; an operation whose results file is corrupt answers
//! `InternalServerError` (HTTP 500), never an empty or short result.

mod common;

use common::*;
use serde_json::Value;

const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/hygiene";

fn config(dir: &TempDir, api: &str) -> String {
    write_pcap(&dir.path("in_a.pcap"), &[]);
    write_pcap(&dir.path("in_b.pcap"), &[]);
    let vdev = |i: usize, side: &str| {
        format!(
            "net_pcap{i},rx_pcap={},tx_pcap={}",
            dir.path(&format!("in_{side}.pcap")).display(),
            dir.path(&format!("out_{side}.pcap")).display()
        )
    };
    format!(
        r#"
[appliance]
firewall_name = "hygiene"
firewall_arn = "{ARN}"
zone = "z"
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
[policy]
file = "policy.toml"
[mgmt]
listen = "{api}"
auth = "none"
[logging]
flow_log = "flow.log"
alert_log = "alert.log"
audit_log = "audit.log"
"#,
        eal = eal_args(1, &[vdev(0, "a"), vdev(1, "b")])
    )
}

/// A scratch directory with an empty policy, and an API address (needs root).
fn setup(tag: &str) -> (TempDir, String) {
    require_root();
    let dir = TempDir::new(tag);
    std::fs::write(
        dir.path("policy.toml"),
        "[stateful]\nrule_order = \"default_action_order\"\n",
    )
    .unwrap();
    (dir, format!("127.0.0.1:{}", free_port()))
}

#[test]
fn planted_history_ids_are_never_paths_and_corrupt_results_are_internal_errors() {
    let (dir, api) = setup("hygiene");
    let cfg = config(&dir, &api);

    // A real completed operation, to plant records in its exact format.
    let mut fg = Appliance::start(dir.path("").as_path(), &cfg, &api);
    let (code, body) = http(
        "POST",
        &api,
        "/v1/operations/capture",
        r#"{"filters":[{"src":"198.18.0.0/15"}]}"#,
    );
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    fg.wait_for(20, "the capture to complete", |_| {
        http("GET", &api, &format!("/v1/operations/{id}"), "")
            .1
            .contains("\"COMPLETED\"")
    });
    fg.stop();

    let ops = dir.path("state/operations");
    let record: Value =
        serde_json::from_slice(&std::fs::read(ops.join(format!("{id}.json"))).unwrap()).unwrap();

    // Planted: an interrupted operation whose id climbs out of state_dir. Start-up settles
    // interrupted operations (cuts their results file, rewrites their record): with the id
    // used as a path that would truncate `victim.flows` and overwrite `victim.json` here.
    let mut evil = record.clone();
    evil["id"] = "../../victim".into();
    evil["status"] = "IN_PROGRESS".into();
    std::fs::write(ops.join("planted.json"), evil.to_string()).unwrap();
    for f in ["victim.flows", "victim.json"] {
        std::fs::write(dir.path(f), "precious operator data\n").unwrap();
    }
    // A valid id that does not name its file is refused as well.
    let mut renamed = record.clone();
    renamed["id"] = "0f8fad5b-d9cb-469f-a165-70867728950e".into();
    std::fs::write(ops.join("elsewhere.json"), renamed.to_string()).unwrap();

    // Corrupt results: the record says three results were kept; the file is scribbled.
    let mut kept = record.clone();
    kept["results_kept"] = 3.into();
    kept["flows_matched"] = 3.into();
    std::fs::write(ops.join(format!("{id}.json")), kept.to_string()).unwrap();
    std::fs::write(ops.join(format!("{id}.flows")), vec![0x5a; 400]).unwrap();

    let fg = Appliance::start(dir.path("").as_path(), &cfg, &api);
    let out = fg.output();
    assert!(
        out.contains("planted.json") && out.contains("not a valid operation id"),
        "the planted record is not reported:\n{out}"
    );
    assert!(
        out.contains("elsewhere.json") && out.contains("does not match the file name"),
        "{out}"
    );
    for f in ["victim.flows", "victim.json"] {
        assert_eq!(
            std::fs::read_to_string(dir.path(f)).unwrap(),
            "precious operator data\n",
            "{f} was touched"
        );
    }
    let (code, list) = http("GET", &api, "/v1/operations", "");
    assert_eq!(code, 200);
    assert!(
        !list.contains("victim") && !list.contains("0f8fad5b"),
        "{list}"
    );

    let (code, body) = http("GET", &api, &format!("/v1/operations/{id}/results"), "");
    assert_eq!(code, 500, "corrupt results answered {code}: {body}");
    assert!(body.contains("InternalServerError"), "{body}");
    assert!(body.contains("0 of 3 records intact"), "{body}");
}

/// DPDK makes its runtime directory (`/var/run/dpdk/<prefix>`) before it can fail: an
/// appliance whose EAL does not start (here a vdev no driver claims) must not leave the
/// one of its generated prefix behind, or every failed start adds a directory.
#[test]
fn a_failed_eal_start_leaves_no_runtime_directory() {
    let (dir, api) = setup("eal-fail");
    let cfg = config(&dir, &api)
        .replace("net_pcap0,rx_pcap", "net_nosuchdriver0,rx_pcap")
        .replace("\"net_pcap0\"", "\"net_nosuchdriver0\"");
    let mut cfg = cfg;
    cfg.push_str(&tls_section());
    std::fs::write(dir.path("flowgate.toml"), &cfg).unwrap();
    let child = std::process::Command::new(flowgate_bin())
        .arg("--config")
        .arg(dir.path("flowgate.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flowgate");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with a bogus vdev:\n{stderr}"
    );
    assert!(stderr.contains("EAL init failed"), "{stderr}");
    let runtime = std::path::PathBuf::from(format!("/var/run/dpdk/flowgate-{pid}"));
    assert!(!runtime.exists(), "{} left behind", runtime.display());
}
