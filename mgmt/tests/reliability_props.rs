//! Property tests over the fuzzed surfaces (the CI-sized sibling of `fuzz/`): the policy
//! loader, the Suricata rules parser, the config loader, the SigV4 verifier and the AWS
//! JSON decoder never panic on hostile input, never accept what they must not, and a
//! refused API call never starts an operation. Regression inputs found by fuzzing live in
//! `regressions()` below.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use api_server::Request;
use dataplane::policy::{CompiledPolicy, Policy};
use dataplane::worker::engine::WorkerRings;
use dataplane::worker::Command;
use mgmt::audit::Audit;
use mgmt::clock::Clock;
use mgmt::config::Config;
use mgmt::control::{Control, WorkerLink};
use mgmt::ops::OpsManager;
use proptest::prelude::*;
use sigv4::{sign, verify, Credentials, KeyStore, VerifyRequest};

const LAB_CONFIG: &str = include_str!("../../configs/lab.toml");
const LAB_POLICY: &str = include_str!("../../configs/lab-policy.toml");
const LAB_RULES: &str = include_str!("../../configs/lab.rules");
const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fw";

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fg-relprops-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `text` with the byte range `at..at+len` replaced by `with` (on char boundaries).
fn mutate(text: &str, at: usize, len: usize, with: &str) -> String {
    let mut start = at % (text.len() + 1);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{with}{}", &text[..start], &text[end..])
}

fn load_policy(text: &str) {
    if let Ok(p) = Policy::from_toml_str(text, Path::new("/nonexistent/p.toml")) {
        let c = CompiledPolicy::compile(&p, 1);
        assert!(c.rules().len() >= p.rule_count());
    }
}

fn load_rules(dir: &Path, rules: &str) {
    std::fs::write(dir.join("r.rules"), rules).unwrap();
    let policy = "[stateless]\ndefault_action = \"forward_to_sfe\"\n[stateful]\nrule_order = \"strict_order\"\n[[stateful.rule_groups]]\nname = \"g\"\nrules_file = \"r.rules\"\n";
    if let Ok(p) = Policy::from_toml_str(policy, &dir.join("p.toml")) {
        CompiledPolicy::compile(&p, 1);
    }
}

struct Api {
    cfg: Config,
    rings: Arc<WorkerRings>,
    ops: Arc<OpsManager>,
}

fn ticks() -> u64 {
    1_000_000
}

fn api() -> Api {
    let dir = scratch("aws");
    let text = format!(
        "[appliance]\nfirewall_name = \"fw\"\nfirewall_arn = \"{ARN}\"\nzone = \"zone-a\"\nstate_dir = \"{}\"\n[eal]\nargs = []\n[[port_pair]]\na = \"a\"\nb = \"b\"\n[workers]\nlcores = [1]\n[policy]\nfile = \"p.toml\"\n[mgmt]\nauth = \"none\"\n[operations]\nworker_timeout_ms = 1\n",
        dir.display()
    );
    let cfg = Config::from_str(&text, &dir.join("fw.toml")).unwrap();
    let rings = Arc::new(WorkerRings::new(64, 64, 64));
    let link = WorkerLink {
        index: 0,
        lcore: 1,
        rings: Arc::clone(&rings),
    };
    let control = Arc::new(Control::new(vec![link], Duration::from_secs(5)));
    let ops = OpsManager::new(&cfg, control, Clock::new(1000, ticks)).unwrap();
    Api { cfg, rings, ops }
}

