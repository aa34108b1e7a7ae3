//! Suricata rule lines (`action proto src sport dir dst dport (options)`) into
//! [`StatefulRule`]s, restricted to what an L3/L4 engine can honour.
//!
//! Accepted: actions `pass`, `drop`, `reject`, `alert`; protocols `tcp`, `udp`, `icmp` (ICMP
//! and ICMPv6, as in Suricata), `icmpv4`, `icmpv6`, `sctp`, `ip` (any); `->` and `<>`;
//! options `msg`, `sid` (required), `rev`, `priority` (1–255, not under strict_order) and
//! `flow` with `to_server` / `from_client` / `stateless`. Those `flow` values change nothing
//! here, because rules are judged once per flow on the opener's first packet (or on a
//! midstream packet under `continue`); values that need connection context
//! (`established`, `to_client`, …) are rejected rather than silently ignored, as is every
//! other option (`content`, `http.host`, …) and every app-layer protocol.
//! Lines may continue with a trailing `\`; `#` starts a comment line.

use std::path::Path;

use super::error::{PolicyError, PolicyErrorKind};
use super::model::{Origin, ProtoSet, RuleAction, RuleOrder, StatefulRule, DEFAULT_RULE_PRIORITY};
use super::sets::{self, Variables, PORT_MAX};
use crate::packet::proto;

/// What a rule is parsed against.
pub(crate) struct RuleContext<'a> {
    pub vars: &'a Variables,
    pub order: RuleOrder,
    pub group: usize,
    pub file: &'a Path,
}

/// The fields of one rule, whether from a `.rules` line or a TOML table.
pub(crate) struct RuleFields<'a> {
    pub action: &'a str,
    pub protocol: &'a str,
    pub source: &'a str,
    pub source_port: &'a str,
    pub direction: &'a str,
    pub destination: &'a str,
    pub destination_port: &'a str,
    pub sid: Option<u32>,
    pub rev: Option<u32>,
    pub priority: Option<u32>,
    pub msg: String,
}

/// App-layer protocol keywords Suricata knows and this engine cannot inspect.
pub(crate) const APP_LAYER: &[&str] = &[
    "http",
    "http1",
    "http2",
    "ftp",
    "ftp-data",
    "tls",
    "ssl",
    "smb",
    "dns",
    "dcerpc",
    "ssh",
    "smtp",
    "imap",
    "pop3",
    "msn",
    "nfs",
    "ikev2",
    "ike",
    "krb5",
    "ntp",
    "dhcp",
    "rfb",
    "rdp",
    "snmp",
    "tftp",
    "sip",
    "quic",
    "mqtt",
    "modbus",
    "dnp3",
    "enip",
    "bittorrent-dht",
    "pgsql",
    "telnet",
    "websocket",
    "ldap",
];

/// Parses a whole `.rules` text. Rules keep the text's order.
pub(crate) fn parse_rules(
    text: &str,
    ctx: &RuleContext<'_>,
) -> Result<Vec<StatefulRule>, PolicyError> {
    let mut rules = Vec::new();
    let mut pending = String::new();
    let mut start_line = 0u32;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        if pending.is_empty() {
            start_line = line_no;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
        }
        if let Some(head) = raw.trim_end().strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        rules.push(parse_rule_line(&line, ctx, start_line)?);
    }
    if !pending.is_empty() {
        return Err(PolicyError::new(
            ctx.file,
            Some(start_line),
            None,
            PolicyErrorKind::Syntax("line continuation '\\' at end of file".into()),
        ));
    }
    Ok(rules)
}

