//! The native flow-operations API (JSON under `/v1/operations`): the AWS operations with
//! snake_case fields, the options AWS lacks (`either_direction`, `states`,
//! `verdict_changed`) and richer results (state, per-direction counters, verdict, sid,
//! policy epoch, worker). Shapes are documented in `docs/api.md`; errors are
//! `{"error": <AWS error type>, "message": …}` with REST status codes.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::Audit;
use crate::clock::rfc3339;
use crate::ops::{
    FilterSpec, FlowResult, Naming, OpKind, Operation, OpsError, OpsManager, StartRequest,
};
use api_server::{Request, Response};

/// Largest page the native API serves (the AWS API stops at 100).
pub const MAX_PAGE: usize = 10_000;
const DEFAULT_PAGE: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    filters: Vec<FilterBody>,
    #[serde(default)]
    min_age_seconds: i64,
    #[serde(default)]
    either_direction: bool,
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    verdict_changed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    src: Option<String>,
    dst: Option<String>,
    /// A string (`"80"`, `"1024:65535"`, `"ANY"`) or a number.
    src_port: Option<Value>,
    dst_port: Option<Value>,
    /// IANA numbers or names, as strings or numbers.
    #[serde(default)]
    protocols: Vec<Value>,
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn error_response(e: &OpsError) -> Response {
    Response::json(
        e.native_status(),
        &json!({"error": e.aws_type(), "message": e.message()}),
    )
}

/// Serves `/v1/operations…`; `None` for any other path.
pub fn handle(ops: &OpsManager, req: &Request, caller: &str, audit: &Audit) -> Option<Response> {
    let rest = req.path.strip_prefix("/v1/operations")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let action = format!("{} {}", req.method, req.path);
    let outcome = route(ops, req, caller, &segments);
    let mutating = req.method == "POST";
    Some(match outcome {
        Ok((status, body, created)) => {
            if mutating {
                audit.record(
                    caller,
                    req.peer,
                    &action,
                    created.as_deref(),
                    "ok",
                    None,
                    None,
                );
            } else {
                audit.read(caller, req.peer, &action);
            }
            Response::json(status, &body)
        }
        Err(e) => {
            let outcome = if e.native_status() >= 500 {
                "error"
            } else {
                "refused"
            };
            audit.record(
                caller,
                req.peer,
                &action,
                None,
                outcome,
                Some(e.aws_type()),
                Some(e.message()),
            );
            error_response(&e)
        }
    })
}

type Routed = Result<(u16, Value, Option<String>), OpsError>;

fn route(ops: &OpsManager, req: &Request, caller: &str, segments: &[&str]) -> Routed {
    let method = req.method.as_str();
    let query = Query::parse(&req.query);
    let wrong_method = |allowed: &str| {
        Err(OpsError::InvalidRequest(format!(
            "{method} is not allowed on {}: use {allowed}",
            req.path
        )))
    };
    match segments {
        [] => match method {
            "GET" => list(ops, &query),
            _ => wrong_method("GET"),
        },
        [kind @ ("capture" | "flush")] => match method {
            "POST" => {
                let kind = OpKind::parse(kind).unwrap_or(OpKind::Capture);
                start(ops, req, caller, kind)
            }
            _ => wrong_method("POST"),
        },
        [id] => match method {
            "GET" => ops.describe(id).map(|op| (200, operation_json(&op), None)),
            _ => wrong_method("GET"),
        },
        [id, "results"] => match method {
            "GET" => results(ops, id, &query),
            _ => wrong_method("GET"),
        },
        _ => Err(OpsError::NotFound(format!(
            "no such resource: {}",
            req.path
        ))),
    }
}

fn start(ops: &OpsManager, req: &Request, caller: &str, kind: OpKind) -> Routed {
    let body: StartBody = serde_json::from_slice(&req.body)
        .map_err(|e| OpsError::InvalidRequest(format!("request body: {e}")))?;
    let mut filters = Vec::with_capacity(body.filters.len());
    for (i, f) in body.filters.into_iter().enumerate() {
        let port = |v: Option<Value>, name: &str| -> Result<Option<String>, OpsError> {
            v.map(|v| {
                scalar_text(&v).ok_or_else(|| {
                    OpsError::InvalidRequest(format!(
                        "filters[{i}].{name}: expected a string or a number"
                    ))
                })
            })
            .transpose()
        };
        let protocols = f
            .protocols
            .iter()
            .enumerate()
            .map(|(j, p)| {
                scalar_text(p).ok_or_else(|| {
                    OpsError::InvalidRequest(format!(
                        "filters[{i}].protocols[{j}]: expected a string or a number"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        filters.push(FilterSpec {
            source: f.src,
            destination: f.dst,
            source_port: port(f.src_port, "src_port")?,
            destination_port: port(f.dst_port, "dst_port")?,
            protocols,
        });
    }
    let req = StartRequest {
        kind,
        filters,
        min_age_seconds: body.min_age_seconds,
        either_direction: body.either_direction,
        states: body.states,
        verdict_changed: body.verdict_changed,
        naming: Naming::Native,
    };
    let summary = ops.start(req, caller)?;
    let op = ops.describe(&summary.id)?;
    Ok((202, operation_json(&op), Some(summary.id)))
}

fn page_size(q: &Query) -> Result<usize, OpsError> {
    match q.get("max") {
        None => Ok(DEFAULT_PAGE),
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                OpsError::InvalidRequest(format!("max: '{m}' is not a number from 1 to {MAX_PAGE}"))
            }),
    }
}

fn list(ops: &OpsManager, q: &Query) -> Routed {
    let kind = match q.get("type") {
        None | Some("") => None,
        Some(t) => Some(OpKind::parse(t).ok_or_else(|| {
            OpsError::InvalidRequest(format!("type: '{t}' is not one of capture, flush"))
        })?),
    };
    let (items, next) = ops.list(kind, page_size(q)?, q.get("token"))?;
    let items: Vec<Value> = items
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "type": s.kind.short_name(),
                "status": s.status.as_str(),
                "requested_at": rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_micros(s.requested_at_us)),
                "requested_at_epoch": s.requested_at_secs(),
            })
        })
        .collect();
    Ok((200, json!({"operations": items, "next_token": next}), None))
}

