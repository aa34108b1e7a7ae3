//! Deterministic traffic for benchmarks and floods: `N` distinct flows in 198.18.0.0/15
//! and 2001:2::/48, IPv4/IPv6/mixed, minimum-size or IMIX frames, TCP SYNs (first
//! packets), TCP ACK/PSH segments of established connections, or UDP datagrams.
//!
//! Flow `i` gets its source address from a bijection of `i`'s low 17 bits (multiply by an
//! odd constant, add the seed: a permutation mod 2^17, so sources look scattered over the
//! /15 yet never collide) and its source port from the remaining bits, so the `N` flows
//! are distinct by construction for any seed. Packet `k` belongs to flow `k mod N`, so a
//! pcap of `N` packets (the default) holds one packet per flow and replaying it
//! (`net_pcap,infinite_rx=1`) touches every flow once per round. This module builds
//! frames off the packet path: it allocates freely.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use crate::packet::tcp_flags;
use crate::wire::build::{FrameBuilder, TcpSegment};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, PcapError, TsResolution};

/// Largest flow count (flow ids must fit the address/port bijection).
pub const MAX_FLOWS: u32 = 1 << 30;

/// What each packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TCP SYN: the first packet of a new connection.
    Syn,
    /// TCP ACK (ACK|PSH when it carries data) of an established connection.
    Established,
    /// UDP datagram.
    Udp,
}

/// Address family of the flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// Even flows IPv4, odd flows IPv6.
    Mixed,
}

/// Frame sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 64 bytes on the wire (60 in the pcap, FCS excluded); IPv6 TCP needs 74 (78 on the
    /// wire) and gets that.
    Min,
    /// Simple IMIX 7:4:1 of 64, 594 and 1518 bytes on the wire.
    Imix,
}

/// Everything that determines the generated packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub flows: u32,
    /// Packets to generate; packet `k` belongs to flow `k mod flows`.
    pub packets: u64,
    pub kind: Kind,
    pub family: Family,
    pub size: Size,
    pub seed: u64,
    pub dst_port: u16,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            flows: 1,
            packets: 1,
            kind: Kind::Established,
            family: Family::V4,
            size: Size::Min,
            seed: 1,
            dst_port: 80,
        }
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("--flows must be between 1 and {MAX_FLOWS}, got {0}")]
    Flows(u64),
    #[error("--packets must be at least 1")]
    Packets,
    #[error("writing the pcap failed: {0}")]
    Pcap(#[from] PcapError),
}

/// Frame lengths (FCS excluded) of the 12-packet IMIX cycle: 7 × 60, 4 × 590, 1 × 1514,
/// interleaved so that every short window sees the mix.
const IMIX_CYCLE: [usize; 12] = [60, 590, 60, 60, 590, 60, 1514, 60, 590, 60, 60, 590];
/// Multiplier of the source-address permutation (odd, so a bijection mod 2^17).
const ADDR_MUL: u32 = 0x9E37_79B1;
/// Source addresses per family: 2^17 (the whole 198.18.0.0/15).
const ADDR_BITS: u32 = 17;
const PORT_BASE: u32 = 1024;
const PORT_SPAN: u32 = 65536 - PORT_BASE;

/// SplitMix64: a tiny, good, seedable mixer (deterministic sequence numbers, port offset).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The endpoints of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Generates the packets of a [`Spec`].
#[derive(Clone, Debug)]
pub struct Generator {
    spec: Spec,
}

