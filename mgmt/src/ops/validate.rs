//! Turns a caller's [`StartRequest`] into the data plane's [`FlowMatch`], checking every
//! field and naming the offending one in the caller's vocabulary (AWS or native), e.g.
//! `FlowFilters[2].DestinationPort: '70000' is not a valid port: …`.

use dataplane::flow::FlowState;
use dataplane::ops::{parse_protocol, Cidr, FlowFilter, FlowMatch, PortRange};

use super::model::{FilterSpec, Naming, OpsError, StartRequest};

/// AWS documents at most 20 filters per operation (not encoded in the model, so checked here).
pub const MAX_FILTERS: usize = 20;
/// `Age` is an int32 in the AWS model.
pub const MAX_MIN_AGE_SECONDS: i64 = i32::MAX as i64;

/// Field names per vocabulary.
struct Names {
    filters: &'static str,
    source: &'static str,
    destination: &'static str,
    source_port: &'static str,
    destination_port: &'static str,
    protocols: &'static str,
    min_age: &'static str,
    states: &'static str,
}

const AWS: Names = Names {
    filters: "FlowFilters",
    source: "SourceAddress.AddressDefinition",
    destination: "DestinationAddress.AddressDefinition",
    source_port: "SourcePort",
    destination_port: "DestinationPort",
    protocols: "Protocols",
    min_age: "MinimumFlowAgeInSeconds",
    states: "states",
};

const NATIVE: Names = Names {
    filters: "filters",
    source: "src",
    destination: "dst",
    source_port: "src_port",
    destination_port: "dst_port",
    protocols: "protocols",
    min_age: "min_age_seconds",
    states: "states",
};

fn names(n: Naming) -> &'static Names {
    match n {
        Naming::Aws => &AWS,
        Naming::Native => &NATIVE,
    }
}

fn invalid(field: String, why: impl std::fmt::Display) -> OpsError {
    OpsError::InvalidRequest(format!("{field}: {why}"))
}

/// Validates `req` and compiles it for the workers. `ticks_per_sec` converts the minimum age.
pub fn compile(req: &StartRequest, ticks_per_sec: u64) -> Result<FlowMatch, OpsError> {
    let n = names(req.naming);
    if req.filters.is_empty() {
        return Err(invalid(
            n.filters.to_string(),
            "at least 1 filter is required",
        ));
    }
    if req.filters.len() > MAX_FILTERS {
        return Err(invalid(
            n.filters.to_string(),
            format!(
                "at most {MAX_FILTERS} filters are allowed, got {}",
                req.filters.len()
            ),
        ));
    }
    let filters = req
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| compile_filter(f, &format!("{}[{i}]", n.filters), n))
        .collect::<Result<Vec<_>, _>>()?;
    if !(0..=MAX_MIN_AGE_SECONDS).contains(&req.min_age_seconds) {
        return Err(invalid(
            n.min_age.to_string(),
            format!(
                "{} is out of range: use 0 to {MAX_MIN_AGE_SECONDS} seconds",
                req.min_age_seconds
            ),
        ));
    }
    let mut states = 0u16;
    for (i, s) in req.states.iter().enumerate() {
        let field = format!("{}[{i}]", n.states);
        match FlowState::parse(s) {
            Some(FlowState::Closed) => {
                return Err(invalid(
                    field,
                    "CLOSED flows are not active and are never matched",
                ))
            }
            Some(st) => states |= 1 << (st as u8),
            None => {
                let all: Vec<&str> = FlowState::ALL
                    .iter()
                    .filter(|s| s.is_active())
                    .map(|s| s.as_str())
                    .collect();
                return Err(invalid(
                    field,
                    format!("'{s}' is not a flow state: use one of {}", all.join(", ")),
                ));
            }
        }
    }
    Ok(FlowMatch {
        filters,
        min_age_ticks: (req.min_age_seconds as u64).saturating_mul(ticks_per_sec),
        either_direction: req.either_direction,
        states,
        verdict_changed: req.verdict_changed,
    })
}

