//! Flow-operation filters: what a capture or flush matches. Built and validated by the
//! management thread, read by the workers during their shard scans.
//!
//! AWS semantics: a flow matches an operation when it matches any filter; a filter
//! matches when every field it gives matches the flow *as it was opened* (source = the
//! opener). Beyond AWS: `either_direction`, `states` and `verdict_changed`.

use std::fmt;
use std::net::IpAddr;

use crate::flow::{FlowEntry, FlowState};
use crate::packet::{addr_is_v4, ip_to_addr, proto, Addr, Tuple};
use crate::policy::CompiledPolicy;

/// An address prefix in the shared 128-bit space (IPv4 prefixes are offset by 96).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: Addr,
    /// Prefix length in the 128-bit space.
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

impl Cidr {
    /// `0.0.0.0/0`: every IPv4 address.
    pub const ALL_V4: Cidr = Cidr {
        net: crate::packet::v4_to_addr(0),
        len: 96,
    };
    /// `::/0`: every IPv6 address (never an IPv4 one, see [`Cidr::contains`]).
    pub const ALL_V6: Cidr = Cidr { net: 0, len: 0 };

    /// Parses `a.b.c.d`, `a.b.c.d/n`, `x::y` or `x::y/n`. Host bits below the prefix are
    /// refused, like AWS does for CIDR fields, so a typo does not silently widen a flush.
    pub fn parse(s: &str) -> Result<Cidr, FilterError> {
        let bad = |why: &str| FilterError(format!("'{s}' is not a valid IPv4 or IPv6 CIDR: {why}"));
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| bad("bad prefix length"))?,
        };
        let len128 = if ip.is_ipv4() { 96 + len } else { len };
        let net = ip_to_addr(ip);
        let c = Cidr { net, len: len128 };
        if c.net & !c.mask() != 0 {
            return Err(bad("host bits set below the prefix length"));
        }
        Ok(c)
    }

    #[inline]
    fn mask(&self) -> Addr {
        if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - self.len as u32)
        }
    }

    /// An IPv6 prefix never matches IPv4 traffic (`::/0` means every IPv6 address), unless
    /// it is written inside the IPv4-mapped range (`::ffff:198.18.0.0/112`).
    #[inline]
    pub fn contains(&self, a: Addr) -> bool {
        if self.len < 96 && addr_is_v4(a) {
            return false;
        }
        (a & self.mask()) == self.net
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = crate::packet::addr_to_ip(self.net);
        let len = if addr_is_v4(self.net) && self.len >= 96 {
            self.len - 96
        } else {
            self.len
        };
        write!(f, "{ip}/{len}")
    }
}

/// An inclusive port range; `ANY` is 0..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };

    /// Parses AWS's `Port` string: `ANY`, `80`, or `1990:1994`.
    pub fn parse(s: &str) -> Result<PortRange, FilterError> {
        let bad = || {
            FilterError(format!(
                "'{s}' is not a valid port: use ANY, a port 0-65535, or a range lo:hi"
            ))
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("any") {
            return Ok(PortRange::ANY);
        }
        let num = |x: &str| -> Result<u16, FilterError> {
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            x.parse::<u16>().map_err(|_| bad())
        };
        let r = match t.split_once(':') {
            Some((lo, hi)) => PortRange {
                lo: num(lo)?,
                hi: num(hi)?,
            },
            None => {
                let p = num(t)?;
                PortRange { lo: p, hi: p }
            }
        };
        if r.lo > r.hi {
            return Err(FilterError(format!(
                "'{s}' is not a valid port range: {} > {}",
                r.lo, r.hi
            )));
        }
        Ok(r)
    }

    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("ANY")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}:{}", self.lo, self.hi)
        }
    }
}

/// One filter: every field given must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFilter {
    pub src: Option<Cidr>,
    pub dst: Option<Cidr>,
    pub src_port: PortRange,
    pub dst_port: PortRange,
    /// Protocol bitmap; all zero = any protocol.
    pub protocols: [u64; 4],
}

impl Default for FlowFilter {
    fn default() -> Self {
        FlowFilter {
            src: None,
            dst: None,
            src_port: PortRange::ANY,
            dst_port: PortRange::ANY,
            protocols: [0; 4],
        }
    }
}

/// Ports as operators see them: only TCP, UDP and SCTP have ports; others report 0.
#[inline]
pub fn visible_ports(t: &Tuple) -> (u16, u16) {
    match t.proto {
        proto::TCP | proto::UDP | proto::SCTP => (t.src_port, t.dst_port),
        _ => (0, 0),
    }
}

