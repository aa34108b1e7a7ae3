//! The management side dies, the data plane does not (SPEC: "if the management thread
//! dies, workers keep forwarding with the last policy"), through the real binary on veth
//! pairs attached with `net_af_packet`:
//! * with the management side alive, allowed flows (TCP handshakes and data both ways,
//!   UDP both ways, IPv4 and IPv6) come out of the other veth byte-identical and denied
//!   ones (TCP to port 23, UDP to port 69) never do;
//! * `POST /v1/debug/kill_mgmt` answers 200, then `/healthz` on the API listener and the
//!   metrics listener stop answering (connection refused) while the process lives on;
//! * a policy that would pass everything is written and SIGHUP sent: ignored, since
//!   reloading is the dead management side's job;
//! * new flows and more packets of the existing ones are then forwarded exactly as before:
//!   every allowed frame out byte-identical, no denied frame out (the last policy in force);
//! * SIGTERM still shuts the appliance down cleanly within a bounded time.
//!
//! `FG_REL_REPORT=1` prints the figures RELIABILITY.md quotes.

mod common;

use common::*;
use dataplane::packet::tcp_flags::{ACK, PSH, SYN};
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
[[stateful.rule_groups]]
name = "t"
rules = [
  { action = "drop", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "23", sid = 1, msg = "telnet" },
  { action = "drop", protocol = "udp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "69", sid = 2, msg = "tftp" },
]
"#;

/// Written (and SIGHUP sent) once the management side is dead: it must not come into force.
const PASS_ALL: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "continue"
"#;

/// Flowgate attaches `fg-kmg-a` and `fg-kmg-b`; the test plays the client on the peer of
/// the first and the server on the peer of the second. Names unlike the lab's (`fg-c-*`,
/// `fg-s-*`) and the other tests' (`fg-mw-*`).
const LINKS: [&str; 2] = ["fg-kmg-a", "fg-kmg-b"];
const CLIENT: &str = "fg-kmg-ap";
const SERVER: &str = "fg-kmg-bp";

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn segment(
    b: &FrameBuilder,
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: ports.0,
        dst_port: ports.1,
        seq,
        ack,
        flags,
        window: 65535,
        options: &[],
        payload,
    })
}

/// A TCP connection the test plays both ends of, with its sequence numbers.
struct Tcp {
    c2s: FrameBuilder,
    s2c: FrameBuilder,
    cport: u16,
    sport: u16,
    isn_c: u32,
    isn_s: u32,
    next_c: u32,
    next_s: u32,
}

impl Tcp {
    fn new(client: &str, server: &str, cport: u16, sport: u16) -> Tcp {
        let isn_c = 1_000_000 + u32::from(cport) * 1000;
        let isn_s = 3_000_000_000 + u32::from(cport) * 1000;
        Tcp {
            c2s: FrameBuilder::new(addr(client), addr(server)),
            s2c: FrameBuilder::new(addr(server), addr(client)),
            cport,
            sport,
            isn_c,
            isn_s,
            next_c: isn_c.wrapping_add(1),
            next_s: isn_s.wrapping_add(1),
        }
    }
    fn syn(&self) -> Vec<u8> {
        segment(&self.c2s, (self.cport, self.sport), self.isn_c, 0, SYN, &[])
    }
    fn syn_ack(&self) -> Vec<u8> {
        segment(
            &self.s2c,
            (self.sport, self.cport),
            self.isn_s,
            self.next_c,
            SYN | ACK,
            &[],
        )
    }
    fn ack(&self) -> Vec<u8> {
        segment(
            &self.c2s,
            (self.cport, self.sport),
            self.next_c,
            self.next_s,
            ACK,
            &[],
        )
    }
    /// A data segment from the client; payloads differ per call so frames stay distinct.
    fn client_data(&mut self, text: &str) -> Vec<u8> {
        let payload = format!("{text} {} -> {}", self.cport, self.sport).into_bytes();
        let f = segment(
            &self.c2s,
            (self.cport, self.sport),
            self.next_c,
            self.next_s,
            PSH | ACK,
            &payload,
        );
        self.next_c = self.next_c.wrapping_add(payload.len() as u32);
        f
    }
    fn server_data(&mut self, text: &str) -> Vec<u8> {
        let payload = format!("{text} {} -> {}", self.sport, self.cport).into_bytes();
        let f = segment(
            &self.s2c,
            (self.sport, self.cport),
            self.next_s,
            self.next_c,
            PSH | ACK,
            &payload,
        );
        self.next_s = self.next_s.wrapping_add(payload.len() as u32);
        f
    }
}

