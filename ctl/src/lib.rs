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

use dataplane::ops::parse_protocol;
use sigv4::{sign, Credentials};

pub const DEFAULT_API: &str = "https://127.0.0.1:8480";

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
    /// A CA to trust beyond the system roots (`FLOWGATE_CA_FILE`).
    pub ca_file: Option<std::path::PathBuf>,
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
            ca_file: var("FLOWGATE_CA_FILE").map(Into::into),
            credentials,
            region: var("FLOWGATE_REGION").unwrap_or_else(|| "us-east-1".to_string()),
        }
    }
}

/// The command line (clap derive). `--api` and `--ca-file` override `FLOWGATE_API` and
/// `FLOWGATE_CA_FILE` (read into [`Env`]).
#[derive(Debug, clap::Parser)]
#[command(
    name = "flowgatectl",
    version,
    about = "Operate a Flowgate appliance: flow captures and flushes, operation history, policy, stats",
    after_help = "environment: FLOWGATE_API (default https://127.0.0.1:8480), FLOWGATE_CA_FILE, \
FLOWGATE_ACCESS_KEY_ID, FLOWGATE_SECRET_ACCESS_KEY, FLOWGATE_REGION (default us-east-1)\n\
exit codes: 0 ok, 1 operation FAILED or COMPLETED_WITH_ERRORS, 2 usage, 3 API unreachable, 4 API error"
)]
pub struct Cli {
    /// The API's URL (https://host:port).
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's, e.g. the appliance's
    /// generated state_dir/tls/ca.pem.
    #[arg(long, global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a flow capture; wait for it and print the flows it matched.
    Capture(Args),
    /// Start a flow flush; wait for it and print the flows it removed.
    Flush(Args),
    /// Browse the operation history.
    #[command(subcommand)]
    Ops(OpsCommand),
    /// Policy actions.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Live flow table and traffic statistics.
    Stats,
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Operations, newest first.
    List {
        /// capture or flush.
        #[arg(long = "type")]
        op_type: Option<String>,
        /// At most this many.
        #[arg(long)]
        max: Option<usize>,
    },
    /// One operation.
    Show { id: String },
    /// Every flow an operation matched.
    Results { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Re-read the policy files.
    Reload,
}

/// The filter and wait options of `capture` and `flush`. Flags build one filter; without
/// any filter every flow (IPv4 and IPv6) matches.
#[derive(Debug, Default, PartialEq, clap::Args)]
pub struct Args {
    /// Source CIDR.
    #[arg(long)]
    pub src: Option<String>,
    /// Destination CIDR.
    #[arg(long)]
    pub dst: Option<String>,
    /// Source port: ANY, a port, or lo:hi.
    #[arg(long)]
    pub sport: Option<String>,
    /// Destination port: ANY, a port, or lo:hi.
    #[arg(long)]
    pub dport: Option<String>,
    /// tcp|udp|icmp|icmpv6|sctp|N (repeatable, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub proto: Vec<String>,
    /// One more filter as JSON, e.g. '{"src":"198.18.0.0/24","dst_port":"80","protocols":["6"]}'.
    #[arg(long)]
    pub filter: Vec<String>,
    /// Only flows at least this old (seconds).
    #[arg(long)]
    pub min_age: Option<u64>,
    /// Match filters in both directions.
    #[arg(long)]
    pub either_direction: bool,
    /// Only flows in these states (repeatable, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only flows the current policy would now judge differently.
    #[arg(long)]
    pub verdict_changed: bool,
    /// Return once started.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (300).
    #[arg(long)]
    pub timeout: Option<u64>,
}

impl Args {
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
        for (i, text) in self.filter.iter().enumerate() {
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
        let min_age = self.min_age.unwrap_or(0);
        Ok(json!({
            "filters": filters,
            "min_age_seconds": min_age,
            "either_direction": self.either_direction,
            "states": self.state,
            "verdict_changed": self.verdict_changed,
        }))
    }
}

/// A signed JSON call to the API.
pub struct Api {
    base: reqwest::Url,
    client: reqwest::blocking::Client,
    credentials: Option<Credentials>,
    region: String,
}

impl Api {
    /// A client for the API at `base` (`https://host:port`), trusting the system roots and,
    /// when given, the CA in `ca_file` (PEM; the appliance's generated `tls/ca.pem`).
    pub fn new(
        base: &str,
        ca_file: Option<&std::path::Path>,
        credentials: Option<Credentials>,
        region: String,
    ) -> Result<Api, CliError> {
        let base = reqwest::Url::parse(base).map_err(|e| usage(format!("--api: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(usage(format!(
                "--api: '{base}' is not an http(s)://host:port URL"
            )));
        }
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .use_rustls_tls();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| usage(format!("--ca-file {}: {e}", path.display())))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| usage(format!("--ca-file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(ca);
        }
        let client = builder
            .build()
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        Ok(Api {
            base,
            client,
            credentials,
            region,
        })
    }