fn results(ops: &OpsManager, id: &str, q: &Query) -> Routed {
    let (page, next) = ops.results(id, page_size(q)?, q.get("token"))?;
    let op = &page.operation;
    Ok((
        200,
        json!({
            "id": op.id,
            "type": op.kind.short_name(),
            "status": op.status.as_str(),
            "message": op.message,
            "detail": op.detail,
            "flows_matched": op.flows_matched,
            "results_kept": op.results_kept,
            "flows": page.flows.iter().map(flow_json).collect::<Vec<_>>(),
            "next_token": next,
        }),
        None,
    ))
}

fn time(us: u64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us))
}

/// The native rendering of an operation.
pub fn operation_json(op: &Operation) -> Value {
    let r = &op.request;
    let filters: Vec<Value> = r
        .filters
        .iter()
        .map(|f| {
            json!({
                "src": f.source,
                "dst": f.destination,
                "src_port": f.source_port,
                "dst_port": f.destination_port,
                "protocols": f.protocols,
            })
        })
        .collect();
    json!({
        "id": op.id,
        "type": op.kind.short_name(),
        "status": op.status.as_str(),
        "message": op.message,
        "detail": op.detail,
        "zone": op.zone,
        "caller": op.caller,
        "requested_at": time(op.requested_at_us),
        "requested_at_epoch": op.requested_at_secs(),
        "completed_at": op.completed_at_us.map(time),
        "duration_seconds": op.completed_at_us.map(|c| c.saturating_sub(op.requested_at_us) as f64 / 1e6),
        "request": {
            "filters": filters,
            "min_age_seconds": r.min_age_seconds,
            "either_direction": r.either_direction,
            "states": r.states,
            "verdict_changed": r.verdict_changed,
        },
        "workers": op.workers.iter().map(|w| json!({
            "worker": w.worker,
            "scan": w.scan,
            "scanned": w.scanned,
            "matched": w.matched,
        })).collect::<Vec<_>>(),
        "flows_matched": op.flows_matched,
        "results_kept": op.results_kept,
    })
}

/// The native rendering of one result.
pub fn flow_json(f: &FlowResult) -> Value {
    json!({
        "src": f.src_ip().to_string(),
        "dst": f.dst_ip().to_string(),
        "src_port": f.src_port,
        "dst_port": f.dst_port,
        "protocol": f.protocol,
        "age_seconds": f.age_secs,
        "first_seen": rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(f.first_seen_ms)),
        "packets": f.pkts[0].saturating_add(f.pkts[1]),
        "bytes": f.bytes[0].saturating_add(f.bytes[1]),
        "packets_from_opener": f.pkts[0],
        "packets_from_responder": f.pkts[1],
        "bytes_from_opener": f.bytes[0],
        "bytes_from_responder": f.bytes[1],
        "state": f.state.as_str(),
        "verdict": f.verdict.as_str(),
        "sid": f.sid,
        "epoch": f.epoch,
        "worker": f.worker,
        "vlan": f.vlan,
        "flow_id": f.flow_id,
    })
}

/// A decoded query string (`a=1&b=x%2By`); `+` is kept literally so base64 tokens survive.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `%XX` escapes; malformed escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_keeps_plus_and_decodes_escapes() {
        let q = Query::parse("type=flush&token=ab%2Bc%3D%3D&max=5&x");
        assert_eq!(q.get("type"), Some("flush"));
        assert_eq!(q.get("token"), Some("ab+c=="));
        assert_eq!(q.get("max"), Some("5"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("nope"), None);
        assert_eq!(percent_decode("a+b%zz%4"), "a+b%zz%4");
        assert_eq!(percent_decode("%41%"), "A%");
    }
}