impl FlowFilter {
    pub fn add_protocol(&mut self, p: u8) {
        self.protocols[(p >> 6) as usize] |= 1 << (p & 63);
    }

    pub fn protocol_list(&self) -> Vec<u8> {
        (0..=255u8).filter(|p| self.has_protocol(*p)).collect()
    }

    fn has_protocol(&self, p: u8) -> bool {
        self.protocols[(p >> 6) as usize] & (1 << (p & 63)) != 0
    }

    /// Matches `t` taken as (source → destination).
    #[inline]
    pub fn matches(&self, t: &Tuple) -> bool {
        let (sp, dp) = visible_ports(t);
        (self.protocols == [0; 4] || self.has_protocol(t.proto))
            && self.src.is_none_or(|c| c.contains(t.src))
            && self.dst.is_none_or(|c| c.contains(t.dst))
            && self.src_port.contains(sp)
            && self.dst_port.contains(dp)
    }
}

/// A whole operation's selection.
#[derive(Clone, Debug, Default)]
pub struct FlowMatch {
    /// Matches when any filter matches (1..=20, validated by the caller).
    pub filters: Vec<FlowFilter>,
    /// Flows younger than this (ticks) are ignored.
    pub min_age_ticks: u64,
    /// Also match the reverse direction of each flow.
    pub either_direction: bool,
    /// Bitmask over `FlowState as u8`; 0 = any active state.
    pub states: u16,
    /// Only flows whose stored verdict differs from what the current policy decides.
    pub verdict_changed: bool,
}

impl FlowMatch {
    pub fn with_state(mut self, s: FlowState) -> Self {
        self.states |= 1 << (s as u8);
        self
    }

    /// True when [`FlowMatch::matches`] holds for every active flow whatever its tuple,
    /// age or verdict: no age, state or verdict condition, and the filters cover every
    /// address (one filter with no address, port or protocol condition, or such filters
    /// for all of IPv4 and all of IPv6). A flush selecting this takes the whole-table path.
    pub fn selects_every_active_flow(&self) -> bool {
        if self.min_age_ticks != 0 || self.states != 0 || self.verdict_changed {
            return false;
        }
        let unconstrained =
            |f: &FlowFilter| f.src_port.is_any() && f.dst_port.is_any() && f.protocols == [0; 4];
        let all_of = |f: &FlowFilter, c: Cidr| {
            unconstrained(f)
                && match (f.src, f.dst) {
                    (Some(a), None) | (None, Some(a)) => a == c,
                    _ => false,
                }
        };
        let (v4, v6) = (Cidr::ALL_V4, Cidr::ALL_V6);
        self.filters
            .iter()
            .any(|f| unconstrained(f) && f.src.is_none() && f.dst.is_none())
            || (self.filters.iter().any(|f| all_of(f, v4))
                && self.filters.iter().any(|f| all_of(f, v6)))
    }

    /// Whether the operation selects `e` at time `now`, judged against `policy`.
    #[inline]
    pub fn matches(&self, e: &FlowEntry, now: u64, policy: &CompiledPolicy) -> bool {
        let state = e.state();
        if !state.is_active() {
            return false;
        }
        if self.states != 0 && self.states & (1 << (state as u8)) == 0 {
            return false;
        }
        if now.saturating_sub(e.first_seen()) < self.min_age_ticks {
            return false;
        }
        let t = e.opener_tuple();
        let hit = self
            .filters
            .iter()
            .any(|f| f.matches(&t) || (self.either_direction && f.matches(&t.reversed())));
        if !hit {
            return false;
        }
        !self.verdict_changed || policy.stateful(&t, false).verdict != e.verdict()
    }
}

