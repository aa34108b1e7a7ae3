//! Fuzzes the AWS resource actions (`resources::actions` through `aws_api::handle_with`,
//! JSON 1.0 and CBOR) with a real resource store in a scratch directory. Input layout: the
//! first byte picks the action (low bits) and the protocol (0x40: CBOR); the rest is the
//! body. Invariants beyond "does not panic": every response is an object, errors carry
//! `__type`, and the store on disk always reopens.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mgmt::audit::Audit;
use mgmt::aws_api::{handle_with, Protocol, Resources, CBOR_PATH_PREFIX, TARGET_PREFIX};
use mgmt::clock::Clock;
use mgmt::config::Config;
use mgmt::control::{Control, WorkerLink};
use mgmt::http::server::Request;
use mgmt::ops::OpsManager;
use mgmt::resources::{actions::ACTIONS, PolicyHost, ResourceManager};

struct Compiler;

impl PolicyHost for Compiler {
    fn apply_policy_file(&self, path: &Path, _caller: &str) -> Result<(), String> {
        mgmt::policy_mgr::compile(path, 1).map(|_| ())
    }
}

struct World {
    cfg: Config,
    dir: PathBuf,
    ops: std::sync::Arc<OpsManager>,
    mgr: ResourceManager,
    audit: Audit,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fg-fuzz-res-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::write(dir.join("p.toml"), "").expect("policy");
        let text = format!(
            "[appliance]\nfirewall_name = \"fw\"\nfirewall_arn = \"arn:aws:network-firewall:us-east-1:000000000000:firewall/fw\"\nzone = \"zone-a\"\nstate_dir = \"{}\"\n[eal]\nargs = [\"--no-huge\"]\n[[port_pair]]\na = \"net_null0\"\nb = \"net_null1\"\n[workers]\nlcores = [1]\n[policy]\nfile = \"p.toml\"\nsource = \"api\"\n[mgmt]\nauth = \"none\"\n",
            dir.display()
        );
        let cfg = Config::from_str(&text, &dir.join("fw.toml")).expect("fuzz config");
        let rings = std::sync::Arc::new(dataplane::worker::engine::WorkerRings::new(64, 64, 64));
        let link = WorkerLink { index: 0, lcore: 1, rings };
        let control = std::sync::Arc::new(Control::new(vec![link], std::time::Duration::from_secs(5)));
        let ops = OpsManager::new(&cfg, control, Clock::new(1000, || 1_000_000)).expect("ops");
        let (mgr, _) = ResourceManager::open(&cfg).expect("resources");
        World { cfg, dir, ops, mgr, audit: Audit::disabled() }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let action = ACTIONS[usize::from(pick & 0x3f) % ACTIONS.len()];
    let protocol = if pick & 0x40 == 0 { Protocol::Json } else { Protocol::Cbor };
    let (path, headers) = match protocol {
        Protocol::Json => ("/".to_string(), vec![("x-amz-target".into(), format!("{TARGET_PREFIX}{action}"))]),
        Protocol::Cbor => (format!("{CBOR_PATH_PREFIX}{action}"), vec![("smithy-protocol".into(), "rpc-v2-cbor".into())]),
    };
    let req = Request {
        method: "POST".into(),
        path,
        query: String::new(),
        headers,
        body: body.to_vec(),
        peer: "127.0.0.1:4000".parse().expect("addr"),
    };
    let res = Resources { mgr: &w.mgr, host: &Compiler };
    let resp = handle_with(&w.ops, &w.cfg, &req, "fuzz", &w.audit, protocol, Some(res));
    let json: serde_json::Value = match protocol {
        Protocol::Json => serde_json::from_slice(&resp.body).expect("response body is JSON"),
        Protocol::Cbor => mgmt::cbor::decode(&resp.body).expect("response body is CBOR"),
    };
    assert!(json.is_object(), "response is an object");
    if resp.status != 200 {
        assert!(json.get("__type").is_some(), "error without __type: {json}");
    }
    mgmt::resources::store::Store::open(&w.dir).expect("the store always reopens");
});
