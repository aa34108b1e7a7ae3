//! `flowgatectl`: the operator's command line over the native API. Starts captures and
//! flushes (waiting with a progress line), browses the operation history, reloads the policy
//! and shows live stats. Requests are SigV4-signed (service `network-firewall`) when
//! `FLOWGATE_ACCESS_KEY_ID` / `FLOWGATE_SECRET_ACCESS_KEY` are set.
//!
//! Exit codes: 0 success; 1 the operation ended FAILED or COMPLETED_WITH_ERRORS; 2 usage
//! error; 3 the API could not be reached; 4 the API refused the request.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::http::client::{request, Url};
use crate::ops::validate::parse_protocol;
use crate::sigv4::{sign, Credentials};

pub const DEFAULT_API: &str = "http://127.0.0.1:8480";

const USAGE: &str = "\
usage: flowgatectl [--api URL] [--json] COMMAND

commands:
  capture|flush [FILTER FLAGS] [--filter JSON]... [--min-age SECONDS] [--either-direction]
                [--state STATE]... [--verdict-changed] [--no-wait] [--timeout SECONDS]
      Start a flow capture or flush; wait for it and print the flows it matched.
      Filter flags (one filter): --src CIDR --dst CIDR --sport P --dport P
        --proto tcp|udp|icmp|icmpv6|sctp|N   (P: ANY, a port, or lo:hi)
      --filter '{\"src\":\"198.18.0.0/24\",\"dst_port\":\"80\",\"protocols\":[\"6\"]}' adds one
      more filter (repeatable). Without any filter every flow (IPv4 and IPv6) matches.
  ops list [--type capture|flush] [--max N]
  ops show ID
  ops results ID
  policy reload
  stats

environment: FLOWGATE_API (default http://127.0.0.1:8480), FLOWGATE_ACCESS_KEY_ID,
  FLOWGATE_SECRET_ACCESS_KEY, FLOWGATE_REGION (default us-east-1)
exit codes: 0 ok, 1 operation FAILED or COMPLETED_WITH_ERRORS, 2 usage, 3 API unreachable,
  4 API error
";

/// Why a command did not succeed; maps to the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}\n(run 'flowgatectl --help' for usage)")]
    Usage(String),
    #[error("cannot reach the Flowgate API: {0}")]
    Unreachable(String),
    #[error("the API refused the request (HTTP {status}): {kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    /// The operation ended without complete results.
    #[error("{0}")]
    Incomplete(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Incomplete(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
            CliError::Api { .. } => 4,
        }
    }
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// Where the API is and how to sign for it.
pub struct Env {
    pub api: String,
    pub credentials: Option<Credentials>,
    pub region: String,
}

impl Env {
    /// From `FLOWGATE_*` variables; `--api` overrides `FLOWGATE_API` later.
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let credentials = match (
            var("FLOWGATE_ACCESS_KEY_ID"),
            var("FLOWGATE_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
                access_key_id,
                secret_access_key,
            }),
            _ => None,
        };
        Env {
            api: var("FLOWGATE_API").unwrap_or_else(|| DEFAULT_API.to_string()),
            credentials,
            region: var("FLOWGATE_REGION").unwrap_or_else(|| "us-east-1".to_string()),
        }
    }
}

