//! Policy benchmarks: stateful evaluation of new flows against 1,000 generated rules (the
//! new-flow budget is ≤ 500 ns, i.e. ≥ 2 M evaluations/s per core) and compile time.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::packet::{v4_to_addr, PacketMeta, Tuple};
use dataplane::policy::{load_policy, CompiledPolicy, Policy, StatelessAction};

/// Deterministic xorshift so every run benches the same policy and traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 1,000 rules in the shape of a real policy: host/subnet CIDRs in 198.18.0.0/15, single
/// ports and ranges, lists with negations, some `<>`, every action.
fn rules_text(n: usize, rng: &mut Rng) -> String {
    let mut text = String::new();
    for sid in 1..=n {
        let action = ["pass", "pass", "drop", "drop", "reject", "alert"][rng.below(6) as usize];
        let proto = ["tcp", "tcp", "tcp", "udp"][rng.below(4) as usize];
        let net = |rng: &mut Rng| match rng.below(4) {
            0 => "any".to_string(),
            1 => format!("198.{}.{}.0/24", 18 + rng.below(2), rng.below(256)),
            2 => format!(
                "198.{}.{}.{}",
                18 + rng.below(2),
                rng.below(256),
                rng.below(256)
            ),
            _ => format!(
                "[198.{}.0.0/16, !198.18.{}.0/24]",
                18 + rng.below(2),
                rng.below(256)
            ),
        };
        let port = |rng: &mut Rng| match rng.below(4) {
            0 => "any".to_string(),
            1 => (1 + rng.below(65535)).to_string(),
            2 => {
                let lo = rng.below(60000);
                format!("{lo}:{}", lo + rng.below(2000))
            }
            _ => format!("[{}, {}]", rng.below(1024), 1024 + rng.below(64000)),
        };
        let dir = if rng.below(8) == 0 { "<>" } else { "->" };
        let (src, dst, dport) = (net(rng), net(rng), port(rng));
        text += &format!(
            "{action} {proto} {src} any {dir} {dst} {dport} (msg:\"rule {sid}\"; sid:{sid};)\n"
        );
    }
    text
}

fn policy(n: usize) -> Policy {
    let dir = std::env::temp_dir().join(format!("flowgate-policy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules: PathBuf = dir.join("bench.rules");
    std::fs::write(&rules, rules_text(n, &mut Rng(0x9e37_79b9_7f4a_7c15))).expect("write rules");
    let toml = dir.join("bench.toml");
    std::fs::write(
        &toml,
        "[[stateful.rule_groups]]\nname = \"bench\"\nrules_file = \"bench.rules\"\n",
    )
    .expect("write policy");
    let p = load_policy(&toml).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    p
}

/// `n` stateless rules like an operator writes them: a few blocked prefixes and ports, one
/// TCP-flags rule; none of them matches the bench traffic, so every packet pays for all.
fn stateless_policy(n: usize) -> CompiledPolicy {
    let mut text = String::from("[stateless]\ndefault_action = \"forward_to_sfe\"\n");
    for i in 0..n {
        text += &format!(
            "[[stateless.rules]]\npriority = {}\naction = \"drop\"\nsources = [\"10.{i}.0.0/16\"]\nprotocols = [6, 17]\n\
             destination_ports = [\"{}\"]\n",
            i + 1,
            6000 + i
        );
    }
    text += "[[stateless.rules]]\npriority = 1000\naction = \"drop\"\nprotocols = [6]\n\
             tcp_flags = [{ flags = [\"FIN\", \"PSH\", \"URG\"] }]\n";
    let p = Policy::from_toml_str(&text, std::path::Path::new("bench.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    CompiledPolicy::compile(&p, 1)
}

fn tuples(n: usize) -> Vec<Tuple> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|_| Tuple {
            proto: if rng.below(4) == 0 { 17 } else { 6 },
            src: v4_to_addr(0xc612_0000 | (rng.below(1 << 17) as u32)),
            dst: v4_to_addr(0xc612_0000 | (rng.below(1 << 17) as u32)),
            src_port: rng.below(65536) as u16,
            dst_port: if rng.below(2) == 0 {
                rng.below(1024) as u16
            } else {
                rng.below(65536) as u16
            },
        })
        .collect()
}

fn bench_policy(c: &mut Criterion) {
    let p = policy(1000);
    let compiled = CompiledPolicy::compile(&p, 1);
    eprintln!("{}", compiled.summary());
    let flows = tuples(4096);

    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("stateful_1000_rules_4096_flows", |b| {
        b.iter(|| {
            let mut drops = 0u32;
            for t in &flows {
                drops += compiled.stateful(black_box(t), false).verdict as u32;
            }
            drops
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("compile_1000_rules", |b| {
        b.iter(|| CompiledPolicy::compile(black_box(&p), 2))
    });

    // Stateless rules run on every packet, so their cost is per packet, not per flow.
    let stateless = stateless_policy(10);
    let packets: Vec<PacketMeta> = flows
        .iter()
        .map(|t| PacketMeta {
            proto: t.proto,
            src: t.src,
            dst: t.dst,
            src_port: t.src_port,
            dst_port: t.dst_port,
            tcp_flags: 0x10,
            ..PacketMeta::default()
        })
        .collect();
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("stateless_10_rules_4096_packets", |b| {
        b.iter(|| {
            packets
                .iter()
                .filter(|m| stateless.stateless(black_box(m)) == StatelessAction::Drop)
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