/// A UDP flow both ends of which the test plays.
struct Udp {
    c2s: FrameBuilder,
    s2c: FrameBuilder,
    cport: u16,
    sport: u16,
}

impl Udp {
    fn new(client: &str, server: &str, cport: u16, sport: u16) -> Udp {
        Udp {
            c2s: FrameBuilder::new(addr(client), addr(server)),
            s2c: FrameBuilder::new(addr(server), addr(client)),
            cport,
            sport,
        }
    }
    fn request(&self, n: u8) -> Vec<u8> {
        let payload = format!("request {n} from {}", self.cport);
        self.c2s.udp(self.cport, self.sport, payload.as_bytes())
    }
    fn reply(&self, n: u8) -> Vec<u8> {
        let payload = format!("reply {n} to {}", self.cport);
        self.s2c.udp(self.sport, self.cport, payload.as_bytes())
    }
}

/// The flows one phase opens. Ports differ per phase, so every phase's flows are new.
struct Flows {
    tcp_pass: Vec<Tcp>,
    tcp_deny: Vec<Tcp>,
    udp_pass: Vec<Udp>,
    udp_deny: Vec<Udp>,
}

impl Flows {
    fn new(phase: u16) -> Flows {
        let base = 30000 + phase * 100;
        let (c4, s4) = ("198.18.7.10", "198.19.7.10");
        let (c6, s6) = ("2001:2:0:7::10", "2001:2:0:7::20");
        Flows {
            tcp_pass: (0..4)
                .map(|i| Tcp::new(c4, s4, base + i, 80))
                .chain((0..2).map(|i| Tcp::new(c6, s6, base + 10 + i, 443)))
                .collect(),
            tcp_deny: (0..3)
                .map(|i| Tcp::new(c4, s4, base + 20 + i, 23))
                .chain(std::iter::once(Tcp::new(c6, s6, base + 30, 23)))
                .collect(),
            udp_pass: (0..4)
                .map(|i| Udp::new(c4, s4, base + 40 + i, 53))
                .collect(),
            udp_deny: (0..3)
                .map(|i| Udp::new(c4, s4, base + 50 + i, 69))
                .collect(),
        }
    }
}

/// What one run of the send-and-capture helper sends: four steps, client, server, client,
/// server (each waits for the previous one to be through the appliance), and which
/// frames must come out of the other end.
#[derive(Default)]
struct Phase {
    steps: [Vec<Vec<u8>>; 4],
    /// Allowed frames by the link they must come out of.
    expected: BTreeMap<&'static str, Vec<Vec<u8>>>,
    denied: Vec<Vec<u8>>,
}

impl Phase {
    fn sender(step: usize) -> &'static str {
        [CLIENT, SERVER, CLIENT, SERVER][step]
    }
    fn pass(&mut self, step: usize, frame: Vec<u8>) {
        let out = if Self::sender(step) == CLIENT {
            SERVER
        } else {
            CLIENT
        };
        self.expected.entry(out).or_default().push(frame.clone());
        self.steps[step].push(frame);
    }
    fn deny(&mut self, step: usize, frame: Vec<u8>) {
        self.denied.push(frame.clone());
        self.steps[step].push(frame);
    }
    fn sent(&self) -> usize {
        self.steps.iter().map(Vec::len).sum()
    }
    fn allowed(&self) -> usize {
        self.expected.values().map(Vec::len).sum()
    }

    /// New flows: TCP handshakes with data both ways, UDP requests and replies; the
    /// denied ones get their first packets (two per flow).
    fn open(&mut self, f: &mut Flows) {
        for c in &mut f.tcp_pass {
            self.pass(0, c.syn());
            self.pass(1, c.syn_ack());
            self.pass(2, c.ack());
            self.pass(2, c.client_data("hello"));
            self.pass(3, c.server_data("welcome"));
        }
        for c in &mut f.tcp_deny {
            self.deny(0, c.syn());
            self.deny(2, c.syn()); // a retransmission
        }
        for u in &f.udp_pass {
            self.pass(0, u.request(1));
            self.pass(0, u.request(2));
            self.pass(1, u.reply(1));
        }
        for u in &f.udp_deny {
            self.deny(0, u.request(1));
            self.deny(2, u.request(2));
        }
    }

    /// More packets of flows opened earlier.
    fn continue_flows(&mut self, f: &mut Flows) {
        for c in &mut f.tcp_pass {
            self.pass(0, c.client_data("more"));
            self.pass(1, c.server_data("more"));
            self.pass(2, c.client_data("again"));
        }
        for c in &mut f.tcp_deny {
            self.deny(0, c.syn());
            self.deny(0, c.client_data("anyone"));
        }
        for u in &f.udp_pass {
            self.pass(0, u.request(3));
            self.pass(1, u.reply(3));
        }
        for u in &f.udp_deny {
            self.deny(0, u.request(3));
        }
    }
}