    /// `host[:port]` as the request's `Host` header carries it (what SigV4 signs).
    fn authority(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        match self.base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
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
        let authority = self.authority();
        if let Some(c) = &self.credentials {
            sign(
                method,
                &authority,
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
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query((!query.is_empty()).then_some(query));
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| usage(format!("method {method}: {e}")))?;
        let mut request = self.client.request(method, url).body(body);
        for (name, value) in &headers {
            // reqwest sets Host from the URL, the same value that was signed.
            if !name.eq_ignore_ascii_case("host") {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let resp = request
            .send()
            .map_err(|e| CliError::Unreachable(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .map_err(|e| CliError::Unreachable(error_chain(&e)))?;
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if (200..300).contains(&status) {
            return value.ok_or_else(|| CliError::Api {
                status,
                kind: "MalformedResponse".into(),
                message: "the response is not JSON".into(),
            });
        }
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        let field = |v: &Option<Value>, keys: &[&str]| {
            keys.iter()
                .find_map(|k| v.as_ref()?.get(*k)?.as_str().map(str::to_string))
        };
        Err(CliError::Api {
            status,
            kind: field(&value, &["error", "__type"]).unwrap_or_else(|| "Error".into()),
            message: field(&value, &["message", "Message"]).unwrap_or_else(text),
        })
    }
}

/// An error with its causes ("error sending request: … invalid peer certificate: …").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    use clap::{CommandFactory, Parser};
    let cli = match Cli::try_parse_from(
        std::iter::once("flowgatectl".to_string()).chain(argv.iter().cloned()),
    ) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = write!(out, "{e}");
            return Ok(());
        }
        Err(e) => return Err(usage(e.to_string().trim_end().to_string())),
    };
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "flowgatectl", out);
        return Ok(());
    }
    let ca_file = cli.ca_file.clone().or(env.ca_file);
    let api = Api::new(
        cli.api.as_deref().unwrap_or(&env.api),
        ca_file.as_deref(),
        env.credentials,
        env.region,
    )?;
    let json = cli.json;
    // The status of an operation waited for decides the exit code (results print anyway).
    let mut final_status: Option<String> = None;
    let text = match &cli.command {
        Command::Capture(args) | Command::Flush(args) => {
            let kind = if matches!(cli.command, Command::Capture(_)) {
                "capture"
            } else {
                "flush"
            };
            let (text, status) = start(&api, args, kind, json)?;
            final_status = status;
            text
        }
        Command::Ops(OpsCommand::List { op_type, max }) => {
            ops_list(&api, op_type.as_deref(), *max, json)?
        }
        Command::Ops(OpsCommand::Show { id }) => {
            let op = api.call(
                "GET",
                &format!("/v1/operations/{}", query_escape(id)),
                "",
                None,
            )?;
            if json {
                pretty(&op)
            } else {
                render_operation(&op)
            }
        }
        Command::Ops(OpsCommand::Results { id }) => {
            let (op, flows) = fetch_results(&api, id)?;
            if json {
                pretty(&json!({"operation": op, "flows": flows}))
            } else {
                render_flows(&flows)
            }
        }
        Command::Policy(PolicyCommand::Reload) => {
            let v = api.call("POST", "/v1/policy/reload", "", Some(&json!({})))?;
            if json {
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
        Command::Stats => {
            let v = api.call("GET", "/v1/stats", "", None)?;
            if json {
                pretty(&v)
            } else {
                render_tree(&v, 0)
            }
        }
        Command::Completions { .. } => unreachable!("handled above"),
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
fn start(
    api: &Api,
    args: &Args,
    kind: &str,
    json: bool,
) -> Result<(String, Option<String>), CliError> {
    let body = args.start_body()?;
    let wait_limit = Duration::from_secs(args.timeout.unwrap_or(300));
    let mut op = api.call("POST", &format!("/v1/operations/{kind}"), "", Some(&body))?;
    let id = str_of(&op, "id").to_string();
    if args.no_wait {
        let text = if json {
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
    let text = if json {
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

fn ops_list(
    api: &Api,
    op_type: Option<&str>,
    limit: Option<usize>,
    json: bool,
) -> Result<String, CliError> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = format!("max={}", limit.unwrap_or(100).clamp(1, 100));
        if let Some(t) = op_type {
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
    if json {
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

    /// The start options of `flowgatectl ARGS…` (a capture or flush).
    fn args(s: &[&str]) -> Result<Args, CliError> {
        use clap::Parser;
        let cli = Cli::try_parse_from(std::iter::once("flowgatectl").chain(s.iter().copied()))
            .map_err(|e| usage(e.to_string()))?;
        match cli.command {
            Command::Capture(a) | Command::Flush(a) => Ok(a),
            other => panic!("not a start command: {other:?}"),
        }
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
            matches!(args(&["capture", "--src"]), Err(CliError::Usage(m)) if m.contains("--src"))
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
        let e = args(&["capture", "--min-age=-3"]).unwrap_err();
        assert!(e.to_string().contains("--min-age"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn unreachable_api_is_exit_code_3() {
        // Port 9 on loopback (discard) is not listening in the test environment.
        let env = Env {
            api: "http://127.0.0.1:9".into(),
            ca_file: None,
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
