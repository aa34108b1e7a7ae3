//! Address and port match expressions as written in rules (`any`, CIDRs, ranges, `[lists]`,
//! `!negation`, `$VARIABLES`), their direct evaluation (used by the reference evaluator) and
//! their flattening into sorted interval sets (used by the compiled classifier).
//!
//! Addresses and ports share one representation over `u128`: an IPv4 address is its
//! IPv4-mapped form (see [`crate::packet::Addr`]), a port is its number.
//!
//! List semantics follow Suricata: `[a, b, !c]` matches what `a` or `b` matches (anything
//! when the list has no positive element) and that no negated element matches.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::PolicyErrorKind;
use crate::packet::v4_to_addr;

/// Largest value of the address space.
pub const ADDR_MAX: u128 = u128::MAX;
/// Largest port.
pub const PORT_MAX: u128 = 65535;
/// The IPv4-mapped block `::ffff:0:0/96`: IPv6 CIDRs never match IPv4 traffic.
const V4_MAPPED_LO: u128 = v4_to_addr(0);
const V4_MAPPED_HI: u128 = v4_to_addr(u32::MAX);

/// One match expression over addresses or ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetExpr {
    /// Every value of the dimension.
    Any,
    /// An inclusive range.
    Range(u128, u128),
    /// Everything the inner expression does not match.
    Not(Box<SetExpr>),
    /// Suricata list: union of the positive elements minus the negated ones.
    List(Vec<SetExpr>),
}

impl SetExpr {
    /// Direct, naive evaluation (the reference semantics).
    pub fn contains(&self, v: u128) -> bool {
        match self {
            SetExpr::Any => true,
            SetExpr::Range(lo, hi) => *lo <= v && v <= *hi,
            SetExpr::Not(inner) => !inner.contains(v),
            SetExpr::List(items) => {
                let mut has_positive = false;
                let mut hit = false;
                for item in items {
                    match item {
                        SetExpr::Not(inner) => {
                            if inner.contains(v) {
                                return false;
                            }
                        }
                        positive => {
                            has_positive = true;
                            hit = hit || positive.contains(v);
                        }
                    }
                }
                !has_positive || hit
            }
        }
    }

    /// Flattens into disjoint sorted ranges within `0..=max`.
    pub fn to_ranges(&self, max: u128) -> RangeSet {
        match self {
            SetExpr::Any => RangeSet::full(max),
            SetExpr::Range(lo, hi) => RangeSet::from_ranges(vec![(*lo, (*hi).min(max))]),
            SetExpr::Not(inner) => inner.to_ranges(max).complement(max),
            SetExpr::List(items) => {
                let mut pos = Vec::new();
                let mut neg = Vec::new();
                let mut has_positive = false;
                for item in items {
                    match item {
                        SetExpr::Not(inner) => neg.extend(inner.to_ranges(max).0),
                        positive => {
                            has_positive = true;
                            pos.extend(positive.to_ranges(max).0);
                        }
                    }
                }
                let pos = if has_positive {
                    RangeSet::from_ranges(pos)
                } else {
                    RangeSet::full(max)
                };
                pos.intersect(&RangeSet::from_ranges(neg).complement(max))
            }
        }
    }

    /// True for the plain `any` (so a rule can say "no port constraint").
    pub fn is_any(&self) -> bool {
        matches!(self, SetExpr::Any)
    }
}

/// Disjoint, sorted, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet(pub Vec<(u128, u128)>);

impl RangeSet {
    pub fn full(max: u128) -> Self {
        RangeSet(vec![(0, max)])
    }

    pub fn from_ranges(mut v: Vec<(u128, u128)>) -> Self {
        v.retain(|(lo, hi)| lo <= hi);
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        RangeSet(out)
    }

