//! Shared harness for the integration tests: they drive the real `flowgate` binary
//! through the real DPDK path (one EAL per process, so every test spawns the binary).
#![allow(dead_code)]

pub mod fleet;
pub mod hostile;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// These tests need root (DPDK EAL, namespaces). They never skip: without root they fail.
pub fn require_root() {
    // SAFETY-free check: /proc/self/status Uid line.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("1");
    assert_eq!(
        uid, "0",
        "this integration test needs root (DPDK EAL / network namespaces); run scripts/test.sh as root"
    );
}

pub fn flowgate_bin() -> PathBuf {
    std::env::var_os("FLOWGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flowgate")))
}

pub fn flowgatectl_bin() -> PathBuf {
    std::env::var_os("FLOWGATECTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flowgatectl")))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "fg-it-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ (rand_u32() as u128)
        ));
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u32::from_le_bytes(b)
}

/// A running appliance; killed on drop if the test did not stop it.
pub struct Appliance {
    pub child: Option<Child>,
    pub api: String,
    pub log: PathBuf,
    /// The process started, also after a test took `child` to kill it itself.
    pid: u32,
}

/// The TLS material every test appliance serves its API with: a leaf for `localhost`,
/// `127.0.0.1` and `::1` signed by a test CA, generated once per test process.
pub struct TestTls {
    pub dir: TempDir,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub fn test_tls() -> &'static TestTls {
    static TLS: OnceLock<TestTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = TempDir::new("tls");
        let pair =
            api_server::tls::generate_pair(&["localhost".into(), "127.0.0.1".into(), "::1".into()])
                .expect("generate the test certificate");
        let tls = TestTls {
            ca_file: dir.path("ca.pem"),
            cert_file: dir.path("cert.pem"),
            key_file: dir.path("key.pem"),
            dir,
        };
        std::fs::write(&tls.ca_file, pair.ca_pem).expect("write ca.pem");
        std::fs::write(&tls.cert_file, pair.cert_pem).expect("write cert.pem");
        std::fs::write(&tls.key_file, pair.key_pem).expect("write key.pem");
        tls
    })
}

/// `[mgmt.tls]` for a test config, serving the [`test_tls`] certificate.
pub fn tls_section() -> String {
    let t = test_tls();
    format!(
        "\n[mgmt.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        t.cert_file, t.key_file
    )
}

fn build_client(keep_alive: bool) -> reqwest::blocking::Client {
    let pem = std::fs::read(&test_tls().ca_file).expect("read the test CA");
    let mut builder = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("test CA"))
        .timeout(Duration::from_secs(30));
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().expect("HTTPS client")
}

/// A blocking HTTPS client trusting the test CA, keeping connections alive.
pub fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| build_client(true))
}

/// Like [`client`], but every request opens a new connection.
pub fn fresh_client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| build_client(false))
}

/// The headers of an AWS JSON 1.0 call of `target` with `body` to `api` (`host:port`),
/// SigV4-signed with `creds` for their region when given.
pub fn aws_json_headers(
    api: &str,
    target: &str,
    body: &[u8],
    creds: Option<(&sigv4::Credentials, &str)>,
) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "x-amz-target".to_string(),
            format!("NetworkFirewall_20201112.{target}"),
        ),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
    ];
    if let Some((creds, region)) = creds {
        sigv4::sign(
            "POST",
            api,
            "/",
            "",
            &mut headers,
            body,
            creds,
            region,
            "network-firewall",
            std::time::SystemTime::now(),
        );
    }
    headers
}

/// An HTTPS request with exactly `headers` (e.g. SigV4-signed ones; `host` is the URL's);
/// `(0, error)` when it could not be sent or answered.
pub fn send(
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    send_with(client(), method, addr, path_and_query, headers, body)
}

/// [`send`] with a chosen client.
pub fn send_with(
    client: &reqwest::blocking::Client,
    method: &str,
    addr: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client
        .request(method, format!("https://{addr}{path_and_query}"))
        .body(body.to_vec());
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("host") {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    match request.send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.bytes().map(|b| b.to_vec()).unwrap_or_default())
        }
        Err(e) => (0, e.to_string().into_bytes()),
    }
}

