//! Flow-operation filter matching against a naive reference model written with std's
//! `IpAddr` arithmetic: random flows and filters over small address and port universes (so
//! CIDR edges, exact ports and ranges are hit often), IPv4 and IPv6, protocol lists, both
//! directions.

use std::net::IpAddr;

use dataplane::ops::{Cidr, FlowFilter, PortRange};
use dataplane::packet::{ip_to_addr, Tuple};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct ModelFilter {
    src: Option<(IpAddr, u8)>,
    dst: Option<(IpAddr, u8)>,
    sport: Option<(u16, u16)>,
    dport: Option<(u16, u16)>,
    protos: Vec<u8>,
}

fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

fn has_ports(p: u8) -> bool {
    matches!(p, 6 | 17 | 132)
}

fn model(f: &ModelFilter, proto: u8, s: IpAddr, d: IpAddr, sp: u16, dp: u16) -> bool {
    let (sp, dp) = if has_ports(proto) { (sp, dp) } else { (0, 0) };
    f.src.is_none_or(|(n, l)| in_cidr(s, n, l))
        && f.dst.is_none_or(|(n, l)| in_cidr(d, n, l))
        && f.sport.is_none_or(|(lo, hi)| lo <= sp && sp <= hi)
        && f.dport.is_none_or(|(lo, hi)| lo <= dp && dp <= hi)
        && (f.protos.is_empty() || f.protos.contains(&proto))
}

fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..4, 0u32..4).prop_map(|(a, b)| IpAddr::V4((0xc612_0000 | (a << 8) | b).into())),
        (0u128..4, 0u128..4)
            .prop_map(|(a, b)| IpAddr::V6(((0x2001_0002u128 << 96) | (a << 16) | b).into())),
    ]
}

fn cidr() -> impl Strategy<Value = Option<(IpAddr, u8)>> {
    prop::option::of((addr(), 0u8..=128).prop_map(|(a, l)| {
        let l = if a.is_ipv4() { l % 33 } else { l };
        (masked(a, l), l)
    }))
}

fn range() -> impl Strategy<Value = Option<(u16, u16)>> {
    prop::option::of((0u16..6, 0u16..6).prop_map(|(a, b)| (a.min(b), a.max(b))))
}

fn filter() -> impl Strategy<Value = ModelFilter> {
    (
        cidr(),
        cidr(),
        range(),
        range(),
        prop::collection::vec(prop::sample::select(vec![1u8, 6, 17, 58, 132]), 0..3),
    )
        .prop_map(|(src, dst, sport, dport, protos)| ModelFilter {
            src,
            dst,
            sport,
            dport,
            protos,
        })
}

fn compile(m: &ModelFilter) -> FlowFilter {
    let cidr = |c: Option<(IpAddr, u8)>| c.map(|(n, l)| Cidr::parse(&format!("{n}/{l}")).unwrap());
    let port = |r: Option<(u16, u16)>| {
        r.map_or(PortRange::ANY, |(lo, hi)| {
            PortRange::parse(&format!("{lo}:{hi}")).unwrap()
        })
    };
    let mut f = FlowFilter {
        src: cidr(m.src),
        dst: cidr(m.dst),
        src_port: port(m.sport),
        dst_port: port(m.dport),
        ..FlowFilter::default()
    };
    for p in &m.protos {
        f.add_protocol(*p);
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    #[test]
    fn filter_matches_like_the_reference_model(
        f in filter(),
        proto in prop::sample::select(vec![1u8, 6, 17, 58, 132, 47]),
        s in addr(), d in addr(), sp in 0u16..6, dp in 0u16..6,
    ) {
        let compiled = compile(&f);
        let t = Tuple { proto, src: ip_to_addr(s), dst: ip_to_addr(d), src_port: sp, dst_port: dp };
        prop_assert_eq!(compiled.matches(&t), model(&f, proto, s, d, sp, dp));
        prop_assert_eq!(compiled.matches(&t.reversed()), model(&f, proto, d, s, dp, sp));
    }
}