/// The parsed command line.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub positional: Vec<String>,
    pub api: Option<String>,
    pub json: bool,
    pub help: bool,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub sport: Option<String>,
    pub dport: Option<String>,
    pub proto: Vec<String>,
    pub filters: Vec<String>,
    pub min_age: Option<String>,
    pub either_direction: bool,
    pub states: Vec<String>,
    pub verdict_changed: bool,
    pub no_wait: bool,
    pub timeout: Option<String>,
    pub op_type: Option<String>,
    pub max: Option<String>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, CliError> {
        let mut a = Args::default();
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            // `--flag=value` and `--flag value` both work.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, CliError> {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| usage(format!("{name} needs a value")))
            };
            match flag {
                "--api" => a.api = Some(value(flag)?),
                "--json" => a.json = true,
                "-h" | "--help" => a.help = true,
                "--src" => a.src = Some(value(flag)?),
                "--dst" => a.dst = Some(value(flag)?),
                "--sport" => a.sport = Some(value(flag)?),
                "--dport" => a.dport = Some(value(flag)?),
                "--proto" => a
                    .proto
                    .extend(value(flag)?.split(',').map(|p| p.trim().to_string())),
                "--filter" => a.filters.push(value(flag)?),
                "--min-age" => a.min_age = Some(value(flag)?),
                "--either-direction" => a.either_direction = true,
                "--state" => a
                    .states
                    .extend(value(flag)?.split(',').map(|s| s.trim().to_string())),
                "--verdict-changed" => a.verdict_changed = true,
                "--no-wait" => a.no_wait = true,
                "--timeout" => a.timeout = Some(value(flag)?),
                "--type" => a.op_type = Some(value(flag)?),
                "--max" => a.max = Some(value(flag)?),
                f if f.starts_with('-') && f.len() > 1 => {
                    return Err(usage(format!("unknown option '{f}'")))
                }
                _ => a.positional.push(arg.clone()),
            }
        }
        Ok(a)
    }

    fn has_flag_filter(&self) -> bool {
        self.src.is_some()
            || self.dst.is_some()
            || self.sport.is_some()
            || self.dport.is_some()
            || !self.proto.is_empty()
    }

    /// The native start body for `capture`/`flush`.
    pub fn start_body(&self) -> Result<Value, CliError> {
        let mut filters = Vec::new();
        let protocols = self
            .proto
            .iter()
            .map(|p| {
                parse_protocol(p).map(|n| n.to_string()).ok_or_else(|| {
                    usage(format!(
                        "--proto: '{p}' is not tcp, udp, icmp, icmpv6, sctp or a number 0-255"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.has_flag_filter() {
            let mut f = Map::new();
            for (k, v) in [
                ("src", &self.src),
                ("dst", &self.dst),
                ("src_port", &self.sport),
                ("dst_port", &self.dport),
            ] {
                if let Some(v) = v {
                    f.insert(k.into(), json!(v));
                }
            }
            if !protocols.is_empty() {
                f.insert("protocols".into(), json!(protocols));
            }
            if self.src.is_none() && self.dst.is_none() {
                // A filter needs an address: ports/protocols alone mean "any address".
                let mut v6 = f.clone();
                f.insert("src".into(), json!("0.0.0.0/0"));
                v6.insert("src".into(), json!("::/0"));
                filters.push(Value::Object(f));
                filters.push(Value::Object(v6));
            } else {
                filters.push(Value::Object(f));
            }
        }
        for (i, text) in self.filters.iter().enumerate() {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| usage(format!("--filter #{}: not JSON: {e}", i + 1)))?;
            if !v.is_object() {
                return Err(usage(format!("--filter #{}: must be a JSON object", i + 1)));
            }
            filters.push(v);
        }
        if filters.is_empty() {
            filters.push(json!({"src": "0.0.0.0/0"}));
            filters.push(json!({"src": "::/0"}));
        }
        let min_age = match &self.min_age {
            None => 0,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| usage(format!("--min-age: '{s}' is not a number of seconds")))?,
        };
        Ok(json!({
            "filters": filters,
            "min_age_seconds": min_age,
            "either_direction": self.either_direction,
            "states": self.states,
            "verdict_changed": self.verdict_changed,
        }))
    }
}

/// A signed JSON call to the API.
pub struct Api {
    base: Url,
    credentials: Option<Credentials>,
    region: String,
    timeout: Duration,
}

impl Api {
    pub fn new(
        base: &str,
        credentials: Option<Credentials>,
        region: String,
    ) -> Result<Api, CliError> {
        let base = Url::parse(base).map_err(|e| usage(format!("--api: {e}")))?;
        Ok(Api {
            base,
            credentials,
            region,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends `method path?query` with an optional JSON body; a non-2xx answer becomes
    /// [`CliError::Api`] with the server's message.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        if !body.is_empty() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        if let Some(c) = &self.credentials {
            sign(
                method,
                &self.base.authority,
                path,
                query,
                &mut headers,
                &body,
                c,
                &self.region,
                "network-firewall",
                SystemTime::now(),
            );
        }
        let url = if query.is_empty() {
            format!("http://{}{path}", self.base.authority)
        } else {
            format!("http://{}{path}?{query}", self.base.authority)
        };
        let resp = request(method, &url, &headers, &body, self.timeout)
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        let value: Option<Value> = serde_json::from_slice(&resp.body).ok();
        if (200..300).contains(&resp.status) {
            return value.ok_or_else(|| CliError::Api {
                status: resp.status,
                kind: "MalformedResponse".into(),
                message: "the response is not JSON".into(),
            });
        }
        let text = || String::from_utf8_lossy(&resp.body).trim().to_string();
        let field = |v: &Option<Value>, keys: &[&str]| {
            keys.iter()
                .find_map(|k| v.as_ref()?.get(*k)?.as_str().map(str::to_string))
        };
        Err(CliError::Api {
            status: resp.status,
            kind: field(&value, &["error", "__type"]).unwrap_or_else(|| "Error".into()),
            message: field(&value, &["message", "Message"]).unwrap_or_else(text),
        })
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    match run(&argv, Env::from_process(), &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("flowgatectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one command, writing its output to `out` (progress goes to stderr).
pub fn run(argv: &[String], env: Env, out: &mut dyn Write) -> Result<(), CliError> {
    let args = Args::parse(argv)?;
    if args.help {
        let _ = out.write_all(USAGE.as_bytes());
        return Ok(());
    }
    if args.positional.is_empty() {
        return Err(usage(format!("no command given\n\n{USAGE}")));
    }
    let api = Api::new(
        args.api.as_deref().unwrap_or(&env.api),
        env.credentials,
        env.region,
    )?;
    let pos: Vec<&str> = args.positional.iter().map(String::as_str).collect();
    // The status of an operation waited for decides the exit code (results print anyway).
    let mut final_status: Option<String> = None;
    let text = match pos.as_slice() {
        ["capture"] | ["flush"] => {
            let (text, status) = start(&api, &args, pos[0])?;
            final_status = status;
            text
        }
        ["ops", "list"] => ops_list(&api, &args)?,
        ["ops", "show", id] => {
            let op = api.call(
                "GET",
                &format!("/v1/operations/{}", query_escape(id)),
                "",
                None,
            )?;
            if args.json {
                pretty(&op)
            } else {
                render_operation(&op)
            }
        }
        ["ops", "results", id] => {
            let (op, flows) = fetch_results(&api, id)?;
            if args.json {
                pretty(&json!({"operation": op, "flows": flows}))
            } else {
                render_flows(&flows)
            }
        }
        ["policy", "reload"] => {
            let v = api.call("POST", "/v1/policy/reload", "", Some(&json!({})))?;
            if args.json {
                pretty(&v)
            } else {
                let mut s = match v.get("epoch") {
                    Some(e) => format!("policy reloaded: epoch {e}\n"),
                    None => "policy reloaded\n".to_string(),
                };
                s.push_str(&render_tree(&v, 1));
                s
            }
        }
        ["stats"] => {
            let v = api.call("GET", "/v1/stats", "", None)?;
            if args.json {
                pretty(&v)
            } else {
                render_tree(&v, 0)
            }
        }
        _ => return Err(usage(format!("unknown command '{}'", pos.join(" ")))),
    };
    let _ = out.write_all(text.as_bytes());
    match final_status {
        Some(status) if status != "COMPLETED" => {
            Err(CliError::Incomplete(format!("operation ended {status}")))
        }
        _ => Ok(()),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Starts an operation and (unless `--no-wait`) waits for it; returns the output and the
/// final status waited for.
fn start(api: &Api, args: &Args, kind: &str) -> Result<(String, Option<String>), CliError> {
    let body = args.start_body()?;
    let wait_limit = match &args.timeout {
        None => Duration::from_secs(300),
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| usage(format!("--timeout: '{t}' is not a number of seconds")))?,
        ),
    };
    let mut op = api.call("POST", &format!("/v1/operations/{kind}"), "", Some(&body))?;
    let id = str_of(&op, "id").to_string();
    if args.no_wait {
        let text = if args.json {
            pretty(&op)
        } else {
            format!("{kind} {id} started ({})\n", str_of(&op, "status"))
        };
        return Ok((text, None));
    }
    let tty = std::io::stderr().is_terminal();
    let began = Instant::now();
    let mut last_line = String::new();
    while str_of(&op, "status") == "IN_PROGRESS" {
        let line = progress_line(kind, &op, began.elapsed());
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if last_line.is_empty() {
            eprintln!("{line}");
        }
        last_line = line;
        if began.elapsed() > wait_limit {
            if tty {
                eprintln!();
            }
            return Err(CliError::Incomplete(format!(
                "{kind} {id} still IN_PROGRESS after {}s; see 'flowgatectl ops show {id}'",
                wait_limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
        op = api.call("GET", &format!("/v1/operations/{id}"), "", None)?;
    }
    let done = progress_line(kind, &op, began.elapsed());
    if tty {
        eprintln!("\r\x1b[2K{done}");
    } else {
        eprintln!("{done}");
    }
    let status = str_of(&op, "status").to_string();
    let (op, flows) = fetch_results(api, &id)?;
    let text = if args.json {
        pretty(&json!({"operation": op, "flows": flows}))
    } else {
        let mut s = render_flows(&flows);
        let _ = writeln!(
            s,
            "{kind} {id}: {}, {} flows matched{}",
            str_of(&op, "status"),
            op.get("flows_matched").unwrap_or(&json!(0)),
            match op.get("detail").and_then(Value::as_str) {
                Some(d) => format!(" ({d})"),
                None => String::new(),
            }
        );
        s
    };
    Ok((text, Some(status)))
}

fn progress_line(kind: &str, op: &Value, elapsed: Duration) -> String {
    let workers = op.get("workers").and_then(Value::as_array);
    let total = workers.map_or(0, Vec::len);
    let done = workers.map_or(0, |w| {
        w.iter()
            .filter(|w| w.get("scan").and_then(Value::as_str) != Some("running"))
            .count()
    });
    format!(
        "{kind} {}: {} — {done}/{total} workers done, {} flows matched, {:.1}s",
        str_of(op, "id"),
        str_of(op, "status"),
        op.get("flows_matched").unwrap_or(&json!(0)),
        elapsed.as_secs_f64()
    )
}

/// Every page of an operation's results.
fn fetch_results(api: &Api, id: &str) -> Result<(Value, Vec<Value>), CliError> {
    let mut flows = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = "max=10000".to_string();
        if let Some(t) = &token {
            q.push_str(&format!("&token={}", query_escape(t)));
        }
        let page = api.call(
            "GET",
            &format!("/v1/operations/{}/results", query_escape(id)),
            &q,
            None,
        )?;
        if let Some(fs) = page.get("flows").and_then(Value::as_array) {
            flows.extend(fs.iter().cloned());
        }
        token = page
            .get("next_token")
            .and_then(Value::as_str)
            .map(str::to_string);
        if token.is_none() {
            let op = api.call(
                "GET",
                &format!("/v1/operations/{}", query_escape(id)),
                "",
                None,
            )?;
            return Ok((op, flows));
        }
    }
}

fn ops_list(api: &Api, args: &Args) -> Result<String, CliError> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let limit: Option<usize> = match &args.max {
        None => None,
        Some(m) => Some(
            m.parse()
                .map_err(|_| usage(format!("--max: '{m}' is not a number")))?,
        ),
    };
    loop {
        let mut q = format!("max={}", limit.unwrap_or(100).clamp(1, 100));
        if let Some(t) = &args.op_type {
            q.push_str(&format!("&type={}", query_escape(t)));
        }
        if let Some(t) = &token {
            q.push_str(&format!("&token={}", query_escape(t)));
        }
        let page = api.call("GET", "/v1/operations", &q, None)?;
        if let Some(ops) = page.get("operations").and_then(Value::as_array) {
            items.extend(ops.iter().cloned());
        }
        token = page
            .get("next_token")
            .and_then(Value::as_str)
            .map(str::to_string);
        if token.is_none() || limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    if let Some(l) = limit {
        items.truncate(l);
    }
    if args.json {
        return Ok(pretty(&Value::Array(items)));
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            vec![
                str_of(o, "id").to_string(),
                str_of(o, "type").to_string(),
                str_of(o, "status").to_string(),
                str_of(o, "requested_at").to_string(),
            ]
        })
        .collect();
    Ok(table(&["ID", "TYPE", "STATUS", "REQUESTED"], &rows))
}

fn protocol_name(p: u64) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// A results table (native flow records).
pub fn render_flows(flows: &[Value]) -> String {
    if flows.is_empty() {
        return "no flows matched\n".to_string();
    }
    let num = |f: &Value, k: &str| f.get(k).map_or(String::new(), |v| v.to_string());
    let rows: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            vec![
                protocol_name(f.get("protocol").and_then(Value::as_u64).unwrap_or(0)),
                str_of(f, "src").to_string(),
                num(f, "src_port"),
                str_of(f, "dst").to_string(),
                num(f, "dst_port"),
                str_of(f, "state").to_string(),
                num(f, "age_seconds"),
                num(f, "packets"),
                num(f, "bytes"),
                str_of(f, "verdict").to_string(),
                num(f, "sid"),
                num(f, "worker"),
            ]
        })
        .collect();
    let mut s = table(
        &[
            "PROTO", "SRC", "SPORT", "DST", "DPORT", "STATE", "AGE(s)", "PKTS", "BYTES", "VERDICT",
            "SID", "WORKER",
        ],
        &rows,
    );
    let _ = writeln!(s, "{} flows", flows.len());
    s
}

/// `ops show`: the operation's fields, one per line.
pub fn render_operation(op: &Value) -> String {
    let mut s = String::new();
    for k in [
        "id",
        "type",
        "status",
        "message",
        "detail",
        "zone",
        "caller",
        "requested_at",
        "completed_at",
        "duration_seconds",
        "flows_matched",
        "results_kept",
    ] {
        match op.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) => {
                let _ = writeln!(s, "{k:<17} {v}");
            }
            Some(v) => {
                let _ = writeln!(s, "{k:<17} {v}");
            }
        }
    }
    if let Some(r) = op.get("request") {
        let _ = writeln!(s, "request:");
        s.push_str(&render_tree(r, 1));
    }
    if let Some(ws) = op.get("workers").and_then(Value::as_array) {
        let rows: Vec<Vec<String>> = ws
            .iter()
            .map(|w| {
                ["worker", "scan", "scanned", "matched"]
                    .iter()
                    .map(|k| match w.get(*k) {
                        Some(Value::String(v)) => v.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    })
                    .collect()
            })
            .collect();
        let _ = writeln!(s, "workers:");
        s.push_str(&table(&["WORKER", "SCAN", "SCANNED", "MATCHED"], &rows));
    }
    s
}

/// Any JSON value as an indented `key: value` tree.
pub fn render_tree(v: &Value, indent: usize) -> String {
    let mut s = String::new();
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) => {
                        let _ = writeln!(s, "{pad}{k}:");
                        s.push_str(&render_tree(v, indent + 1));
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
                        let _ = writeln!(s, "{pad}{k}:");
                        for (i, x) in a.iter().enumerate() {
                            let _ = writeln!(s, "{pad}  [{i}]");
                            s.push_str(&render_tree(x, indent + 2));
                        }
                    }
                    _ => {
                        let _ = writeln!(s, "{pad}{k}: {}", scalar(v));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(s, "{pad}{}", scalar(other));
        }
    }
    s
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{c:<w$}");
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Args, CliError> {
        Args::parse(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_build_one_filter_and_filter_json_adds_more() {
        let a = args(&[
            "flush",
            "--src",
            "198.18.0.0/24",
            "--dport=80",
            "--proto",
            "tcp",
            "--min-age",
            "300",
            "--filter",
            r#"{"dst":"2001:2::/48"}"#,
            "--state",
            "ESTABLISHED",
            "--verdict-changed",
            "--either-direction",
        ])
        .unwrap();
        assert_eq!(a.positional, vec!["flush"]);
        let b = a.start_body().unwrap();
        assert_eq!(
            b["filters"],
            json!([
                {"src": "198.18.0.0/24", "dst_port": "80", "protocols": ["6"]},
                {"dst": "2001:2::/48"}
            ])
        );
        assert_eq!(b["min_age_seconds"], 300);
        assert_eq!(b["states"], json!(["ESTABLISHED"]));
        assert_eq!(b["verdict_changed"], true);
        assert_eq!(b["either_direction"], true);
    }

    #[test]
    fn no_filter_means_every_flow_and_port_only_filters_get_any_address() {
        let b = args(&["capture"]).unwrap().start_body().unwrap();
        assert_eq!(b["filters"], json!([{"src": "0.0.0.0/0"}, {"src": "::/0"}]));
        let b = args(&["capture", "--dport", "22"])
            .unwrap()
            .start_body()
            .unwrap();
        assert_eq!(
            b["filters"],
            json!([{"src": "0.0.0.0/0", "dst_port": "22"}, {"src": "::/0", "dst_port": "22"}])
        );
    }

    #[test]
    fn usage_errors_are_precise() {
        assert!(
            matches!(args(&["capture", "--bogus"]), Err(CliError::Usage(m)) if m.contains("--bogus"))
        );
        assert!(
            matches!(args(&["capture", "--src"]), Err(CliError::Usage(m)) if m.contains("--src needs a value"))
        );
        let e = args(&["capture", "--proto", "gre"])
            .unwrap()
            .start_body()
            .unwrap_err();
        assert!(e.to_string().contains("'gre'"), "{e}");
        let e = args(&["capture", "--filter", "[1]"])
            .unwrap()
            .start_body()
            .unwrap_err();
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = args(&["capture", "--min-age", "-3"])
            .unwrap()
            .start_body()
            .unwrap_err();
        assert!(e.to_string().contains("--min-age"), "{e}");
    }

    #[test]
    fn unreachable_api_is_exit_code_3() {
        // Port 9 on loopback (discard) is not listening in the test environment.
        let env = Env {
            api: "http://127.0.0.1:9".into(),
            credentials: None,
            region: "us-east-1".into(),
        };
        let mut out = Vec::new();
        let e = run(&["stats".to_string()], env, &mut out).unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
        assert!(
            e.to_string().starts_with("cannot reach the Flowgate API"),
            "{e}"
        );
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
        let flows = vec![json!({
            "protocol": 6, "src": "198.18.0.1", "src_port": 40000, "dst": "198.18.1.1",
            "dst_port": 80, "state": "ESTABLISHED", "age_seconds": 12, "packets": 10,
            "bytes": 1000, "verdict": "pass", "sid": 0, "worker": 1
        })];
        let s = render_flows(&flows);
        assert!(s.starts_with("PROTO  SRC"), "{s}");
        assert!(
            s.contains("TCP    198.18.0.1  40000  198.18.1.1  80     ESTABLISHED"),
            "{s}"
        );
        assert!(s.ends_with("1 flows\n"));
        assert_eq!(render_flows(&[]), "no flows matched\n");
    }

    #[test]
    fn tree_renders_nested_json() {
        let v = json!({"epoch": 3, "workers": [{"id": 0}], "ok": true, "x": null});
        let s = render_tree(&v, 0);
        assert!(s.contains("epoch: 3\n"), "{s}");
        assert!(s.contains("workers:\n  [0]\n    id: 0\n"), "{s}");
        assert!(s.contains("x: -\n"), "{s}");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("ab+/=c"), "ab%2B%2F%3Dc");
    }
}