    pub fn complement(&self, max: u128) -> Self {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut next = Some(0u128);
        for &(lo, hi) in &self.0 {
            if let Some(n) = next {
                if lo > n {
                    out.push((n, lo - 1));
                }
            }
            next = hi.checked_add(1);
        }
        if let Some(n) = next {
            if n <= max {
                out.push((n, max));
            }
        }
        RangeSet(out)
    }

    pub fn intersect(&self, other: &RangeSet) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while let (Some(&(alo, ahi)), Some(&(blo, bhi))) = (self.0.get(i), other.0.get(j)) {
            let (lo, hi) = (alo.max(blo), ahi.min(bhi));
            if lo <= hi {
                out.push((lo, hi));
            }
            if ahi < bhi {
                i += 1;
            } else {
                j += 1;
            }
        }
        RangeSet(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which dimension an expression is parsed for: decides the leaf syntax and the variable table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Addr,
    Port,
}

/// Resolved variables: name (without `$`) to expression, one table per kind.
#[derive(Clone, Debug, Default)]
pub struct Variables {
    pub addrs: BTreeMap<String, SetExpr>,
    pub ports: BTreeMap<String, SetExpr>,
}

impl Variables {
    /// Resolves raw variable definitions (each a list of expression strings) in any order,
    /// detecting cycles. `EXTERNAL_NET` defaults to `!$HOME_NET` when `HOME_NET` is defined.
    pub fn resolve(
        addrs: &BTreeMap<String, Vec<String>>,
        ports: &BTreeMap<String, Vec<String>>,
    ) -> Result<Variables, PolicyErrorKind> {
        let mut addrs = addrs.clone();
        if addrs.contains_key("HOME_NET") && !addrs.contains_key("EXTERNAL_NET") {
            addrs.insert("EXTERNAL_NET".into(), vec!["!$HOME_NET".into()]);
        }
        let mut vars = Variables::default();
        for name in addrs.keys() {
            resolve_one(Kind::Addr, name, &addrs, &mut vars, &mut Vec::new())?;
        }
        for name in ports.keys() {
            resolve_one(Kind::Port, name, ports, &mut vars, &mut Vec::new())?;
        }
        Ok(vars)
    }

