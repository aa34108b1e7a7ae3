//! `wire::parse_frame` micro-benchmarks: ns per frame for minimum-size TCP frames
//! (60 bytes + FCS = 64 on the wire; IPv6 + TCP cannot fit, so its frame is the 74-byte
//! minimum), and a burst of 32 mixed frames as the worker sees them.
//!
//! Target (dataplane/src/wire brief): well under 20 ns per 64-byte TCP frame.
//! Run: `cargo bench -p dataplane --bench parse`.

use std::net::IpAddr;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::packet::tcp_flags;
use dataplane::wire::build::{EchoKind, FrameBuilder, TcpSegment};
use dataplane::wire::ethernet::ethertype;
use dataplane::wire::parse_frame;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

fn syn() -> TcpSegment<'static> {
    TcpSegment {
        src_port: 40000,
        dst_port: 80,
        seq: 1,
        flags: tcp_flags::ACK,
        window: 65535,
        ..TcpSegment::default()
    }
}

fn frames() -> [(&'static str, Vec<u8>); 4] {
    let v4 = FrameBuilder::new(ip("198.18.0.1"), ip("198.19.0.1"));
    let v6 = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"));
    [
        ("tcp_v4", v4.tcp(&syn())),
        ("tcp_v4_vlan", v4.clone().vlan(100).tcp(&syn())),
        (
            "tcp_v4_qinq",
            v4.clone()
                .vlan_with_tpid(ethertype::QINQ, 10)
                .vlan(20)
                .tcp(&syn()),
        ),
        ("tcp_v6", v6.tcp(&syn())),
    ]
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_frame");
    group.throughput(Throughput::Elements(1));
    for (name, frame) in frames() {
        assert!(parse_frame(&frame).is_ok(), "{name} must parse");
        group.bench_function(format!("{name}_{}B", frame.len()), |b| {
            b.iter(|| parse_frame(black_box(&frame)))
        });
    }
    group.finish();

    // A burst of 32 different frames (TCP/UDP/ICMP, v4/v6, tagged or not), so branch
    // prediction cannot learn a single path.
    let v4 = FrameBuilder::new(ip("198.18.0.1"), ip("198.19.0.1"));
    let v6 = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"));
    let mix: Vec<Vec<u8>> = (0..32u16)
        .map(|i| {
            let b = if i % 3 == 0 { v6.clone() } else { v4.clone() };
            let b = if i % 4 == 0 { b.vlan(i) } else { b };
            match i % 5 {
                0..=2 => b.tcp(&TcpSegment {
                    src_port: 1024 + i,
                    ..syn()
                }),
                3 => b.udp(1024 + i, 53, &[0; 16]),
                _ => b.icmp_echo(EchoKind::Request, i, 1, &[0; 8]),
            }
        })
        .collect();
    let mut group = c.benchmark_group("parse_burst");
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("mixed_32", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for frame in &mix {
                ok += u32::from(parse_frame(black_box(frame)).is_ok());
            }
            ok
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
