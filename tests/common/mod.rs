//! Shared harness for the integration tests: they drive the real `flowgate` binary
//! through the real DPDK path (one EAL per process, so every test spawns the binary).
#![allow(dead_code)]

pub mod fleet;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
}

/// Minimal HTTP GET/POST for tests (no auth: test configs use `auth = "none"`).
pub fn http(method: &str, addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to appliance API");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

impl Appliance {
    /// Writes `config` to `dir/flowgate.toml`, starts the binary, waits for `/readyz`.
    pub fn start(dir: &Path, config: &str, api: &str) -> Appliance {
        let cfg = dir.join("flowgate.toml");
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