/// Parses one rule line (continuations already joined).
pub(crate) fn parse_rule_line(
    line: &str,
    ctx: &RuleContext<'_>,
    line_no: u32,
) -> Result<StatefulRule, PolicyError> {
    let at = |sid, kind| PolicyError::new(ctx.file, Some(line_no), sid, kind);
    let line = line.trim();
    let open = line.find('(').ok_or_else(|| {
        at(
            None,
            PolicyErrorKind::Syntax("expected '(options)' after the rule header".into()),
        )
    })?;
    let (header, options) = line.split_at(open);
    let options = options
        .strip_prefix('(')
        .and_then(|o| o.trim_end().strip_suffix(')'))
        .ok_or_else(|| {
            at(
                None,
                PolicyErrorKind::Syntax("rule options must end with ')'".into()),
            )
        })?;
    let opts = parse_options(options, ctx.order).map_err(|(sid, kind)| at(sid, kind))?;
    let sid = opts.sid;
    let tokens = header_tokens(header).map_err(|k| at(sid, k))?;
    let [action, protocol, source, source_port, direction, destination, destination_port] = tokens;
    let fields = RuleFields {
        action,
        protocol,
        source,
        source_port,
        direction,
        destination,
        destination_port,
        sid,
        rev: opts.rev,
        priority: opts.priority,
        msg: opts.msg,
    };
    build_rule(fields, ctx, line_no).map_err(|k| at(sid, k))
}

/// Splits the header into its seven fields; whitespace inside `[...]` is allowed.
fn header_tokens(header: &str) -> Result<[&str; 7], PolicyErrorKind> {
    let mut tokens = Vec::with_capacity(7);
    let mut depth = 0i32;
    let mut start = None;
    for (i, c) in header.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth <= 0 {
            if let Some(s) = start.take() {
                tokens.push(header.get(s..i).unwrap_or(""));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        tokens.push(header.get(s..).unwrap_or(""));
    }
    <[&str; 7]>::try_from(tokens).map_err(|t| {
        PolicyErrorKind::Syntax(format!(
            "expected 'action proto src sport dir dst dport (options)', found {} header fields",
            t.len()
        ))
    })
}

struct Options {
    sid: Option<u32>,
    rev: Option<u32>,
    priority: Option<u32>,
    msg: String,
}

/// Parses `kw:value; kw;` options. Errors carry the sid when it was already seen.
fn parse_options(text: &str, order: RuleOrder) -> Result<Options, (Option<u32>, PolicyErrorKind)> {
    let mut opts = Options {
        sid: None,
        rev: None,
        priority: None,
        msg: String::new(),
    };
    let items = split_options(text).map_err(|k| (None, k))?;
    // Find the sid first so every other error can name it.
    for (key, value) in &items {
        if key == "sid" {
            opts.sid = Some(
                parse_number("sid", value, 1, u64::from(u32::MAX)).map_err(|k| (None, k))? as u32,
            );
        }
    }
    let sid = opts.sid;
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &items {
        let err = |k| (sid, k);
        if seen.contains(&key.as_str()) {
            return Err(err(PolicyErrorKind::Syntax(format!(
                "option '{key}' given twice"
            ))));
        }
        seen.push(key);
        match key.as_str() {
            "sid" => {}
            "msg" => opts.msg = unquote(value),
            "rev" => {
                opts.rev =
                    Some(parse_number("rev", value, 0, u64::from(u32::MAX)).map_err(err)? as u32)
            }
            "priority" => {
                if order == RuleOrder::StrictOrder {
                    return Err(err(PolicyErrorKind::PriorityInStrictOrder));
                }
                opts.priority = Some(parse_number("priority", value, 1, 255).map_err(err)? as u32);
            }
            "flow" => {
                for v in value.split(',').map(str::trim) {
                    if !matches!(v, "to_server" | "from_client" | "stateless") {
                        return Err(err(PolicyErrorKind::UnsupportedFlowOption(v.to_string())));
                    }
                }
            }
            other => return Err(err(PolicyErrorKind::UnsupportedOption(other.to_string()))),
        }
    }
    Ok(opts)
}

fn parse_number(
    option: &'static str,
    value: &str,
    min: u64,
    max: u64,
) -> Result<u64, PolicyErrorKind> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(PolicyErrorKind::BadOptionValue {
            option,
            value: value.to_string(),
            why: match option {
                "priority" => "expected an integer 1..=255",
                "rev" => "expected a non-negative integer",
                _ => "expected an integer 1..=4294967295",
            },
        }),
    }
}