/// Calls the AWS API; returns the status and whether a scan was sent to the worker.
fn call(api: &Api, target: &str, body: &[u8]) -> (u16, bool) {
    let req = Request {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![(
            "x-amz-target".into(),
            format!("NetworkFirewall_20201112.{target}"),
        )],
        body: body.to_vec(),
        peer: "127.0.0.1:9".parse().unwrap(),
    };
    let resp = mgmt::aws_api::handle(
        &api.ops,
        &api.cfg,
        &req,
        "prop",
        &Audit::disabled(),
        mgmt::aws_api::Protocol::Json,
    );
    let v: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON response");
    assert!(v.is_object());
    let mut scanned = false;
    while let Some(c) = api.rings.commands.pop() {
        scanned |= matches!(c, Command::StartScan(_));
    }
    if scanned {
        // Nobody plays the worker: let the 1 ms worker timeout settle the operation.
        std::thread::sleep(Duration::from_millis(2));
        api.ops.tick();
    }
    (resp.status, scanned)
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        access_key_id: "AKIAPROP000000000001".into(),
        secret_access_key: secret.into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn config_loader_never_panics_on_mutated_lab_config(
        at in 0usize..4000, len in 0usize..40, with in "[\\PC\n\\[\\]=\"]{0,20}"
    ) {
        let text = mutate(LAB_CONFIG, at, len, &with);
        let _ = Config::from_str(&text, Path::new("/nonexistent/fg.toml")).map_err(|e| e.to_string());
    }

    #[test]
    fn policy_loader_never_panics_on_mutated_lab_policy(
        at in 0usize..4000, len in 0usize..40, with in "[\\PC\n\\[\\]=\"]{0,20}"
    ) {
        load_policy(&mutate(LAB_POLICY, at, len, &with));
    }

    #[test]
    fn rules_parser_never_panics_on_mutated_lab_rules(
        at in 0usize..4000, len in 0usize..40, with in "[\\PC\n;:()\"!\\[\\]$]{0,24}"
    ) {
        load_rules(&scratch("rules"), &mutate(LAB_RULES, at, len, &with));
    }

    #[test]
    fn sigv4_refuses_unsigned_guesses_and_accepts_its_own_signatures(
        path in "/[a-zA-Z0-9/_.~-]{0,30}",
        query in "([a-z]{1,5}=[a-zA-Z0-9]{0,5}(&[a-z]{1,5}=[a-z0-9]{0,5}){0,3})?",
        body in proptest::collection::vec(any::<u8>(), 0..200),
        sig in "[0-9a-f]{64}",
    ) {
        let keys = KeyStore::new(vec![creds("prop-secret")]);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = vec![("host".to_string(), "127.0.0.1:8480".to_string())];
        sign("POST", "127.0.0.1:8480", &path, &query, &mut headers, &body, &creds("prop-secret"), "us-east-1", "network-firewall", now);
        let req = VerifyRequest { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
        prop_assert!(verify(&req, &keys, "us-east-1", "network-firewall", now).is_ok());
        // Same request, guessed signature: refused.
        let forged: Vec<(String, String)> = headers.iter().map(|(n, v)| {
            if n == "authorization" {
                let cut = v.rfind("Signature=").unwrap() + "Signature=".len();
                (n.clone(), format!("{}{sig}", &v[..cut]))
            } else { (n.clone(), v.clone()) }
        }).collect();
        let req = VerifyRequest { headers: &forged, ..req };
        prop_assert!(verify(&req, &keys, "us-east-1", "network-firewall", now).is_err());
        // Signed with another secret: refused; a changed body: refused.
        let mut other = vec![("host".to_string(), "127.0.0.1:8480".to_string())];
        sign("POST", "127.0.0.1:8480", &path, &query, &mut other, &body, &creds("wrong"), "us-east-1", "network-firewall", now);
        let req = VerifyRequest { headers: &other, ..req };
        prop_assert!(verify(&req, &keys, "us-east-1", "network-firewall", now).is_err());
        let mut tampered = body.clone();
        tampered.push(b'x');
        let req = VerifyRequest { headers: &headers, body: &tampered, ..req };
        prop_assert!(verify(&req, &keys, "us-east-1", "network-firewall", now).is_err());
    }

    #[test]
    fn sigv4_never_panics_on_hostile_headers(auth in "\\PC{0,200}", date in "\\PC{0,20}") {
        let keys = KeyStore::new(vec![creds("prop-secret")]);
        let headers = vec![("authorization".to_string(), auth), ("x-amz-date".to_string(), date)];
        let req = VerifyRequest { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
        prop_assert!(verify(&req, &keys, "us-east-1", "network-firewall", UNIX_EPOCH + Duration::from_secs(1_700_000_000)).is_err());
    }

    #[test]
    fn refused_aws_calls_never_start_an_operation(
        target in prop_oneof![Just("StartFlowCapture"), Just("StartFlowFlush"), Just("ListFlowOperations"), Just("Bogus")],
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..100),
            "\\{\"FirewallArn\":\"[a-z:/0-9-]{0,60}\",\"FlowFilters\":\\[\\{\"SourceAddress\":\\{\"AddressDefinition\":\"[0-9./:a-f]{0,20}\"\\}\\}\\]\\}".prop_map(String::into_bytes),
        ],
    ) {
        let api = api();
        let (status, scanned) = call(&api, target, &body);
        prop_assert!(status == 200 || !scanned, "refused ({}) but started a scan", status);
    }
}

/// Inputs the fuzzers found (or that sit on parser edges); each must be refused cleanly.
#[test]
fn regressions() {
    for policy in [
        "",
        "[stateful]\nrule_order = \"strict_order\"\n[[stateful.rule_groups]]\nname = \"\"\n",
        "[variables]\nA = [\"$A\"]\n",
        "[variables]\nA = [\"$B\"]\nB = [\"$A\"]\n",
        "[[stateless.rules]]\npriority = 4294967295\naction = \"drop\"\nsources = [\"::/0\"]\n",
    ] {
        load_policy(policy);
    }
    let dir = scratch("regress");
    for rules in [
        "pass tcp any any -> any any (sid:0;)",
        "drop tcp [!any] any -> any any (sid:1;)",
        "alert ip any [1:65535,!1:65535] -> any any (sid:2;)",
        "pass tcp any any -> any any (msg:\"\\\"; sid:3;)",
        "pass tcp any any -> any any (sid:4294967296;)",
        "pass tcp 0.0.0.0/33 any -> any any (sid:5;)",
    ] {
        load_rules(&dir, rules);
    }
    let api = api();
    for body in [
        &b"{\"FirewallArn\":1e999}"[..],
        b"[]",
        b"\"\"",
        b"{\"FlowFilters\":null}",
    ] {
        let (status, scanned) = call(&api, "StartFlowCapture", body);
        assert!(status >= 400 && !scanned, "{status}");
    }
}