impl Generator {
    pub fn new(spec: Spec) -> Result<Generator, GenError> {
        if spec.flows == 0 || spec.flows > MAX_FLOWS {
            return Err(GenError::Flows(u64::from(spec.flows)));
        }
        if spec.packets == 0 {
            return Err(GenError::Packets);
        }
        Ok(Generator { spec })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The endpoints of flow `i` (taken modulo the flow count).
    pub fn flow(&self, i: u32) -> FlowTuple {
        let s = &self.spec;
        let i = i % s.flows;
        let mask = (1u32 << ADDR_BITS) - 1;
        let seed = mix(s.seed);
        let host = (i & mask).wrapping_mul(ADDR_MUL).wrapping_add(seed as u32) & mask;
        // For a given source address, `i >> ADDR_BITS` ↦ port is injective: flows stay
        // distinct, and ports still vary between addresses.
        let port_seed = (mix(seed ^ u64::from(host)) % u64::from(PORT_SPAN)) as u32;
        let src_port = (PORT_BASE + ((i >> ADDR_BITS) + port_seed) % PORT_SPAN) as u16;
        let dst_host = 1 + (mix(seed ^ u64::from(i)) % 254) as u32;
        let v6 = match s.family {
            Family::V4 => false,
            Family::V6 => true,
            Family::Mixed => i % 2 == 1,
        };
        let (src, dst) = if v6 {
            // 2001:2:0:0::/64 holds the sources, 2001:2:0:1::/64 the servers.
            let src = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, (host >> 16) as u16, host as u16);
            let dst = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, dst_host as u16);
            (IpAddr::V6(src), IpAddr::V6(dst))
        } else {
            // Sources over the whole 198.18.0.0/15, servers in 198.19.255.0/24.
            let src = Ipv4Addr::from((198u32 << 24) | (18 << 16) | host);
            let dst = Ipv4Addr::from((198u32 << 24) | (19 << 16) | (255 << 8) | dst_host);
            (IpAddr::V4(src), IpAddr::V4(dst))
        };
        FlowTuple {
            src,
            dst,
            src_port,
            dst_port: s.dst_port,
        }
    }

    /// Length (FCS excluded) packet `k` aims for; never below what its headers need.
    fn target_len(&self, k: u64) -> usize {
        match self.spec.size {
            Size::Min => 60,
            Size::Imix => IMIX_CYCLE[(k % IMIX_CYCLE.len() as u64) as usize],
        }
    }

    /// Packet `k`: a complete Ethernet frame with valid checksums.
    pub fn frame(&self, k: u64) -> Vec<u8> {
        let s = &self.spec;
        let flow = (k % u64::from(s.flows)) as u32;
        let round = (k / u64::from(s.flows)) as u32;
        let t = self.flow(flow);
        let b = FrameBuilder::new(t.src, t.dst);
        let l4_header = match s.kind {
            Kind::Udp => 8,
            Kind::Syn | Kind::Established => 20,
        };
        let headers = b.l3_offset() + b.ip_headers_len() + l4_header;
        let payload = vec![0u8; self.target_len(k).saturating_sub(headers)];
        // Per-flow initial sequence number; established segments advance by their data.
        let isn = mix(s.seed ^ (u64::from(flow) << 1)) as u32;
        match s.kind {
            Kind::Udp => b.udp(t.src_port, t.dst_port, &payload),
            Kind::Syn => b.tcp(&TcpSegment {
                src_port: t.src_port,
                dst_port: t.dst_port,
                seq: isn,
                flags: tcp_flags::SYN,
                window: 64240,
                ..Default::default()
            }),
            Kind::Established => {
                let data = payload.len() as u32;
                let flags = if data > 0 {
                    tcp_flags::ACK | tcp_flags::PSH
                } else {
                    tcp_flags::ACK
                };
                b.tcp(&TcpSegment {
                    src_port: t.src_port,
                    dst_port: t.dst_port,
                    seq: isn.wrapping_add(1).wrapping_add(round.wrapping_mul(data)),
                    ack: mix(s.seed ^ u64::from(flow)) as u32,
                    flags,
                    window: 64240,
                    payload: &payload,
                    ..Default::default()
                })
            }
        }
    }

    /// Writes all packets to a pcap (timestamps 1 µs apart); returns the bytes of frames.
    pub fn write_pcap(&self, path: &Path) -> Result<u64, GenError> {
        let file =
            std::io::BufWriter::new(std::fs::File::create(path).map_err(PcapError::IoError)?);
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(file, header)?;
        let mut bytes = 0u64;
        for k in 0..self.spec.packets {
            let f = self.frame(k);
            bytes += f.len() as u64;
            let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
            w.write_packet(&PcapPacket::new(Duration::from_micros(k), len, &f))?;
        }
        w.into_writer().flush().map_err(PcapError::IoError)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::packet::{Addr, Parsed};
    use crate::wire::parse_frame;

    fn spec(flows: u32, kind: Kind, family: Family, size: Size) -> Spec {
        Spec {
            flows,
            packets: u64::from(flows),
            kind,
            family,
            size,
            seed: 7,
            dst_port: 80,
        }
    }

    fn in_bench_ranges(a: Addr) -> bool {
        let v4 = |lo: u128, hi: u128| (0xffff_0000_0000 | lo..=0xffff_0000_0000 | hi).contains(&a);
        let v6_prefix = 0x2001_0002_0000u128 << 80; // 2001:2::/48
        v4(0xC612_0000, 0xC613_FFFF) || a >> 80 == v6_prefix >> 80
    }

    #[test]
    fn flows_are_distinct_and_stay_in_the_benchmark_ranges() {
        for family in [Family::V4, Family::V6, Family::Mixed] {
            let g = Generator::new(spec(300_000, Kind::Syn, family, Size::Min)).unwrap();
            let mut seen = HashSet::new();
            for i in 0..300_000 {
                assert!(seen.insert(g.flow(i)), "{family:?}: flow {i} repeats");
            }
            for k in (0..300_000).step_by(997) {
                let Ok(Parsed::Ip(m)) = parse_frame(&g.frame(k)) else {
                    panic!("{family:?}: packet {k} does not parse");
                };
                assert!(in_bench_ranges(m.src) && in_bench_ranges(m.dst), "{m:?}");
            }
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_flows() {
        let a = Generator::new(spec(1000, Kind::Udp, Family::Mixed, Size::Imix)).unwrap();
        let b = Generator::new(spec(1000, Kind::Udp, Family::Mixed, Size::Imix)).unwrap();
        let c = Generator::new(Spec {
            seed: 8,
            ..*a.spec()
        })
        .unwrap();
        assert!((0..1000).all(|k| a.frame(k) == b.frame(k)));
        assert!((0..1000).filter(|&k| a.frame(k) != c.frame(k)).count() > 990);
    }

    #[test]
    fn kinds_and_sizes_come_out_as_asked() {
        let syn = Generator::new(spec(10, Kind::Syn, Family::V4, Size::Min)).unwrap();
        let Ok(Parsed::Ip(m)) = parse_frame(&syn.frame(3)) else {
            panic!()
        };
        assert!(m.is_tcp() && m.tcp_flags == tcp_flags::SYN && m.dst_port == 80);
        assert_eq!(syn.frame(3).len(), 60);

        let est = Generator::new(spec(10, Kind::Established, Family::V6, Size::Min)).unwrap();
        let Ok(Parsed::Ip(m)) = parse_frame(&est.frame(0)) else {
            panic!()
        };
        assert_eq!(m.tcp_flags, tcp_flags::ACK);
        assert_eq!(est.frame(0).len(), 74, "IPv6 TCP cannot be shorter");

        let imix = Generator::new(spec(12, Kind::Udp, Family::V4, Size::Imix)).unwrap();
        let lens: Vec<usize> = (0..12).map(|k| imix.frame(k).len()).collect();
        assert_eq!(lens, IMIX_CYCLE);
        for k in 0..12 {
            assert!(
                matches!(parse_frame(&imix.frame(k)), Ok(Parsed::Ip(m)) if m.proto == crate::packet::proto::UDP)
            );
        }
    }

    #[test]
    fn packet_k_belongs_to_flow_k_mod_n() {
        let g = Generator::new(Spec {
            packets: 30,
            ..spec(10, Kind::Established, Family::V4, Size::Min)
        })
        .unwrap();
        let tuple = |k| match parse_frame(&g.frame(k)) {
            Ok(Parsed::Ip(m)) => (m.src, m.dst, m.src_port, m.dst_port),
            _ => panic!(),
        };
        assert_eq!(tuple(3), tuple(13));
        assert_eq!(tuple(3), tuple(23));
        assert_ne!(tuple(3), tuple(4));
    }

    #[test]
    fn refuses_empty_specs() {
        assert!(matches!(
            Generator::new(Spec {
                flows: 0,
                ..Spec::default()
            }),
            Err(GenError::Flows(0))
        ));
        assert!(matches!(
            Generator::new(Spec {
                packets: 0,
                ..Spec::default()
            }),
            Err(GenError::Packets)
        ));
    }

    #[test]
    fn pcap_round_trips() {
        let path = std::env::temp_dir().join(format!("fg-gen-test-{}.pcap", std::process::id()));
        let g = Generator::new(spec(100, Kind::Established, Family::Mixed, Size::Imix)).unwrap();
        g.write_pcap(&path).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut read = Vec::new();
        while let Some(p) = r.next_packet() {
            read.push(p.unwrap().data.into_owned());
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(read.len(), 100);
        assert!((0..100).all(|k| read[k] == g.frame(k as u64)));
    }
}