fn compile_filter(f: &FilterSpec, at: &str, n: &Names) -> Result<FlowFilter, OpsError> {
    let cidr = |v: &Option<String>, name: &str| -> Result<Option<Cidr>, OpsError> {
        match v {
            None => Ok(None),
            Some(s) if s.is_empty() || s.len() > 255 => Err(invalid(
                format!("{at}.{name}"),
                "must be 1 to 255 characters",
            )),
            Some(s) => Cidr::parse(s)
                .map(Some)
                .map_err(|e| invalid(format!("{at}.{name}"), e)),
        }
    };
    let src = cidr(&f.source, n.source)?;
    let dst = cidr(&f.destination, n.destination)?;
    if src.is_none() && dst.is_none() {
        return Err(invalid(
            at.to_string(),
            format!(
                "a filter needs at least one address ({} or {})",
                n.source, n.destination
            ),
        ));
    }
    if let (Some(s), Some(d)) = (&f.source, &f.destination) {
        if s.contains(':') != d.contains(':') {
            return Err(invalid(
                at.to_string(),
                "source and destination addresses are of different IP versions, so the filter can never match",
            ));
        }
    }
    let port = |v: &Option<String>, name: &str| -> Result<PortRange, OpsError> {
        match v {
            None => Ok(PortRange::ANY),
            Some(s) if s.len() > 1024 => Err(invalid(
                format!("{at}.{name}"),
                "must be at most 1024 characters",
            )),
            Some(s) => PortRange::parse(s).map_err(|e| invalid(format!("{at}.{name}"), e)),
        }
    };
    let mut filter = FlowFilter {
        src,
        dst,
        src_port: port(&f.source_port, n.source_port)?,
        dst_port: port(&f.destination_port, n.destination_port)?,
        protocols: [0; 4],
    };
    for (j, p) in f.protocols.iter().enumerate() {
        let field = format!("{at}.{}[{j}]", n.protocols);
        if p.is_empty() || p.len() > 12 {
            return Err(invalid(field, "must be 1 to 12 characters"));
        }
        let num = parse_protocol(p).ok_or_else(|| {
            invalid(
                field,
                format!(
                    "'{p}' is not a valid protocol: use an IANA protocol number 0-255 \
                     (or tcp, udp, icmp, icmpv6, sctp)"
                ),
            )
        })?;
        filter.add_protocol(num);
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::model::OpKind;

    fn filter(src: &str) -> FilterSpec {
        FilterSpec {
            source: Some(src.into()),
            ..FilterSpec::default()
        }
    }

    fn err(req: &StartRequest) -> String {
        compile(req, 1000).unwrap_err().to_string()
    }

    #[test]
    fn valid_request_compiles_every_field() {
        let mut req = StartRequest::new(
            OpKind::Capture,
            vec![FilterSpec {
                source: Some("198.18.0.0/24".into()),
                destination: Some("198.18.1.7".into()),
                source_port: Some("ANY".into()),
                destination_port: Some("80:90".into()),
                protocols: vec!["6".into(), "udp".into()],
            }],
            300,
        );
        req.states = vec!["established".into(), "SYN_SENT".into()];
        req.either_direction = true;
        let m = compile(&req, 1000).unwrap();
        assert_eq!(m.min_age_ticks, 300_000);
        assert!(m.either_direction);
        assert_eq!(
            m.states,
            (1 << FlowState::Established as u8) | (1 << FlowState::SynSent as u8)
        );
        let f = &m.filters[0];
        assert_eq!(f.src.unwrap().to_string(), "198.18.0.0/24");
        assert_eq!(f.dst.unwrap().to_string(), "198.18.1.7/32");
        assert_eq!(f.dst_port, PortRange { lo: 80, hi: 90 });
        assert_eq!(f.protocol_list(), vec![6, 17]);
    }

    #[test]
    fn every_invalid_field_is_named() {
        let base = StartRequest::new(OpKind::Flush, vec![filter("198.18.0.0/24")], 0);

        let mut r = base.clone();
        r.filters.clear();
        assert_eq!(err(&r), "FlowFilters: at least 1 filter is required");

        let mut r = base.clone();
        r.filters = vec![filter("198.18.0.0/24"); 21];
        assert_eq!(
            err(&r),
            "FlowFilters: at most 20 filters are allowed, got 21"
        );
        r.filters.truncate(20);
        assert!(compile(&r, 1).is_ok());

        let mut r = base.clone();
        r.filters.push(FilterSpec {
            destination: Some("198.18.0.0".into()),
            ..FilterSpec::default()
        });
        r.filters.push(FilterSpec {
            destination: Some("198.18.0.0".into()),
            destination_port: Some("70000".into()),
            ..FilterSpec::default()
        });
        assert!(err(&r).starts_with("FlowFilters[2].DestinationPort: '70000' is not a valid port"));

        let mut r = base.clone();
        r.filters[0].source_port = Some("9:1".into());
        assert!(err(&r).starts_with("FlowFilters[0].SourcePort: '9:1' is not a valid port range"));

        let mut r = base.clone();
        r.filters[0].source = Some("198.18.0.1/24".into());
        assert!(err(&r).starts_with(
            "FlowFilters[0].SourceAddress.AddressDefinition: '198.18.0.1/24' is not a valid"
        ));

        let mut r = base.clone();
        r.filters[0].source = None;
        r.filters[0].destination_port = Some("80".into());
        assert!(err(&r).starts_with("FlowFilters[0]: a filter needs at least one address"));

        let mut r = base.clone();
        r.filters[0].destination = Some("2001:2::/48".into());
        assert!(err(&r).contains("different IP versions"));

        let mut r = base.clone();
        r.filters[0].protocols = vec!["6".into(), "256".into()];
        assert!(err(&r).starts_with("FlowFilters[0].Protocols[1]: '256' is not a valid protocol"));
        r.filters[0].protocols = vec!["".into()];
        assert_eq!(
            err(&r),
            "FlowFilters[0].Protocols[0]: must be 1 to 12 characters"
        );

        let mut r = base.clone();
        r.min_age_seconds = -1;
        assert!(err(&r).starts_with("MinimumFlowAgeInSeconds: -1 is out of range"));

        let mut r = base.clone();
        r.states = vec!["BOGUS".into()];
        assert!(err(&r).starts_with("states[0]: 'BOGUS' is not a flow state"));
        r.states = vec!["closed".into()];
        assert!(err(&r).contains("never matched"));
    }

    #[test]
    fn native_naming_uses_native_field_names() {
        let mut r = StartRequest::new(OpKind::Capture, vec![filter("198.18.0.0/24")], 0);
        r.naming = Naming::Native;
        r.filters[0].destination_port = Some("x".into());
        assert!(err(&r).starts_with("filters[0].dst_port: 'x' is not a valid port"));
        r.filters[0].destination_port = None;
        r.min_age_seconds = -5;
        assert!(err(&r).starts_with("min_age_seconds: -5"));
    }
}
