//! `flowgatectl --zone NAME …` and `flowgatectl --all-zones …`: flow operations across the
//! zones of a firewall through the AWS API of a fleet endpoint (`FLOWGATE_FLEET_API`).
//! `--all-zones` starts one operation per zone in parallel, shows each zone's progress
//! while waiting, and prints one merged table of flows with a ZONE column and the status of
//! each zone. Exit codes as `flowgatectl`'s: 0 every zone COMPLETED; 1 a zone's operation
//! ended FAILED or COMPLETED_WITH_ERRORS (or timed out); 2 usage; 3 unreachable; 4 refused.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, Parser, Subcommand};
use serde_json::{json, Value};
use sigv4::Credentials;

use crate::upstream::{api_error, SignedCall};

/// Whether `argv` asks for the zone-aware commands (`--zone`, `--all-zones`).
pub fn wants_zones(argv: &[String]) -> bool {
    argv.iter()
        .any(|a| a == "--all-zones" || a == "--zone" || a.starts_with("--zone="))
}

#[derive(Parser, Debug)]
#[command(
    name = "flowgatectl",
    about = "Flow operations across the zones of a firewall, through a flowgate-fleet endpoint"
)]
pub struct ZoneCli {
    /// The fleet's (or an appliance's) AWS API endpoint.
    #[arg(long, env = "FLOWGATE_FLEET_API")]
    pub api: String,
    /// PEM file of the CA that signed the endpoint's certificate.
    #[arg(long, env = "FLOWGATE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The firewall (default: the one the endpoint describes).
    #[arg(long, env = "FIREWALL_ARN")]
    pub firewall_arn: Option<String>,
    /// One zone (AvailabilityZone name).
    #[arg(long, conflicts_with = "all_zones")]
    pub zone: Option<String>,
    /// Every zone of the firewall, in parallel.
    #[arg(long)]
    pub all_zones: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start a flow capture per zone, wait, print the flows it matched.
    Capture(StartArgs),
    /// Start a flow flush per zone, wait, print the flows it removed.
    Flush(StartArgs),
    /// The operations of each zone, newest first.
    Ops,
    /// The zones of the firewall with endpoint status and policy sync state.
    Zones,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct StartArgs {
    /// Source CIDR.
    #[arg(long)]
    pub src: Option<String>,
    /// Destination CIDR.
    #[arg(long)]
    pub dst: Option<String>,
    /// Source port or lo:hi.
    #[arg(long)]
    pub sport: Option<String>,
    /// Destination port or lo:hi.
    #[arg(long)]
    pub dport: Option<String>,
    /// Protocol number or name (repeatable): tcp, udp, icmp, icmpv6, sctp.
    #[arg(long)]
    pub proto: Vec<String>,
    /// Only flows at least this old (seconds).
    #[arg(long, default_value_t = 0)]
    pub min_age: u64,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Start the operations and print their ids without waiting.
    #[arg(long)]
    pub no_wait: bool,
}

impl StartArgs {
    /// The AWS `FlowFilters` of these flags (no flag: every IPv4 and IPv6 flow).
    fn flow_filters(&self) -> Result<Value, CtlError> {
        let protocols: Vec<String> = self
            .proto
            .iter()
            .map(|p| {
                Ok(match p.to_ascii_lowercase().as_str() {
                    "tcp" => "6".to_string(),
                    "udp" => "17".into(),
                    "icmp" => "1".into(),
                    "icmpv6" => "58".into(),
                    "sctp" => "132".into(),
                    n if n.parse::<u8>().is_ok() => n.to_string(),
                    _ => {
                        return Err(CtlError::Usage(format!(
                            "--proto: '{p}' is not tcp, udp, icmp, icmpv6, sctp or 0-255"
                        )))
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        let mut f = serde_json::Map::new();
        if let Some(s) = &self.src {
            f.insert("SourceAddress".into(), json!({"AddressDefinition": s}));
        }
        if let Some(d) = &self.dst {
            f.insert("DestinationAddress".into(), json!({"AddressDefinition": d}));
        }
        if let Some(p) = &self.sport {
            f.insert("SourcePort".into(), json!(p));
        }
        if let Some(p) = &self.dport {
            f.insert("DestinationPort".into(), json!(p));
        }
        if !protocols.is_empty() {
            f.insert("Protocols".into(), json!(protocols));
        }
        if f.get("SourceAddress").is_none() && f.get("DestinationAddress").is_none() {
            // Every flow: one filter per address family.
            let mut v4 = f.clone();
            v4.insert(
                "SourceAddress".into(),
                json!({"AddressDefinition": "0.0.0.0/0"}),
            );
            let mut v6 = f;
            v6.insert("SourceAddress".into(), json!({"AddressDefinition": "::/0"}));
            return Ok(json!([v4, v6]));
        }
        Ok(json!([f]))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("refused (HTTP {status}): {kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    #[error("{0}")]
    Incomplete(String),
}

impl CtlError {
    fn exit_code(&self) -> u8 {
        match self {
            CtlError::Incomplete(_) => 1,
            CtlError::Usage(_) => 2,
            CtlError::Unreachable(_) => 3,
            CtlError::Api { .. } => 4,
        }
    }
}

/// A signed AWS JSON 1.0 client for one endpoint.
pub struct AwsClient {
    http: reqwest::blocking::Client,
    url: reqwest::Url,
    host: String,
    creds: Credentials,
    region: String,
}

impl AwsClient {
    pub fn new(
        api: &str,
        ca_file: Option<&std::path::Path>,
        creds: Credentials,
        region: String,
    ) -> Result<AwsClient, CtlError> {
        let url = reqwest::Url::parse(api).map_err(|e| CtlError::Usage(format!("--api: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(CtlError::Usage(format!("--api: '{api}' has no host"))),
        };
        let mut b = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(30));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| CtlError::Usage(format!("--ca-file {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| CtlError::Usage(format!("--ca-file {}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        let http = b
            .build()
            .map_err(|e| CtlError::Usage(format!("HTTP client: {e}")))?;
        Ok(AwsClient {
            http,
            url,
            host,
            creds,
            region,
        })
    }

    pub fn call(&self, action: &str, body: &Value) -> Result<Value, CtlError> {
        let signed = SignedCall::new(
            &self.url,
            &self.host,
            action,
            body,
            &self.creds,
            &self.region,
        );
        let mut req = self.http.post(self.url.clone()).body(signed.payload);
        for (n, v) in &signed.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let resp = req
            .send()
            .map_err(|e| CtlError::Unreachable(format!("{}: {e}", self.url)))?;
        let status = resp.status().as_u16();
        let v: Value = resp
            .json()
            .map_err(|e| CtlError::Unreachable(format!("{}: answer is not JSON: {e}", self.url)))?;
        if status == 200 {
            return Ok(v);
        }
        let (kind, message) = api_error(&v);
        Err(CtlError::Api {
            status,
            kind,
            message,
        })
    }
}

/// Entry point from `flowgatectl` when [`wants_zones`].
pub fn main(argv: &[String]) -> ExitCode {
    let cli = match ZoneCli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let creds = match (
        env("FLOWGATE_ACCESS_KEY_ID"),
        env("FLOWGATE_SECRET_ACCESS_KEY"),
    ) {
        (Some(a), Some(s)) => Credentials {
            access_key_id: a,
            secret_access_key: s,
        },
        _ => {
            eprintln!("flowgatectl: set FLOWGATE_ACCESS_KEY_ID and FLOWGATE_SECRET_ACCESS_KEY");
            return ExitCode::from(2);
        }
    };
    let region = env("FLOWGATE_REGION").unwrap_or_else(|| "us-east-1".into());
    let result = AwsClient::new(&cli.api, cli.ca_file.as_deref(), creds, region)
        .and_then(|client| run(&cli, &client));
    match result {
        Ok((text, code)) => {
            print!("{text}");
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("flowgatectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// One zone's outcome of a start-and-wait.
#[derive(Debug)]
struct ZoneRun {
    zone: String,
    operation: Option<Value>,
    flows: Vec<Value>,
    error: Option<CtlError>,
}

/// Runs the command; returns the text to print and the exit code.
pub fn run(cli: &ZoneCli, client: &AwsClient) -> Result<(String, u8), CtlError> {
    let described = client.call("DescribeFirewall", &json!({}))?;
    let arn = match &cli.firewall_arn {
        Some(a) => a.clone(),
        None => described
            .pointer("/Firewall/FirewallArn")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CtlError::Usage("the endpoint names no firewall: give --firewall-arn".into())
            })?
            .to_string(),
    };
    let all: Vec<String> = described
        .pointer("/FirewallStatus/SyncStates")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let zones: Vec<String> = match (&cli.zone, cli.all_zones) {
        (Some(z), _) => {
            if !all.is_empty() && !all.contains(z) {
                return Err(CtlError::Usage(format!(
                    "--zone: '{z}' is not one of the firewall's zones: {}",
                    all.join(", ")
                )));
            }
            vec![z.clone()]
        }
        (None, true) if !all.is_empty() => all.clone(),
        (None, true) => return Err(CtlError::Usage("the endpoint reports no zones".into())),
        (None, false) => return Err(CtlError::Usage("give --zone NAME or --all-zones".into())),
    };
    match &cli.cmd {
        Cmd::Capture(a) => start_all(cli, client, &arn, &zones, "StartFlowCapture", a),
        Cmd::Flush(a) => start_all(cli, client, &arn, &zones, "StartFlowFlush", a),
        Cmd::Ops => ops(cli, client, &arn, &zones).map(|t| (t, 0)),
        Cmd::Zones => Ok((zones_table(cli, &described, &zones), 0)),
    }
}

fn zones_table(cli: &ZoneCli, described: &Value, zones: &[String]) -> String {
    if cli.json {
        return pretty(&described["FirewallStatus"]);
    }
    let rows: Vec<Vec<String>> = zones
        .iter()
        .map(|z| {
            let s = &described["FirewallStatus"]["SyncStates"][z];
            let sync = s["Config"]
                .as_object()
                .and_then(|c| c.values().next())
                .and_then(|c| c["SyncStatus"].as_str())
                .unwrap_or("-");
            vec![
                z.clone(),
                s["Attachment"]["Status"].as_str().unwrap_or("-").into(),
                sync.into(),
                s["Attachment"]["StatusMessage"]
                    .as_str()
                    .unwrap_or("")
                    .into(),
            ]
        })
        .collect();
    let mut t = ctl::table(&["ZONE", "ENDPOINT", "POLICY", "MESSAGE"], &rows);
    t.push_str(&format!(
        "configuration: {}\n",
        described["FirewallStatus"]["ConfigurationSyncStateSummary"]
            .as_str()
            .unwrap_or("-")
    ));
    t
}

fn start_all(
    cli: &ZoneCli,
    client: &AwsClient,
    arn: &str,
    zones: &[String],
    action: &str,
    args: &StartArgs,
) -> Result<(String, u8), CtlError> {
    let filters = args.flow_filters()?;
    let kind = if action == "StartFlowCapture" {
        "capture"
    } else {
        "flush"
    };
    let progress = Progress::new(zones);
    let runs: Vec<ZoneRun> = std::thread::scope(|s| {
        let handles: Vec<_> = zones
            .iter()
            .map(|zone| {
                let (filters, progress) = (&filters, &progress);
                s.spawn(move || run_zone(client, arn, zone, action, filters, args, progress))
            })
            .collect();
        handles
            .into_iter()
            .zip(zones)
            .map(|(h, zone)| {
                h.join().unwrap_or_else(|_| ZoneRun {
                    zone: zone.clone(),
                    operation: None,
                    flows: Vec::new(),
                    error: Some(CtlError::Incomplete("worker thread panicked".into())),
                })
            })
            .collect()
    });
    progress.finish();
    let code = runs
        .iter()
        .map(|r| match (&r.error, &r.operation) {
            (Some(e), _) => e.exit_code(),
            (None, Some(op)) if op["FlowOperationStatus"] == "COMPLETED" => 0,
            (None, Some(op)) if op["FlowOperationStatus"] == "IN_PROGRESS" && args.no_wait => 0,
            _ => 1,
        })
        .max()
        .unwrap_or(0);
    if cli.json {
        let v: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({
                    "AvailabilityZone": r.zone,
                    "Operation": r.operation,
                    "Flows": r.flows,
                    "Error": r.error.as_ref().map(|e| e.to_string()),
                })
            })
            .collect();
        return Ok((pretty(&json!({ "Zones": v })), code));
    }
    let mut out = String::new();
    let mut rows = Vec::new();
    for r in &runs {
        for f in &r.flows {
            let addr = |k: &str| f[k]["AddressDefinition"].as_str().unwrap_or("").to_string();
            let s = |k: &str| match &f[k] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            rows.push(vec![
                r.zone.clone(),
                protocol_name(&s("Protocol")),
                addr("SourceAddress"),
                s("SourcePort"),
                addr("DestinationAddress"),
                s("DestinationPort"),
                s("Age"),
                s("PacketCount"),
                s("ByteCount"),
            ]);
        }
    }
    if !args.no_wait {
        if rows.is_empty() {
            out.push_str("no flows matched\n");
        } else {
            out.push_str(&ctl::table(
                &[
                    "ZONE", "PROTO", "SRC", "SPORT", "DST", "DPORT", "AGE(s)", "PKTS", "BYTES",
                ],
                &rows,
            ));
        }
        out.push('\n');
    }
    let status_rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let op = r.operation.as_ref();
            let s = |k: &str| op.and_then(|o| o[k].as_str()).unwrap_or("-").to_string();
            vec![
                r.zone.clone(),
                s("FlowOperationId"),
                match &r.error {
                    Some(_) => "ERROR".into(),
                    None => s("FlowOperationStatus"),
                },
                if args.no_wait {
                    "-".into()
                } else {
                    r.flows.len().to_string()
                },
                match &r.error {
                    Some(e) => e.to_string(),
                    None => op
                        .and_then(|o| o["StatusMessage"].as_str())
                        .unwrap_or("")
                        .to_string(),
                },
            ]
        })
        .collect();
    out.push_str(&ctl::table(
        &[
            "ZONE",
            kind.to_ascii_uppercase().as_str(),
            "STATUS",
            "FLOWS",
            "MESSAGE",
        ],
        &status_rows,
    ));
    Ok((out, code))
}

fn run_zone(
    client: &AwsClient,
    arn: &str,
    zone: &str,
    action: &str,
    filters: &Value,
    args: &StartArgs,
    progress: &Progress,
) -> ZoneRun {
    let mut run = ZoneRun {
        zone: zone.to_string(),
        operation: None,
        flows: Vec::new(),
        error: None,
    };
    let scope = json!({"FirewallArn": arn, "AvailabilityZone": zone});
    let mut start = scope.clone();
    start["FlowFilters"] = filters.clone();
    start["MinimumFlowAgeInSeconds"] = json!(args.min_age);
    let started = match client.call(action, &start) {
        Ok(v) => v,
        Err(e) => {
            progress.set(zone, format!("refused: {e}"));
            run.error = Some(e);
            return run;
        }
    };
    let id = started["FlowOperationId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    run.operation = Some(started);
    if args.no_wait {
        progress.set(zone, format!("{id} started"));
        return run;
    }
    let began = Instant::now();
    let mut describe = scope.clone();
    describe["FlowOperationId"] = json!(id);
    loop {
        match client.call("DescribeFlowOperation", &describe) {
            Ok(op) => {
                let status = op["FlowOperationStatus"].as_str().unwrap_or("").to_string();
                progress.set(
                    zone,
                    format!("{id} {status} {:.1}s", began.elapsed().as_secs_f64()),
                );
                run.operation = Some(op);
                if status != "IN_PROGRESS" {
                    break;
                }
            }
            Err(e) => {
                progress.set(zone, format!("{id}: {e}"));
                run.error = Some(e);
                return run;
            }
        }
        if began.elapsed() > Duration::from_secs(args.timeout) {
            run.error = Some(CtlError::Incomplete(format!(
                "{id} still IN_PROGRESS after {}s",
                args.timeout
            )));
            return run;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut token: Option<String> = None;
    loop {
        let mut req = describe.clone();
        req["MaxResults"] = json!(100);
        if let Some(t) = &token {
            req["NextToken"] = json!(t);
        }
        match client.call("ListFlowOperationResults", &req) {
            Ok(page) => {
                if let Some(f) = page["Flows"].as_array() {
                    run.flows.extend(f.iter().cloned());
                }
                token = page["NextToken"].as_str().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            Err(e) => {
                run.error = Some(e);
                break;
            }
        }
    }
    run
}

/// Per-zone progress on stderr: redrawn in place on a terminal, one line per change
/// otherwise.
struct Progress {
    lines: Mutex<Vec<(String, String)>>,
    tty: bool,
}

impl Progress {
    fn new(zones: &[String]) -> Progress {
        Progress {
            lines: Mutex::new(
                zones
                    .iter()
                    .map(|z| (z.clone(), "starting".into()))
                    .collect(),
            ),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn set(&self, zone: &str, status: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = lines.iter().position(|(z, _)| z == zone) else {
            return;
        };
        let changed_kind = lines[i].1.split(' ').nth(1) != status.split(' ').nth(1);
        lines[i].1 = status;
        if self.tty {
            let all: Vec<String> = lines.iter().map(|(z, s)| format!("{z}: {s}")).collect();
            eprint!("\r\x1b[2K{}", all.join(" | "));
        } else if changed_kind {
            eprintln!("{zone}: {}", lines[i].1);
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn ops(cli: &ZoneCli, client: &AwsClient, arn: &str, zones: &[String]) -> Result<String, CtlError> {
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for zone in zones {
        let mut token: Option<String> = None;
        loop {
            let mut req = json!({"FirewallArn": arn, "AvailabilityZone": zone, "MaxResults": 100});
            if let Some(t) = &token {
                req["NextToken"] = json!(t);
            }
            let page = client.call("ListFlowOperations", &req)?;
            for op in page["FlowOperations"].as_array().into_iter().flatten() {
                let s = |k: &str| op[k].as_str().unwrap_or("").to_string();
                rows.push(vec![
                    zone.clone(),
                    s("FlowOperationId"),
                    s("FlowOperationType"),
                    s("FlowOperationStatus"),
                    op["FlowRequestTimestamp"].to_string(),
                ]);
                let mut o = op.clone();
                o["AvailabilityZone"] = json!(zone);
                all.push(o);
            }
            token = page["NextToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    if cli.json {
        return Ok(pretty(&json!({ "FlowOperations": all })));
    }
    Ok(ctl::table(
        &["ZONE", "ID", "TYPE", "STATUS", "REQUESTED"],
        &rows,
    ))
}

fn protocol_name(p: &str) -> String {
    match p {
        "1" => "ICMP".into(),
        "6" => "TCP".into(),
        "17" => "UDP".into(),
        "58" => "ICMPv6".into(),
        "132" => "SCTP".into(),
        n => n.to_string(),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ZoneCli, clap::Error> {
        let mut v = vec!["flowgatectl", "--api", "https://127.0.0.1:1"];
        v.extend_from_slice(args);
        ZoneCli::try_parse_from(v)
    }

    #[test]
    fn zone_flags_are_detected_and_exclusive() {
        let argv = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(wants_zones(&argv(&[
            "flowgatectl",
            "--all-zones",
            "capture"
        ])));
        assert!(wants_zones(&argv(&["flowgatectl", "--zone=a", "capture"])));
        assert!(!wants_zones(&argv(&[
            "flowgatectl",
            "capture",
            "--src",
            "x"
        ])));
        assert!(parse(&["--zone", "a", "--all-zones", "capture"]).is_err());
        let c = parse(&[
            "--all-zones",
            "flush",
            "--src",
            "198.18.0.0/15",
            "--proto",
            "tcp",
        ])
        .unwrap();
        let Cmd::Flush(a) = c.cmd else { panic!() };
        let f = a.flow_filters().unwrap();
        assert_eq!(f[0]["SourceAddress"]["AddressDefinition"], "198.18.0.0/15");
        assert_eq!(f[0]["Protocols"], json!(["6"]));
    }

    #[test]
    fn no_address_means_both_families_and_bad_protocols_are_usage_errors() {
        let c = parse(&["--zone", "a", "capture", "--dport", "80"]).unwrap();
        let Cmd::Capture(a) = c.cmd else { panic!() };
        let f = a.flow_filters().unwrap();
        assert_eq!(f.as_array().unwrap().len(), 2);
        assert_eq!(f[1]["SourceAddress"]["AddressDefinition"], "::/0");
        assert_eq!(f[1]["DestinationPort"], "80");
        let c = parse(&["--zone", "a", "capture", "--proto", "gre"]).unwrap();
        let Cmd::Capture(a) = c.cmd else { panic!() };
        assert!(matches!(a.flow_filters(), Err(CtlError::Usage(m)) if m.contains("gre")));
    }
}
