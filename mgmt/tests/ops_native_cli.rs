//! The native `/v1/operations` API and `flowgatectl` end to end: a real HTTP server whose
//! handler verifies SigV4 and serves `native_api::handle`, played workers behind real rings
//! and the collector, and the CLI as an operator runs it.

mod ops_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use api_server::{runtime, tls, Handler, Request, Response, Server, ServerConfig};
use ctl::{self as cli, Env};
use dataplane::worker::cmd::{Command, ScanKind};
use dataplane::worker::{Event, Reply};
use mgmt::audit::Audit;
use mgmt::config::LogTarget;
use mgmt::control::Sink;
use mgmt::native_api;
use mgmt::ops::OpsManager;
use ops_support::*;
use serde_json::{json, Value};
use sigv4::{Credentials, KeyStore, VerifyRequest};

const KEY_ID: &str = "AKIDNATIVE";
const SECRET: &str = "native-secret-key";

struct App {
    ops: Arc<OpsManager>,
    audit: Arc<Audit>,
    keys: KeyStore,
}

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        let v = VerifyRequest {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &req.headers,
            body: &req.body,
        };
        let caller = match sigv4::verify(
            &v,
            &self.keys,
            "us-east-1",
            "network-firewall",
            SystemTime::now(),
        ) {
            Ok(c) => c,
            Err(e) => {
                return Response::json(
                    403,
                    &json!({"error": e.aws_type(), "message": e.to_string()}),
                )
            }
        };
        native_api::handle(&self.ops, req, &caller, &self.audit).unwrap_or_else(|| {
            Response::json(404, &json!({"error": "NotFound", "message": "no route"}))
        })
    }
}

struct Forward(Arc<OpsManager>);

impl Sink for Forward {
    fn on_reply(&self, worker: usize, reply: Reply) {
        self.0.on_reply(worker, reply);
    }
    fn on_events(&self, _: usize, events: &mut dyn Iterator<Item = Event>) {
        events.for_each(drop);
    }
    fn tick(&self) {
        self.0.tick();
    }
}

/// The appliance minus the data plane: each played worker holds three flows (two to port
/// 80, one to 22) and answers scans by matching them with the real `FlowFilter`s.
struct Lab {
    h: Harness,
    server: Option<Server>,
    _runtime: Arc<tokio::runtime::Runtime>,
    audit: Arc<Audit>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let h = Harness::new(tag, 2, "");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (w, rings) in h.rings.iter().enumerate() {
            let rings = Arc::clone(rings);
            let stop = Arc::clone(&stop);
            threads.push(thread::spawn(move || {
                let w16 = w as u16;
                let mut table = vec![
                    record(
                        &format!("198.18.0.{}", w + 1),
                        40000,
                        "198.18.1.1",
                        80,
                        100,
                        w16,
                    ),
                    record(
                        &format!("198.18.0.{}", w + 1),
                        40001,
                        "198.18.1.1",
                        80,
                        5,
                        w16,
                    ),
                    record(
                        &format!("198.18.0.{}", w + 1),
                        40002,
                        "198.18.1.2",
                        22,
                        400,
                        w16,
                    ),
                ];
                while !stop.load(Ordering::Relaxed) {
                    let Some(cmd) = rings.commands.pop() else {
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let Command::StartScan(req) = cmd else {
                        continue;
                    };
                    let (hit, keep): (Vec<_>, Vec<_>) = table.iter().partition(|r| {
                        req.filter.filters.iter().any(|f| f.matches(&r.tuple))
                            && NOW - r.first_seen >= req.filter.min_age_ticks
                    });
                    for r in &hit {
                        let _ = rings.replies.push(Reply::ScanFlow {
                            op: req.op,
                            record: *r,
                            flushed: req.kind == ScanKind::Flush,
                        });
                    }
                    let done = Reply::ScanDone {
                        op: req.op,
                        scanned: table.len() as u64,
                        matched: hit.len() as u64,
                        cancelled: false,
                    };
                    let _ = rings.replies.push(done);
                    if req.kind == ScanKind::Flush {
                        table = keep;
                    }
                }
            }));
        }
        threads.push(
            h.control
                .spawn_collector(Arc::new(Forward(Arc::clone(&h.ops))), Arc::clone(&stop))
                .unwrap(),
        );
        let audit = Arc::new(
            Audit::open(Some(LogTarget::File(h.dir.0.join("audit.log"))), 1 << 20, 2).unwrap(),
        );
        let app = App {
            ops: Arc::clone(&h.ops),
            audit: Arc::clone(&audit),
            keys: KeyStore::new(vec![Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
            }]),
        };
        // HTTPS as flowgatectl meets it: a certificate for localhost from a CA it is told of.
        let pair = tls::generate_pair(&["localhost".into()]).unwrap();
        for (name, pem) in [
            ("ca.pem", &pair.ca_pem),
            ("cert.pem", &pair.cert_pem),
            ("key.pem", &pair.key_pem),
        ] {
            std::fs::write(h.dir.0.join(name), pem).unwrap();
        }
        let server_tls =
            tls::from_files(&h.dir.0.join("cert.pem"), &h.dir.0.join("key.pem")).unwrap();
        let runtime = runtime::pinned(1, Vec::new()).unwrap();
        let server = Server::bind(
            runtime.handle(),
            "127.0.0.1:0",
            ServerConfig::default(),
            Some(server_tls.config),
            Arc::new(app),
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
        Lab {
            h,
            server: Some(server),
            _runtime: runtime,
            audit,
            stop,
            threads,
        }
    }