/// A frame of this test: IPv4 in 198.18.0.0/15 or IPv6 in 2001:2::/48 (anything else on
/// the links is the kernel's and is only counted).
fn is_test_frame(f: &[u8]) -> bool {
    match f.get(12..14) {
        Some([0x08, 0x00]) => f
            .get(26..34)
            .is_some_and(|a| a[0] == 198 && a[1] & 0xfe == 18),
        Some([0x86, 0xdd]) => f.get(22..28) == Some(&[0x20, 0x01, 0, 2, 0, 0]),
        _ => false,
    }
}

/// What came out of the appliance in one phase.
struct Outcome {
    sent: usize,
    allowed: usize,
    denied: usize,
    forwarded: usize,
    strays: usize,
    secs: f64,
}

/// Sends the phase's steps and captures both links; asserts that exactly the allowed
/// frames came out, byte-identical, each on the link it must, and no denied frame did.
fn run_phase(dir: &TempDir, name: &str, phase: &Phase) -> Outcome {
    let out_dir = dir.path(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut args = vec![
        repo()
            .join("tests/helpers/send_and_capture.py")
            .display()
            .to_string(),
        out_dir.display().to_string(),
        "150".into(),  // ms between steps
        "1000".into(), // ms without a frame that ends the capture
        format!("{CLIENT},{SERVER}"),
    ];
    for (k, frames) in phase.steps.iter().enumerate() {
        let path = out_dir.join(format!("step{k}.pcap"));
        write_pcap(&path, frames);
        args.push(Phase::sender(k).to_string());
        args.push(path.display().to_string());
    }
    let t0 = Instant::now();
    let out = Command::new("python3")
        .args(&args)
        .output()
        .expect("python3");
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "send_and_capture.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut forwarded = 0;
    let mut strays = 0;
    for link in [CLIENT, SERVER] {
        let (mut got, other): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            read_pcap(&out_dir.join(format!("{link}.pcap")))
                .into_iter()
                .partition(|f| is_test_frame(f));
        strays += other.len();
        let mut want = phase.expected.get(link).cloned().unwrap_or_default();
        let leaked = got.iter().filter(|f| phase.denied.contains(f)).count();
        assert_eq!(
            leaked, 0,
            "{name}: {leaked} denied frames came out of {link}"
        );
        got.sort();
        want.sort();
        let missing = want.iter().filter(|f| !got.contains(f)).count();
        let unexpected = got.iter().filter(|f| !want.contains(f)).count();
        assert!(
            got == want,
            "{name}: out of {link}: {} frames, {} expected; {missing} expected frames missing, {unexpected} not expected",
            got.len(),
            want.len()
        );
        forwarded += got.len();
    }
    Outcome {
        sent: phase.sent(),
        allowed: phase.allowed(),
        denied: phase.denied.len(),
        forwarded,
        strays,
        secs,
    }
}

/// `GET /healthz` on `addr`: the status, or why nothing answered.
fn healthz(addr: &str) -> Result<u16, String> {
    let sa: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {:?}", e.kind()))?;
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    match text.split_whitespace().nth(1).and_then(|c| c.parse().ok()) {
        Some(code) if text.starts_with("HTTP/1.1 ") => Ok(code),
        _ => Err(match read {
            Err(e) => format!("read: {:?}", e.kind()),
            Ok(_) => "closed without an answer".into(),
        }),
    }
}

/// Probes `GET /healthz` until the connection is refused (at most 5 s after `since`);
/// before that nothing may answer. Returns the time from `since` to the first refusal.
fn wait_refused(addr: &str, since: Instant) -> Duration {
    loop {
        match healthz(addr) {
            Err(why) if why.contains("ConnectionRefused") => return since.elapsed(),
            Ok(code) => panic!("{addr} answered {code} after kill_mgmt"),
            Err(_) => assert!(
                since.elapsed() < Duration::from_secs(5),
                "{addr} still accepting connections 5 s after kill_mgmt"
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(fg: &Appliance, sig: &str) {
    let pid = fg.child.as_ref().expect("running").id();
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} {pid}");
}

fn assert_alive(fg: &mut Appliance, when: &str) {
    let c = fg.child.as_mut().expect("running");
    if let Ok(Some(st)) = c.try_wait() {
        panic!("flowgate exited {when} ({st}):\n{}", fg.output());
    }
}

#[test]
fn workers_keep_forwarding_with_the_last_policy_after_the_management_side_dies() {
    require_root();
    let dir = TempDir::new("mgmt-death");
    let veths = Veths::create(&LINKS);
    std::fs::write(dir.path("policy.toml"), POLICY).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let vdevs: Vec<String> = LINKS
        .iter()
        .enumerate()
        .map(|(k, n)| format!("net_af_packet{k},iface={n}"))
        .collect();
    let config = TestConfig::new(
        "mgmt-death",
        &api,
        eal_args(1, &vdevs),
        1,
        &[("net_af_packet0", "net_af_packet1")],
    )
    .set("eal", "mbufs", "8191")
    .set_pairs("rx_desc", "512")
    .set_pairs("tx_desc", "512")
    .set_str("mgmt", "metrics_listen", &metrics)
    .set_str("logging", "alert_log", "off")
    .set("debug", "fault_injection", "true")
    .render();
    let mut fg = Appliance::start(&dir.0, &config, &api);

    // Phase 1, management alive: the policy is enforced and the counters agree.
    let mut first = Flows::new(1);
    let mut p1 = Phase::default();
    p1.open(&mut first);
    let o1 = run_phase(&dir, "phase1", &p1);
    let sent1 = o1.sent as f64;
    fg.wait_for(5, "phase 1 counted", |a| {
        a.metric("flowgate_rx_packets_total", "") >= sent1
    });
    let m = fg.metrics();
    let rx1 = metric_sum(&m, "flowgate_rx_packets_total", "");
    let tx1 = metric_sum(&m, "flowgate_tx_packets_total", "");
    let policy_drops1 = metric_sum(&m, "flowgate_dropped_packets_total", "reason=\"policy\"");
    assert_eq!(policy_drops1, o1.denied as f64, "{m}");
    assert_eq!(healthz(&metrics), Ok(200), "metrics listener serves");

    // Kill the management side.
    let (code, body) = http("POST", &api, "/v1/debug/kill_mgmt", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"killed\""), "{body}");
    let killed = Instant::now();
    let refused_after = wait_refused(&api, killed);
    wait_refused(&metrics, killed);
    assert_alive(&mut fg, "after kill_mgmt");

    // A policy that passes everything, and SIGHUP: ignored, the management side is dead.
    std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
    signal(&fg, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fg.output().contains("SIGHUP ignored") {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not handled:\n{}",
            fg.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Phase 2, management dead: new flows and more packets of the phase-1 flows.
    let mut second = Flows::new(2);
    let mut p2 = Phase::default();
    p2.open(&mut second);
    p2.continue_flows(&mut first);
    let o2 = run_phase(&dir, "phase2", &p2);
    assert_eq!(
        healthz(&api).map_err(|why| why.contains("ConnectionRefused")),
        Err(true),
        "API came back"
    );
    assert_alive(&mut fg, "after phase 2");
    let out = fg.output();
    assert!(out.contains("collector thread exited"), "{out}");
    assert!(!out.contains("policy reloaded"), "{out}");

    // SIGTERM: a clean exit in bounded time, the management side dead or not.
    let mut child = fg.child.take().unwrap();
    let term = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let exit = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if term.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "flowgate did not exit within 15 s of SIGTERM:\n{}",
                fg.output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let exit_ms = term.elapsed().as_millis();
    assert!(
        exit.success(),
        "flowgate exited with {exit}:\n{}",
        fg.output()
    );
    assert!(fg.output().contains("shutting down"));
    let flow_log_lines = std::fs::read_to_string(dir.path("flow.log"))
        .unwrap_or_default()
        .lines()
        .count();

    let report = format!(
        "MGMT_DEATH phase1(alive): sent={} allowed={} denied={} forwarded={} strays={} rx={rx1} tx={tx1} policy_drops={policy_drops1} secs={:.2}\n\
         MGMT_DEATH kill: healthz_refused_after_ms={} metrics_listener=refused sighup=ignored\n\
         MGMT_DEATH phase2(dead): sent={} allowed={} denied={} forwarded={} leaked=0 strays={} secs={:.2}\n\
         MGMT_DEATH sigterm_exit_ms={exit_ms} flow_log_lines={flow_log_lines}",
        o1.sent,
        o1.allowed,
        o1.denied,
        o1.forwarded,
        o1.strays,
        o1.secs,
        refused_after.as_millis(),
        o2.sent,
        o2.allowed,
        o2.denied,
        o2.forwarded,
        o2.strays,
        o2.secs,
    );
    eprintln!("{report}");
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!("{report}");
    }
    drop(veths);
}