/// Splits on `;` outside quotes and escapes; yields `(keyword, value)`.
fn split_options(text: &str) -> Result<Vec<(String, String)>, PolicyErrorKind> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    let mut flush = |cur: &mut String| -> Result<(), PolicyErrorKind> {
        let item = cur.trim();
        if !item.is_empty() {
            let (k, v) = item.split_once(':').unwrap_or((item, ""));
            let key = k.trim();
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            {
                return Err(PolicyErrorKind::Syntax(format!("bad rule option '{item}'")));
            }
            out.push((key.to_string(), v.trim().to_string()));
        }
        cur.clear();
        Ok(())
    };
    for c in text.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            ';' if !quoted => flush(&mut cur)?,
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(PolicyErrorKind::Syntax(
            "unterminated quoted string in rule options".into(),
        ));
    }
    if !cur.trim().is_empty() {
        return Err(PolicyErrorKind::Syntax(format!(
            "rule option '{}' must end with ';'",
            cur.trim()
        )));
    }
    Ok(out)
}

/// Strips quotes and backslash escapes from a `msg` value.
fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

fn parse_action(s: &str) -> Result<RuleAction, PolicyErrorKind> {
    Ok(match s {
        "pass" => RuleAction::Pass,
        "drop" => RuleAction::Drop,
        "reject" => RuleAction::Reject,
        "alert" => RuleAction::Alert,
        other => return Err(PolicyErrorKind::UnknownAction(other.to_string())),
    })
}

/// The protocol set and whether the protocol has ports.
fn parse_protocol(s: &str) -> Result<(ProtoSet, bool), PolicyErrorKind> {
    let lower = s.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "tcp" => (ProtoSet::of(&[proto::TCP]), true),
        "udp" => (ProtoSet::of(&[proto::UDP]), true),
        "sctp" => (ProtoSet::of(&[proto::SCTP]), true),
        "icmp" => (ProtoSet::of(&[proto::ICMP, proto::ICMPV6]), false),
        "icmpv4" => (ProtoSet::of(&[proto::ICMP]), false),
        "icmpv6" => (ProtoSet::of(&[proto::ICMPV6]), false),
        "ip" => (ProtoSet::ANY, false),
        app if APP_LAYER.contains(&app) => {
            return Err(PolicyErrorKind::UnsupportedProtocol(s.to_string()))
        }
        _ => return Err(PolicyErrorKind::UnknownProtocol(s.to_string())),
    })
}