    fn url(&self) -> String {
        format!(
            "https://localhost:{}",
            self.server.as_ref().unwrap().local_addr().port()
        )
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.h.dir.0.join("ca.pem")
    }

    fn env(&self, secret: &str) -> Env {
        Env {
            api: self.url(),
            ca_file: Some(self.ca_file()),
            credentials: Some(Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: secret.into(),
            }),
            region: "us-east-1".into(),
        }
    }

    /// Runs `flowgatectl args…`; returns stdout or the error's exit code and text.
    fn ctl(&self, args: &[&str]) -> Result<String, (u8, String)> {
        self.ctl_as(args, SECRET)
    }

    fn ctl_as(&self, args: &[&str], secret: &str) -> Result<String, (u8, String)> {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let res = cli::run(&argv, self.env(secret), &mut out);
        let text = String::from_utf8(out).unwrap();
        res.map(|_| text)
            .map_err(|e| (e.exit_code(), e.to_string()))
    }

    fn audit_lines(&self) -> Vec<Value> {
        self.audit.flush();
        std::fs::read_to_string(self.h.dir.0.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn capture_then_flush_with_the_cli() {
    let lab = Lab::new("cli-flow");
    let out = lab
        .ctl(&[
            "capture",
            "--dst",
            "198.18.1.0/24",
            "--dport",
            "80",
            "--proto",
            "tcp",
            "--min-age",
            "60",
        ])
        .unwrap();
    // Two workers, one old port-80 flow each.
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PROTO  SRC"), "{out}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("TCP ")).count(),
        2,
        "{out}"
    );
    assert!(out.contains("198.18.0.1  40000  198.18.1.1  80"), "{out}");
    assert!(out.contains("ESTABLISHED"), "{out}");
    assert!(out.contains(": COMPLETED, 2 flows matched"), "{out}");

    // JSON output carries the native fields.
    let out = lab.ctl(&["capture", "--dport", "22", "--json"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["operation"]["status"], "COMPLETED");
    assert_eq!(v["operation"]["type"], "capture");
    let flows = v["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0]["dst_port"], 22);
    assert_eq!(flows[0]["age_seconds"], 400);
    assert_eq!(flows[0]["packets_from_opener"], 10);
    assert_eq!(flows[0]["bytes_from_responder"], 700);
    assert_eq!(flows[0]["verdict"], "pass");

    // Flush port 22, then a capture of everything no longer finds it.
    let out = lab.ctl(&["flush", "--dport", "22"]).unwrap();
    assert!(out.contains(": COMPLETED, 2 flows matched"), "{out}");
    let out = lab.ctl(&["capture", "--json"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let ports: Vec<u64> = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["dst_port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 4);
    assert!(!ports.contains(&22), "{ports:?}");

    // History through the CLI.
    let out = lab.ctl(&["ops", "list"]).unwrap();
    assert!(out.starts_with("ID"), "{out}");
    assert_eq!(out.lines().count(), 5, "{out}");
    let flush_line = out.lines().find(|l| l.contains("flush")).unwrap();
    let flush_id = flush_line.split_whitespace().next().unwrap();
    let out = lab
        .ctl(&["ops", "list", "--type", "flush", "--json"])
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], flush_id);
    let out = lab.ctl(&["ops", "show", flush_id]).unwrap();
    assert!(out.contains("status            COMPLETED"), "{out}");
    assert!(out.contains("caller            AKIDNATIVE"), "{out}");
    assert!(out.contains("dst_port: 22"), "{out}");
    assert!(out.contains("WORKER  SCAN"), "{out}");
    let out = lab.ctl(&["ops", "results", flush_id]).unwrap();
    assert!(out.ends_with("2 flows\n"), "{out}");

    // The audit log has one ok line per start, with the caller's key and the operation id.
    let audit = lab.audit_lines();
    let starts: Vec<&Value> = audit
        .iter()
        .filter(|l| l["action"].as_str().unwrap().starts_with("POST"))
        .collect();
    assert_eq!(starts.len(), 4);
    assert!(starts
        .iter()
        .all(|l| l["outcome"] == "ok" && l["access_key_id"] == KEY_ID));
    assert!(starts.iter().any(|l| l["operation_id"] == flush_id));
}

#[test]
fn native_api_options_and_errors() {
    let lab = Lab::new("native");
    let call = |method: &str, path: &str, query: &str, body: &Value| -> (u16, Value) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let url = format!("{}{path}", lab.url());
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        let authority = url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        sigv4::sign(
            method,
            &authority,
            path,
            query,
            &mut headers,
            &body,
            &Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
            },
            "us-east-1",
            "network-firewall",
            SystemTime::now(),
        );
        let full = if query.is_empty() {
            url
        } else {
            format!("{url}?{query}")
        };
        let ca = reqwest::Certificate::from_pem(&std::fs::read(lab.ca_file()).unwrap()).unwrap();
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let mut request = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                full,
            )
            .body(body);
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            request = request.header(name.as_str(), value.as_str());
        }
        let r = request.send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    // Beyond AWS: states, either_direction, verdict_changed reach the workers' FlowMatch.
    let (s, v) = call(
        "POST",
        "/v1/operations/capture",
        "",
        &json!({"filters": [{"src": "198.18.1.1", "src_port": 80, "protocols": [6]}],
                "either_direction": true, "states": ["ESTABLISHED"], "verdict_changed": false}),
    );
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["request"]["either_direction"], true);
    assert_eq!(v["request"]["filters"][0]["src_port"], "80");
    let id = v["id"].as_str().unwrap().to_string();
    // Reverse-direction match: the played worker ignores either_direction, so it finds none;
    // what matters here is that the option round-trips into the stored request.
    let mut tries = 0;
    let done = loop {
        let (_, d) = call("GET", &format!("/v1/operations/{id}"), "", &Value::Null);
        if d["status"] != "IN_PROGRESS" || tries > 200 {
            break d;
        }
        tries += 1;
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["workers"].as_array().unwrap().len(), 2);
    assert_eq!(done["request"]["states"], json!(["ESTABLISHED"]));

    // Errors: field names in the native vocabulary, REST statuses.
    let (s, v) = call(
        "POST",
        "/v1/operations/flush",
        "",
        &json!({"filters": [{"dst": "198.18.1.0/24", "dst_port": "99999"}]}),
    );
    assert_eq!(s, 400);
    assert_eq!(v["error"], "InvalidRequestException");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("filters[0].dst_port: '99999'"),
        "{v}"
    );
    let (s, v) = call(
        "POST",
        "/v1/operations/flush",
        "",
        &json!({"filters": [{"source": "198.18.1.0/24"}]}),
    );
    assert_eq!(s, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `source`"),
        "{v}"
    );
    let (s, v) = call(
        "POST",
        "/v1/operations/flush",
        "",
        &json!({"filters": [{"dst": "198.18.1.0/24"}], "states": ["CLOSED"]}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = call(
        "GET",
        "/v1/operations/0f8fad5b-d9cb-469f-a165-70867728950e",
        "",
        &Value::Null,
    );
    assert_eq!(s, 404);
    let (s, _) = call("GET", "/v1/operations/nope/results", "", &Value::Null);
    assert_eq!(s, 400);
    let (s, _) = call("DELETE", &format!("/v1/operations/{id}"), "", &Value::Null);
    assert_eq!(s, 400);
    let (s, v) = call("GET", "/v1/operations", "type=explode", &Value::Null);
    assert_eq!(s, 400, "{v}");
    let (s, v) = call("GET", "/v1/operations", "max=0", &Value::Null);
    assert_eq!(s, 400, "{v}");
    let (s, v) = call("GET", "/v1/operations", "token=bogus", &Value::Null);
    assert_eq!(s, 400, "{v}");
    let (s, v) = call("GET", "/v1/operations", "type=capture&max=1", &Value::Null);
    assert_eq!(s, 200);
    assert_eq!(v["operations"][0]["id"], id.as_str());
    assert!(v["next_token"].is_null());

    // The CLI reports the server's message and exits 4; a bad secret is refused.
    let (code, msg) = lab
        .ctl(&["ops", "show", "0f8fad5b-d9cb-469f-a165-70867728950e"])
        .unwrap_err();
    assert_eq!(code, 4, "{msg}");
    assert!(
        msg.contains("ResourceNotFoundException") && msg.contains("not found"),
        "{msg}"
    );
    let (code, msg) = lab
        .ctl_as(&["ops", "list"], "wrong-secret-key")
        .unwrap_err();
    assert_eq!(code, 4, "{msg}");
    assert!(msg.contains("HTTP 403"), "{msg}");
    let (code, _) = lab.ctl(&["capture", "--sport", "x"]).unwrap_err();
    assert_eq!(code, 4, "server-side validation of the port");
    let (code, _) = lab.ctl(&["frobnicate"]).unwrap_err();
    assert_eq!(code, 2);

    // --no-wait returns at once with the id.
    let out = lab
        .ctl(&["flush", "--src", "198.18.0.1", "--no-wait"])
        .unwrap();
    assert!(
        out.starts_with("flush ") && out.contains(" started ("),
        "{out}"
    );
    // Refused calls are audited too.
    assert!(lab
        .audit_lines()
        .iter()
        .any(|l| l["outcome"] == "refused" && l["error_type"] == "InvalidRequestException"));
}