/// Parses a protocol given as an IANA number (`"6"`) or a common name (`"tcp"`).
pub fn parse_protocol(s: &str) -> Option<u8> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u8>().ok();
    }
    match t.to_ascii_lowercase().as_str() {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmpv6" | "ipv6-icmp" => Some(58),
        "sctp" => Some(132),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_and_numbers() {
        assert_eq!(parse_protocol("6"), Some(6));
        assert_eq!(parse_protocol("TCP"), Some(6));
        assert_eq!(parse_protocol("ipv6-icmp"), Some(58));
        assert_eq!(parse_protocol("sctp"), Some(132));
        assert_eq!(parse_protocol("255"), Some(255));
        assert_eq!(parse_protocol("256"), None);
        assert_eq!(parse_protocol("-1"), None);
        assert_eq!(parse_protocol("gre"), None);
    }
    use crate::packet::v4_to_addr;

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("198.18.0.0/24").unwrap();
        assert!(c.contains(v4_to_addr(0xc612_00ff)));
        assert!(!c.contains(v4_to_addr(0xc612_0100)));
        assert_eq!(c.to_string(), "198.18.0.0/24");
        let h = Cidr::parse("198.18.0.1").unwrap();
        assert_eq!(h.to_string(), "198.18.0.1/32");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(v4_to_addr(1)));
        // An IPv4 /0 stays within the IPv4 space.
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(1));
        assert!(
            !Cidr::parse("::/0").unwrap().contains(v4_to_addr(1)),
            "IPv6 /0 is IPv6 only"
        );
        let v6 = Cidr::parse("2001:2::/48").unwrap();
        assert!(v6.contains(ip_to_addr("2001:2::1".parse().unwrap())));
        assert!(!v6.contains(ip_to_addr("2001:3::1".parse().unwrap())));
        for bad in [
            "198.18.0.1/24",
            "198.18.0.0/33",
            "x",
            "1.2.3.4/",
            "::/129",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_active_flow_is_recognised() {
        let cidr = |s: &str| Some(Cidr::parse(s).unwrap());
        assert_eq!(cidr("0.0.0.0/0"), Some(Cidr::ALL_V4));
        assert_eq!(cidr("::/0"), Some(Cidr::ALL_V6));
        let src = |c: &str| FlowFilter {
            src: cidr(c),
            ..FlowFilter::default()
        };
        let m = |filters: Vec<FlowFilter>| FlowMatch {
            filters,
            ..FlowMatch::default()
        };
        assert!(m(vec![src("0.0.0.0/0"), src("::/0")]).selects_every_active_flow());
        assert!(m(vec![FlowFilter::default()]).selects_every_active_flow());
        let dst6 = FlowFilter {
            dst: cidr("::/0"),
            ..FlowFilter::default()
        };
        assert!(m(vec![dst6.clone(), src("0.0.0.0/0")]).selects_every_active_flow());
        // Anything narrower is not.
        assert!(!m(vec![src("0.0.0.0/0")]).selects_every_active_flow());
        assert!(!m(vec![src("198.18.0.0/16"), src("::/0")]).selects_every_active_flow());
        let mut tcp = FlowFilter::default();
        tcp.add_protocol(6);
        assert!(!m(vec![tcp]).selects_every_active_flow());
        let port = FlowFilter {
            dst_port: PortRange::parse("80").unwrap(),
            ..FlowFilter::default()
        };
        assert!(!m(vec![port]).selects_every_active_flow());
        let aged = FlowMatch {
            min_age_ticks: 1,
            ..m(vec![FlowFilter::default()])
        };
        assert!(!aged.selects_every_active_flow());
        let est = m(vec![FlowFilter::default()]).with_state(FlowState::Established);
        assert!(!est.selects_every_active_flow());
        let changed = FlowMatch {
            verdict_changed: true,
            ..m(vec![FlowFilter::default()])
        };
        assert!(!changed.selects_every_active_flow());
    }

    #[test]
    fn port_parse() {
        assert_eq!(PortRange::parse("ANY").unwrap(), PortRange::ANY);
        assert_eq!(
            PortRange::parse("80").unwrap(),
            PortRange { lo: 80, hi: 80 }
        );
        assert_eq!(
            PortRange::parse("1990:1994").unwrap(),
            PortRange { lo: 1990, hi: 1994 }
        );
        for bad in ["", "65536", "5:4", "-1", "1:", ":2", "8o"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PortRange::parse("7:9").unwrap().to_string(), "7:9");
    }

    #[test]
    fn filter_fields_all_must_match() {
        let t = Tuple {
            proto: 6,
            src: v4_to_addr(0xc612_0001),
            dst: v4_to_addr(0xc612_0002),
            src_port: 40000,
            dst_port: 80,
        };
        let mut f = FlowFilter {
            src: Some(Cidr::parse("198.18.0.0/24").unwrap()),
            dst_port: PortRange::parse("80").unwrap(),
            ..FlowFilter::default()
        };
        assert!(f.matches(&t));
        assert!(!f.matches(&t.reversed()));
        f.add_protocol(17);
        assert!(!f.matches(&t));
        f.add_protocol(6);
        assert!(f.matches(&t));
        assert_eq!(f.protocol_list(), vec![6, 17]);
    }
}