/// Builds and validates a rule from its fields (shared by `.rules` lines and TOML tables).
pub(crate) fn build_rule(
    f: RuleFields<'_>,
    ctx: &RuleContext<'_>,
    line: u32,
) -> Result<StatefulRule, PolicyErrorKind> {
    let action = parse_action(f.action)?;
    let (protocols, has_ports) = parse_protocol(f.protocol)?;
    let bidirectional = match f.direction {
        "->" => false,
        "<>" => true,
        other => return Err(PolicyErrorKind::BadDirection(other.to_string())),
    };
    let src = sets::parse_addr(f.source, ctx.vars)?;
    let dst = sets::parse_addr(f.destination, ctx.vars)?;
    let src_ports = sets::parse_ports(f.source_port, ctx.vars)?;
    let dst_ports = sets::parse_ports(f.destination_port, ctx.vars)?;
    if !has_ports {
        let full = sets::RangeSet::full(PORT_MAX);
        if src_ports.to_ranges(PORT_MAX) != full || dst_ports.to_ranges(PORT_MAX) != full {
            return Err(PolicyErrorKind::PortsNeedPortProtocol(
                f.protocol.to_string(),
            ));
        }
    }
    let sid = f.sid.ok_or(PolicyErrorKind::MissingSid)?;
    if ctx.order == RuleOrder::StrictOrder && f.priority.is_some() {
        return Err(PolicyErrorKind::PriorityInStrictOrder);
    }
    let priority = match f.priority {
        None => DEFAULT_RULE_PRIORITY,
        Some(p) => {
            u8::try_from(p)
                .ok()
                .filter(|p| *p >= 1)
                .ok_or(PolicyErrorKind::BadOptionValue {
                    option: "priority",
                    value: p.to_string(),
                    why: "expected an integer 1..=255",
                })?
        }
    };
    Ok(StatefulRule {
        action,
        protocols,
        protocol_name: f.protocol.to_ascii_lowercase(),
        src,
        src_ports,
        dst,
        dst_ports,
        bidirectional,
        sid,
        rev: f.rev.unwrap_or(1),
        priority,
        msg: f.msg,
        group: ctx.group,
        origin: Origin {
            file: ctx.file.to_path_buf(),
            line,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::v4_to_addr;
    use std::collections::BTreeMap;

    fn vars() -> Variables {
        let mut a = BTreeMap::new();
        a.insert("HOME_NET".to_string(), vec!["198.18.0.0/15".to_string()]);
        let mut p = BTreeMap::new();
        p.insert("WEB_PORTS".to_string(), vec!["[80, 8080]".to_string()]);
        Variables::resolve(&a, &p).unwrap()
    }

    fn parse_in(text: &str, order: RuleOrder) -> Result<Vec<StatefulRule>, String> {
        let v = vars();
        let ctx = RuleContext {
            vars: &v,
            order,
            group: 0,
            file: Path::new("lab.rules"),
        };
        parse_rules(text, &ctx).map_err(|e| e.to_string())
    }

    fn parse(text: &str) -> Result<Vec<StatefulRule>, String> {
        parse_in(text, RuleOrder::DefaultActionOrder)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn full_rule_with_every_field() {
        let r = parse(
            "# comment\n\n drop tcp [10.0.0.0/8, !10.0.0.1] any <> $HOME_NET [22, 2222] \
             (msg:\"no \\\"ssh\\\"; ever\"; sid:10; rev:3; priority:2; flow:to_server,stateless;)\n",
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        let r = &r[0];
        assert_eq!(r.action, RuleAction::Drop);
        assert!(r.protocols.contains(proto::TCP) && !r.protocols.contains(proto::UDP));
        assert!(r.bidirectional);
        assert_eq!((r.sid, r.rev, r.priority), (10, 3, 2));
        assert_eq!(r.msg, "no \"ssh\"; ever");
        assert_eq!(r.origin.line, 3);
        assert!(
            r.src.contains(v4_to_addr(0x0a00_0002)) && !r.src.contains(v4_to_addr(0x0a00_0001))
        );
        assert!(r.dst_ports.contains(2222) && !r.dst_ports.contains(23));
    }

    #[test]
    fn defaults_protocols_and_continuation() {
        let r = parse(
            "pass ip any any -> any any (sid:1;)\n\
             alert icmp any any -> any any (sid:2;)\n\
             pass udp any any -> any $WEB_PORTS \\\n   (sid:3;)\n\
             pass icmpv6 any any -> any any (sid:4;)\n\
             pass sctp any 1: -> any :1023 (sid:5;)\n",
        )
        .unwrap();
        assert_eq!(r.iter().map(|r| r.sid).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(r[0].protocols.is_any());
        assert_eq!((r[0].rev, r[0].priority), (1, DEFAULT_RULE_PRIORITY));
        assert!(r[1].protocols.contains(proto::ICMP) && r[1].protocols.contains(proto::ICMPV6));
        assert_eq!(r[2].origin.line, 3);
        assert!(r[2].dst_ports.contains(8080));
        assert!(!r[3].protocols.contains(proto::ICMP));
        assert!(!r[4].src_ports.contains(0) && r[4].dst_ports.contains(1023));
    }

    #[test]
    fn invalid_forms_have_exact_messages() {
        let cases = [
            ("alert tcp any any -> any any (content:\"x\"; sid:5;)", "lab.rules:1: sid 5: unsupported rule option 'content'"),
            ("alert tcp any any -> any any (sid:5; http.host; )", "lab.rules:1: sid 5: unsupported rule option 'http.host'"),
            ("alert http any any -> any any (sid:6;)", "lab.rules:1: sid 6: unsupported protocol 'http' (L3/L4 engine)"),
            ("alert foo any any -> any any (sid:6;)", "lab.rules:1: sid 6: unknown protocol 'foo'"),
            ("pass tcp any any -> any 80 (msg:\"x\";)", "lab.rules:1: missing sid"),
            ("block tcp any any -> any 80 (sid:7;)", "lab.rules:1: sid 7: unknown action 'block' (expected pass, drop, reject or alert)"),
            ("pass tcp any any <- any 80 (sid:7;)", "lab.rules:1: sid 7: bad direction '<-' (expected '->' or '<>')"),
            ("pass tcp any any -> any 90:80 (sid:7;)", "lab.rules:1: sid 7: bad port '90:80': range start > end"),
            ("pass tcp any any -> any 65536 (sid:7;)", "lab.rules:1: sid 7: bad port '65536': port > 65535"),
            ("pass tcp 10.0.0.0/33 any -> any 80 (sid:7;)", "lab.rules:1: sid 7: bad address '10.0.0.0/33': prefix length > 32"),
            ("pass tcp $NOPE any -> any 80 (sid:7;)", "lab.rules:1: sid 7: unknown variable '$NOPE'"),
            ("pass icmp any 8 -> any any (sid:7;)", "lab.rules:1: sid 7: ports must be 'any' for protocol 'icmp'"),
            ("pass ip any any -> any 80 (sid:7;)", "lab.rules:1: sid 7: ports must be 'any' for protocol 'ip'"),
            ("pass tcp any any -> any 80 (sid:7; priority:0;)", "lab.rules:1: sid 7: bad value '0' for option 'priority': expected an integer 1..=255"),
            ("pass tcp any any -> any 80 (sid:x;)", "lab.rules:1: bad value 'x' for option 'sid': expected an integer 1..=4294967295"),
            ("pass tcp any any -> any 80 (sid:7; flow:established;)", "lab.rules:1: sid 7: unsupported flow option 'established' (rules are judged once per flow, on its first packet)"),
            ("pass tcp any any -> any 80 (sid:7; sid:8;)", "lab.rules:1: sid 8: syntax error: option 'sid' given twice"),
            ("pass tcp any any -> any 80", "lab.rules:1: syntax error: expected '(options)' after the rule header"),
            ("pass tcp any any -> any 80 (sid:7;", "lab.rules:1: syntax error: rule options must end with ')'"),
            ("pass tcp any -> any 80 (sid:7;)", "lab.rules:1: sid 7: syntax error: expected 'action proto src sport dir dst dport (options)', found 6 header fields"),
            ("pass tcp any any -> any 80 (msg:\"x; sid:7;)", "lab.rules:1: syntax error: unterminated quoted string in rule options"),
            ("pass tcp any any -> any 80 (sid:7; msg:\"x\")", "lab.rules:1: syntax error: rule option 'msg:\"x\"' must end with ';'"),
            ("\n\npass tcp any any -> any 80 \\", "lab.rules:3: syntax error: line continuation '\\' at end of file"),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "for {text}");
        }
    }

    #[test]
    fn priority_is_rejected_under_strict_order() {
        let e = parse_in(
            "pass tcp any any -> any 80 (sid:9; priority:1;)",
            RuleOrder::StrictOrder,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "lab.rules:1: sid 9: rule option 'priority' is not allowed under strict_order"
        );
        assert!(parse_in(
            "pass tcp any any -> any 80 (sid:9;)",
            RuleOrder::StrictOrder
        )
        .is_ok());
    }
}