    fn table(&self, kind: Kind) -> &BTreeMap<String, SetExpr> {
        match kind {
            Kind::Addr => &self.addrs,
            Kind::Port => &self.ports,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, SetExpr> {
        match kind {
            Kind::Addr => &mut self.addrs,
            Kind::Port => &mut self.ports,
        }
    }
}

fn resolve_one(
    kind: Kind,
    name: &str,
    raw: &BTreeMap<String, Vec<String>>,
    vars: &mut Variables,
    stack: &mut Vec<String>,
) -> Result<SetExpr, PolicyErrorKind> {
    if let Some(done) = vars.table(kind).get(name) {
        return Ok(done.clone());
    }
    if stack.iter().any(|s| s == name) {
        return Err(PolicyErrorKind::VariableCycle(name.to_string()));
    }
    let Some(items) = raw.get(name) else {
        return Err(PolicyErrorKind::UnknownVariable(name.to_string()));
    };
    stack.push(name.to_string());
    let mut parsed = Vec::with_capacity(items.len());
    for text in items {
        let mut lookup = |var: &str| resolve_one(kind, var, raw, vars, stack);
        let expr = Parser::new(text, kind, &mut lookup)
            .parse_all()
            .map_err(|e| match e {
                e @ (PolicyErrorKind::InVariable { .. } | PolicyErrorKind::VariableCycle(_)) => e,
                e => PolicyErrorKind::InVariable {
                    name: name.to_string(),
                    inner: Box::new(e),
                },
            })?;
        parsed.push(expr);
    }
    stack.pop();
    let expr = SetExpr::List(parsed);
    vars.table_mut(kind).insert(name.to_string(), expr.clone());
    Ok(expr)
}

/// Parses an address expression (`any`, `1.2.3.0/24`, `2001:2::/48`, `[..]`, `!x`, `$VAR`).
pub fn parse_addr(text: &str, vars: &Variables) -> Result<SetExpr, PolicyErrorKind> {
    parse_checked(text, Kind::Addr, vars)
}

/// Parses a port expression (`any`, `80`, `80:90`, `1024:`, `:1023`, `[..]`, `!x`, `$VAR`).
pub fn parse_ports(text: &str, vars: &Variables) -> Result<SetExpr, PolicyErrorKind> {
    parse_checked(text, Kind::Port, vars)
}

fn parse_checked(text: &str, kind: Kind, vars: &Variables) -> Result<SetExpr, PolicyErrorKind> {
    let mut lookup = |name: &str| {
        vars.table(kind)
            .get(name)
            .cloned()
            .ok_or_else(|| PolicyErrorKind::UnknownVariable(name.to_string()))
    };
    let expr = Parser::new(text, kind, &mut lookup).parse_all()?;
    let (max, field) = match kind {
        Kind::Addr => (ADDR_MAX, "address"),
        Kind::Port => (PORT_MAX, "port"),
    };
    if expr.to_ranges(max).is_empty() {
        return Err(PolicyErrorKind::MatchesNothing {
            field,
            text: text.to_string(),
        });
    }
    Ok(expr)
}

/// A CIDR or host as a [`SetExpr`]: IPv4 maps into the IPv4-mapped block; IPv6 excludes it.
pub fn parse_cidr(text: &str) -> Result<SetExpr, PolicyErrorKind> {
    let bad = |why| PolicyErrorKind::BadAddress {
        text: text.to_string(),
        why,
    };
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (
            ip,
            Some(len.parse::<u32>().map_err(|_| bad("bad prefix length"))?),
        ),
        None => (text, None),
    };
    if let Ok(v4) = ip.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        if len > 32 {
            return Err(bad("prefix length > 32"));
        }
        let host = u32::MAX.checked_shr(len).unwrap_or(0);
        let net = u32::from(v4) & !host;
        return Ok(SetExpr::Range(v4_to_addr(net), v4_to_addr(net | host)));
    }
    if let Ok(v6) = ip.parse::<Ipv6Addr>() {
        let len = len.unwrap_or(128);
        if len > 128 {
            return Err(bad("prefix length > 128"));
        }
        let host = u128::MAX.checked_shr(len).unwrap_or(0);
        let net = u128::from(v6) & !host;
        let (lo, hi) = (net, net | host);
        // An IPv4-mapped CIDR (`::ffff:10.0.0.0/120`) is IPv4 in our address space.
        if V4_MAPPED_LO <= lo && hi <= V4_MAPPED_HI {
            return Ok(SetExpr::Range(lo, hi));
        }
        // Otherwise cut the IPv4-mapped block out so `::/0` means "all IPv6", as in Suricata.
        let parts: Vec<SetExpr> = RangeSet(vec![(lo, hi)])
            .intersect(&RangeSet(vec![(V4_MAPPED_LO, V4_MAPPED_HI)]).complement(ADDR_MAX))
            .0
            .into_iter()
            .map(|(lo, hi)| SetExpr::Range(lo, hi))
            .collect();
        return Ok(match <[SetExpr; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => SetExpr::List(parts),
        });
    }
    Err(bad("not an IPv4 or IPv6 address or CIDR"))
}

/// A single port or range leaf.
fn parse_port_leaf(text: &str) -> Result<SetExpr, PolicyErrorKind> {
    let bad = |why| PolicyErrorKind::BadPort {
        text: text.to_string(),
        why,
    };
    let num = |s: &str, default: u32| -> Result<u32, PolicyErrorKind> {
        if s.is_empty() {
            return Ok(default);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a number"));
        }
        match s.parse::<u32>() {
            Ok(n) if n <= 65535 => Ok(n),
            _ => Err(bad("port > 65535")),
        }
    };
    let (lo, hi) = match text.split_once(':') {
        Some((a, b)) if a.is_empty() && b.is_empty() => return Err(bad("empty range")),
        Some((a, b)) => (num(a, 0)?, num(b, 65535)?),
        None if text.is_empty() => return Err(bad("empty")),
        None => {
            let n = num(text, 0)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(bad("range start > end"));
    }
    Ok(SetExpr::Range(u128::from(lo), u128::from(hi)))
}

/// Recursive-descent parser for one expression; whitespace is allowed inside lists.
struct Parser<'a, 'l> {
    text: &'a str,
    pos: usize,
    kind: Kind,
    lookup: &'l mut dyn FnMut(&str) -> Result<SetExpr, PolicyErrorKind>,
}

/// Nesting bound so a hostile file cannot overflow the stack.
const MAX_DEPTH: u32 = 32;

impl<'a, 'l> Parser<'a, 'l> {
    fn new(
        text: &'a str,
        kind: Kind,
        lookup: &'l mut dyn FnMut(&str) -> Result<SetExpr, PolicyErrorKind>,
    ) -> Self {
        Parser {
            text,
            pos: 0,
            kind,
            lookup,
        }
    }

    fn syntax(&self, what: &str) -> PolicyErrorKind {
        let what = format!("{what} in '{}'", self.text);
        match self.kind {
            Kind::Addr => PolicyErrorKind::Syntax(format!("address list: {what}")),
            Kind::Port => PolicyErrorKind::Syntax(format!("port list: {what}")),
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn parse_all(mut self) -> Result<SetExpr, PolicyErrorKind> {
        self.skip_ws();
        let e = self.expr(0)?;
        self.skip_ws();
        if !self.rest().is_empty() {
            return Err(self.syntax(&format!("unexpected '{}'", self.rest())));
        }
        Ok(e)
    }

    fn expr(&mut self, depth: u32) -> Result<SetExpr, PolicyErrorKind> {
        if depth > MAX_DEPTH {
            return Err(self.syntax("nested too deeply"));
        }
        self.skip_ws();
        match self.peek() {
            Some('!') => {
                self.pos += 1;
                Ok(SetExpr::Not(Box::new(self.expr(depth + 1)?)))
            }
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    items.push(self.expr(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(']') => {
                            self.pos += 1;
                            return Ok(SetExpr::List(items));
                        }
                        _ => return Err(self.syntax("expected ',' or ']'")),
                    }
                }
            }
            Some(_) => {
                let rest = self.rest();
                let len = rest
                    .find(|c: char| c == ',' || c == ']' || c == '[' || c.is_whitespace())
                    .unwrap_or(rest.len());
                let token = rest.get(..len).unwrap_or("");
                if token.is_empty() {
                    return Err(self.syntax("empty element"));
                }
                self.pos += len;
                self.leaf(token)
            }
            None => Err(self.syntax("empty element")),
        }
    }

    fn leaf(&mut self, token: &str) -> Result<SetExpr, PolicyErrorKind> {
        if token.eq_ignore_ascii_case("any") {
            return Ok(SetExpr::Any);
        }
        if let Some(name) = token.strip_prefix('$') {
            return (self.lookup)(name);
        }
        match self.kind {
            Kind::Addr => parse_cidr(token),
            Kind::Port => parse_port_leaf(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut a = BTreeMap::new();
        a.insert("HOME_NET".to_string(), vec!["10.0.0.0/8".to_string()]);
        a.insert(
            "DMZ".to_string(),
            vec!["[$HOME_NET, !10.1.0.0/16]".to_string()],
        );
        let mut p = BTreeMap::new();
        p.insert("WEB".to_string(), vec!["80".to_string(), "443".to_string()]);
        Variables::resolve(&a, &p).unwrap()
    }

    fn v4(s: &str) -> u128 {
        v4_to_addr(u32::from(s.parse::<Ipv4Addr>().unwrap()))
    }

    fn v6(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    /// Checks that direct evaluation and the flattened ranges agree at `v`, and returns it.
    fn both(e: &SetExpr, max: u128, v: u128) -> bool {
        let ranges = e.to_ranges(max);
        let in_ranges = ranges.0.iter().any(|&(lo, hi)| lo <= v && v <= hi);
        assert_eq!(e.contains(v), in_ranges, "{e:?} at {v}");
        in_ranges
    }

    #[test]
    fn cidrs_v4_and_v6() {
        let e = parse_addr("198.18.0.0/15", &vars()).unwrap();
        assert!(both(&e, ADDR_MAX, v4("198.19.255.255")));
        assert!(!both(&e, ADDR_MAX, v4("198.20.0.0")));
        let e = parse_addr("2001:2::/48", &vars()).unwrap();
        assert!(both(&e, ADDR_MAX, v6("2001:2::1")));
        assert!(!both(&e, ADDR_MAX, v6("2001:3::1")));
        // Host bits are masked, as Suricata does.
        let e = parse_addr("10.0.0.7/24", &vars()).unwrap();
        assert!(both(&e, ADDR_MAX, v4("10.0.0.200")));
    }

    #[test]
    fn ipv6_any_does_not_match_ipv4() {
        let e = parse_addr("::/0", &vars()).unwrap();
        assert!(both(&e, ADDR_MAX, v6("2001:2::1")));
        assert!(!both(&e, ADDR_MAX, v4("10.0.0.1")));
        let any = parse_addr("any", &vars()).unwrap();
        assert!(both(&any, ADDR_MAX, v4("10.0.0.1")));
        let v4_only = parse_addr("0.0.0.0/0", &vars()).unwrap();
        assert!(!both(&v4_only, ADDR_MAX, v6("2001:2::1")));
        // IPv4-mapped notation names IPv4 addresses.
        let mapped = parse_addr("::ffff:10.0.0.0/120", &vars()).unwrap();
        assert!(both(&mapped, ADDR_MAX, v4("10.0.0.9")));
        assert!(!both(&mapped, ADDR_MAX, v4("10.0.1.9")));
    }

    #[test]
    fn lists_negation_and_variables() {
        let v = vars();
        let e = parse_addr("[10.0.0.0/24, !10.0.0.5]", &v).unwrap();
        assert!(both(&e, ADDR_MAX, v4("10.0.0.4")));
        assert!(!both(&e, ADDR_MAX, v4("10.0.0.5")));
        assert!(!both(&e, ADDR_MAX, v4("10.0.1.1")));
        let e = parse_addr("!$HOME_NET", &v).unwrap();
        assert!(!both(&e, ADDR_MAX, v4("10.9.9.9")));
        assert!(both(&e, ADDR_MAX, v4("11.0.0.1")));
        let e = parse_addr("$EXTERNAL_NET", &v).unwrap();
        assert!(both(&e, ADDR_MAX, v4("11.0.0.1")));
        let e = parse_addr("$DMZ", &v).unwrap();
        assert!(both(&e, ADDR_MAX, v4("10.2.0.1")));
        assert!(!both(&e, ADDR_MAX, v4("10.1.0.1")));
        // Only negatives: everything else.
        let e = parse_addr("[!10.0.0.0/8, !192.168.0.0/16]", &v).unwrap();
        assert!(both(&e, ADDR_MAX, v4("11.0.0.1")));
        assert!(!both(&e, ADDR_MAX, v4("192.168.1.1")));
        // Nested negated list.
        let e = parse_addr("![10.0.0.0/8, [192.168.0.0/16]]", &v).unwrap();
        assert!(!both(&e, ADDR_MAX, v4("192.168.1.1")));
        assert!(both(&e, ADDR_MAX, v4("172.16.0.1")));
    }

    #[test]
    fn ports_all_forms() {
        let v = vars();
        let cases: &[(&str, &[u16], &[u16])] = &[
            ("any", &[0, 65535], &[]),
            ("80", &[80], &[79, 81]),
            ("80:82", &[80, 82], &[79, 83]),
            ("1024:", &[1024, 65535], &[1023]),
            (":1023", &[0, 1023], &[1024]),
            ("[80, 81]", &[80, 81], &[82]),
            ("!80", &[79, 81], &[80]),
            ("[80:100,!99]", &[80, 98, 100], &[99, 101]),
            ("[1:80,![2,4]]", &[1, 3, 80], &[2, 4, 0]),
            ("$WEB", &[80, 443], &[8080]),
            ("[$WEB, 8080]", &[8080, 443], &[22]),
        ];
        for (text, yes, no) in cases {
            let e = parse_ports(text, &v).unwrap();
            for p in *yes {
                assert!(
                    both(&e, PORT_MAX, u128::from(*p)),
                    "{text} should match {p}"
                );
            }
            for p in *no {
                assert!(
                    !both(&e, PORT_MAX, u128::from(*p)),
                    "{text} should not match {p}"
                );
            }
        }
    }

    #[test]
    fn errors_are_precise() {
        let v = vars();
        let err = |r: Result<SetExpr, PolicyErrorKind>| r.unwrap_err().to_string();
        assert_eq!(
            err(parse_ports("90:80", &v)),
            "bad port '90:80': range start > end"
        );
        assert_eq!(
            err(parse_ports("70000", &v)),
            "bad port '70000': port > 65535"
        );
        assert_eq!(
            err(parse_ports("http", &v)),
            "bad port 'http': not a number"
        );
        assert_eq!(
            err(parse_addr("10.0.0.0/33", &v)),
            "bad address '10.0.0.0/33': prefix length > 32"
        );
        assert_eq!(
            err(parse_addr("10.0.0.300", &v)),
            "bad address '10.0.0.300': not an IPv4 or IPv6 address or CIDR"
        );
        assert_eq!(err(parse_addr("$NOPE", &v)), "unknown variable '$NOPE'");
        assert_eq!(
            err(parse_ports("$HOME_NET", &v)),
            "unknown variable '$HOME_NET'"
        );
        assert_eq!(
            err(parse_addr("!any", &v)),
            "address '!any' matches nothing"
        );
        assert_eq!(
            err(parse_ports("[80,!80]", &v)),
            "port '[80,!80]' matches nothing"
        );
        assert_eq!(
            err(parse_addr("[10.0.0.1, 10.0.0.2", &v)),
            "syntax error: address list: expected ',' or ']' in '[10.0.0.1, 10.0.0.2'"
        );
    }

    #[test]
    fn variable_cycles_and_bad_definitions() {
        let mut a = BTreeMap::new();
        a.insert("A".to_string(), vec!["$B".to_string()]);
        a.insert("B".to_string(), vec!["[$A]".to_string()]);
        let e = Variables::resolve(&a, &BTreeMap::new()).unwrap_err();
        assert_eq!(e.to_string(), "variable '$A' refers to itself");
        let mut a = BTreeMap::new();
        a.insert("HOME_NET".to_string(), vec!["10.0.0.0/40".to_string()]);
        let e = Variables::resolve(&a, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "in variable '$HOME_NET': bad address '10.0.0.0/40': prefix length > 32"
        );
    }

    #[test]
    fn range_set_ops() {
        let a = RangeSet::from_ranges(vec![(5, 10), (0, 2), (3, 4), (20, 30)]);
        assert_eq!(a.0, vec![(0, 10), (20, 30)]);
        assert_eq!(a.complement(40).0, vec![(11, 19), (31, 40)]);
        assert_eq!(RangeSet::full(u128::MAX).complement(u128::MAX).0, vec![]);
        let b = RangeSet(vec![(8, 25)]);
        assert_eq!(a.intersect(&b).0, vec![(8, 10), (20, 25)]);
    }
}