/// An HTTPS request to the appliance API at `addr` (test configs use `auth = "none"`);
/// `(0, error)` when it could not be sent or answered.
pub fn http(method: &str, addr: &str, path: &str, body: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let sent = client()
        .request(method, format!("https://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send();
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

impl Appliance {
    /// Writes `config` to `dir/flowgate.toml` (serving the test certificate unless it sets
    /// its own TLS), starts the binary, waits for `/readyz`.
    pub fn start(dir: &Path, config: &str, api: &str) -> Appliance {
        let cfg = dir.join("flowgate.toml");
        let mut config = config.to_string();
        if !config.contains("[mgmt.tls]") && !config.contains("plain_http") {
            config.push_str(&tls_section());
        }
        std::fs::write(&cfg, config).expect("write config");
        let log = dir.join("flowgate.out");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(flowgate_bin())
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::from(out.try_clone().expect("dup")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn flowgate");
        let mut a = Appliance {
            pid: child.id(),
            child: Some(child),
            api: api.to_string(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = a.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("flowgate exited early ({st}):\n{}", a.output());
                }
            }
            if TcpStream::connect(api).is_ok() && http("GET", api, "/readyz", "").0 == 200 {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "flowgate not ready in 30 s:\n{}",
                a.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        http("GET", &self.api, "/metrics", "").1
    }

    /// Sum of every sample of `name` whose label set contains `filter`.
    pub fn metric(&self, name: &str, filter: &str) -> f64 {
        metric_sum(&self.metrics(), name, filter)
    }

    /// Waits until `cond` holds or panics after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, mut cond: impl FnMut(&Appliance) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- metrics ---\n{}\n--- output ---\n{}",
                self.metrics(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait: the appliance flushes logs and closes ports.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    assert!(
                        st.success(),
                        "flowgate exited with {st}:\n{}",
                        self.output()
                    );
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("flowgate did not stop on SIGTERM:\n{}", self.output());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The EAL runtime directory of the prefix the appliance generated: it removes it on
        // a clean exit, but not when killed (tests kill it on purpose).
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/flowgate-{}", self.pid));
    }
}

pub fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let base = series.split('{').next()?;
            (base == name && series.contains(filter)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// EAL arguments for a test appliance: no hugepages, no PCI, a unique file prefix,
/// main lcore 0 and one worker lcore per entry of `workers` (all floating over CPUs 0-1).
pub fn eal_args(workers: usize, vdevs: &[String]) -> String {
    let lcores: Vec<String> = std::iter::once("0@(0-1)".to_string())
        .chain((1..=workers).map(|l| format!("{l}@(0-1)")))
        .collect();
    let mut args = vec![
        "--no-huge".to_string(),
        "-m".into(),
        "512".into(),
        "--no-shconf".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--log-level=error".into(),
        format!("--lcores={}", lcores.join(",")),
    ];
    args.extend(vdevs.iter().map(|v| format!("--vdev={v}")));
    let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Veth pairs `NAME` ↔ `NAMEp` with IPv6 off (the kernel's own ICMPv6 would create flows):
/// flowgate attaches the first end (`net_af_packet`), the test sends and captures on the
/// peer. Removed on drop, even when the test fails; a leftover of an aborted run is
/// removed first.
pub struct Veths(Vec<String>);

impl Veths {
    pub fn create(names: &[&str]) -> Veths {
        let v = Veths(names.iter().map(|n| n.to_string()).collect());
        for n in &v.0 {
            del_link(n);
            ip_cmd(&[
                "link",
                "add",
                n,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{n}p"),
            ]);
            for end in [n.clone(), format!("{n}p")] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{end}/disable_ipv6"), "1");
                ip_cmd(&["link", "set", &end, "up"]);
            }
        }
        v
    }

    /// The ends flowgate attaches, in creation order.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Drop for Veths {
    fn drop(&mut self) {
        for n in &self.0 {
            del_link(n);
        }
    }
}

pub fn del_link(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// Runs `ip ARGS`, asserting success.
pub fn ip_cmd(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// A pcap being written (Ethernet, nanosecond timestamps); frames go in with
/// [`PcapOut::put`], and [`PcapOut::finish`] flushes the file.
pub struct PcapOut {
    writer: pcap_file::pcap::PcapWriter<std::io::BufWriter<std::fs::File>>,
    frames: u64,
}

impl PcapOut {
    pub fn create(path: &Path) -> PcapOut {
        let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let header = pcap_file::pcap::PcapHeader {
            datalink: pcap_file::DataLink::ETHERNET,
            ts_resolution: pcap_file::TsResolution::NanoSecond,
            ..Default::default()
        };
        PcapOut {
            writer: pcap_file::pcap::PcapWriter::with_header(file, header).unwrap(),
            frames: 0,
        }
    }

    /// Appends one frame, 1 µs after the previous one.
    pub fn put(&mut self, frame: &[u8]) {
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_micros(self.frames);
        let len = u32::try_from(frame.len()).unwrap();
        self.writer
            .write_packet(&pcap_file::pcap::PcapPacket::new(ts, len, frame))
            .unwrap();
        self.frames += 1;
    }

    pub fn finish(self) {
        self.writer.into_writer().flush().unwrap();
    }
}

/// Writes `frames` as a pcap, 1 µs apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapOut::create(path);
    for f in frames {
        w.put(f);
    }
    w.finish();
}

/// Every frame of a pcap, in order.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// The one builder of test appliance configurations: defaults every test shares (state in
/// `state/`, `policy.toml`, logs beside the config, `auth = "none"`), changed per test with
/// [`TestConfig::set`] / [`TestConfig::set_str`], rendered as TOML by
/// [`TestConfig::render`]. (Appliance::start adds the test certificate as `[mgmt.tls]`.)
pub struct TestConfig {
    /// `[section]` tables in order, each with its `key = value` lines (TOML literals).
    sections: Vec<(String, Vec<(String, String)>)>,
    /// `[[port_pair]]` tables: `a`, `b`, then any extra lines.
    pairs: Vec<Vec<(String, String)>>,
}

impl TestConfig {
    /// An appliance named `name` (ARN `…:firewall/<name>`, zone `test-zone`) with its API on
    /// `api`, the EAL arguments `eal` (see [`eal_args`]), worker lcores 1..=`workers` and
    /// port pairs `pairs`.
    pub fn new(name: &str, api: &str, eal: String, workers: usize, pairs: &[(&str, &str)]) -> Self {
        let lcores: Vec<String> = (1..=workers).map(|l| l.to_string()).collect();
        let mut c = TestConfig {
            sections: Vec::new(),
            pairs: pairs
                .iter()
                .map(|(a, b)| {
                    vec![
                        ("a".into(), format!("{a:?}")),
                        ("b".into(), format!("{b:?}")),
                    ]
                })
                .collect(),
        };
        c = c
            .set_str("appliance", "firewall_name", name)
            .set_str(
                "appliance",
                "firewall_arn",
                &format!("arn:aws:network-firewall:us-east-1:000000000000:firewall/{name}"),
            )
            .set_str("appliance", "zone", "test-zone")
            .set_str("appliance", "state_dir", "state")
            .set("eal", "args", &eal)
            .set("eal", "mbufs", "4095")
            .set("workers", "lcores", &format!("[{}]", lcores.join(", ")))
            .set("flow_table", "capacity_per_worker", "4096")
            .set_str("policy", "file", "policy.toml")
            .set_str("mgmt", "listen", api)
            .set_str("mgmt", "auth", "none")
            .set_str("logging", "flow_log", "flow.log")
            .set_str("logging", "alert_log", "alert.log")
            .set_str("logging", "audit_log", "audit.log");
        c
    }

    /// One worker between `net_pcap0` and `net_pcap1`, which read `dir/in_a.pcap` and
    /// `dir/in_b.pcap` and write `dir/out_a.pcap` and `dir/out_b.pcap`.
    pub fn pcap(dir: &TempDir, name: &str, api: &str) -> Self {
        let port = |i: usize, side: &str| {
            format!(
                "net_pcap{i},rx_pcap={},tx_pcap={}",
                dir.path(&format!("in_{side}.pcap")).display(),
                dir.path(&format!("out_{side}.pcap")).display()
            )
        };
        let eal = eal_args(1, &[port(0, "a"), port(1, "b")]);
        TestConfig::new(name, api, eal, 1, &[("net_pcap0", "net_pcap1")])
    }

    /// Sets `key` in `[section]` to the TOML literal `value` (replacing an earlier value).
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        let i = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let lines = &mut self.sections[i].1;
        lines.retain(|(k, _)| k != key);
        lines.push((key.to_string(), value.to_string()));
        self
    }

    /// [`TestConfig::set`] with a string value.
    pub fn set_str(self, section: &str, key: &str, value: &str) -> Self {
        self.set(section, key, &format!("{value:?}"))
    }

    /// Sets `key` on every port pair.
    pub fn set_pairs(mut self, key: &str, value: &str) -> Self {
        for p in &mut self.pairs {
            p.retain(|(k, _)| k != key);
            p.push((key.to_string(), value.to_string()));
        }
        self
    }

    /// SigV4 with one key.
    pub fn sigv4(self, key_id: &str, secret: &str, region: &str) -> Self {
        self.set_str("mgmt", "auth", "sigv4")
            .set_str("mgmt", "region", region)
            .set(
                "mgmt.keys",
                "__key",
                &format!("access_key_id = {key_id:?}\nsecret_access_key = {secret:?}"),
            )
    }

    /// The configuration as TOML.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let table = |out: &mut String, header: &str, lines: &[(String, String)]| {
            let _ = writeln!(out, "{header}");
            for (k, v) in lines {
                match k.as_str() {
                    "__key" => {
                        let _ = writeln!(out, "{v}");
                    }
                    _ => {
                        let _ = writeln!(out, "{k} = {v}");
                    }
                }
            }
        };
        for (section, lines) in &self.sections {
            if section == "mgmt.keys" {
                continue;
            }
            table(&mut out, &format!("[{section}]"), lines);
            if section == "eal" {
                for p in &self.pairs {
                    table(&mut out, "[[port_pair]]", p);
                }
            }
        }
        if let Some((_, keys)) = self.sections.iter().find(|(s, _)| s == "mgmt.keys") {
            table(&mut out, "[[mgmt.keys]]", keys);
        }
        out
    }
}
