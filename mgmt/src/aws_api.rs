//! The AWS-compatible API for the five flow-operation actions, with the service's member
//! names, types, limits, enums and error shapes, so the stock AWS CLI and SDKs drive the
//! appliance unchanged. Both of the service's protocols are answered:
//! * AWS JSON 1.0: `POST /` with `X-Amz-Target: NetworkFirewall_20201112.<Action>` (the AWS
//!   CLI, boto3, and SDKs that prefer it);
//! * Smithy RPC v2 CBOR: `POST /service/NetworkFirewall_20201112/operation/<Action>` with
//!   `smithy-protocol: rpc-v2-cbor` (SDKs that prefer the first protocol of the service
//!   model). The body is decoded into the same JSON value ([`crate::cbor`]), so validation
//!   and results are identical; timestamps go back as CBOR epoch-time tags.
//!
//! The resource actions (firewall, policies, rule groups, logging, tags) are served by
//! [`crate::resources::actions`] through [`handle_with`].
//!
//! Authentication happened before [`handle`] is called.
//!
//! Choices where the service is silent or single-appliance differs (see `docs/api.md`):
//! * `FirewallArn` must be this appliance's ARN, else `ResourceNotFoundException`.
//! * `AvailabilityZone` / `AvailabilityZoneId` (at most one of them, as the service
//!   requires), when given, must name this appliance's zone or zone id (`[appliance] zone`,
//!   `zone_id`), else `InvalidRequestException` (a zone is part of the request's scope, not
//!   a resource one could look up here). Describe and Results report both.
//! * `VpcEndpointId` (`^vpce-[a-zA-Z0-9]*$`, 5–256 characters) and
//!   `VpcEndpointAssociationArn` are checked for shape and echoed.
//! * Error bodies carry the message as `Message` (what botocore's modelled parse reads) and
//!   `message` (what its generic parse and older clients read).
//! * A second operation while one is in progress: `ThrottlingException`, HTTP 429.
//! * Unknown members are ignored, as the service's JSON protocol does.

use serde_json::{json, Map, Value};

use crate::audit::Audit;
use crate::cbor;
use crate::config::Config;
use crate::ops::{FilterSpec, FlowResult, OpKind, Operation, OpsError, OpsManager, StartRequest};
use crate::resources::{PolicyHost, ResourceManager};
use api_server::{Request, Response};

pub const TARGET_PREFIX: &str = "NetworkFirewall_20201112.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Smithy RPC v2 CBOR requests: this prefix, then the action name.
pub const CBOR_PATH_PREFIX: &str = "/service/NetworkFirewall_20201112/operation/";
pub const CBOR_CONTENT_TYPE: &str = "application/cbor";
/// Response members that are timestamps (CBOR carries them as epoch-time tags).
const TIMESTAMP_MEMBERS: &[&str] = &["FlowRequestTimestamp", "LastModifiedTime"];

/// The wire protocol a request came in on; its response and errors go back in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    /// The protocol of a request to `path` on the API listener, if it is an AWS one.
    pub fn of_path(path: &str) -> Option<Protocol> {
        if path == "/" {
            Some(Protocol::Json)
        } else if path.starts_with("/service/") {
            Some(Protocol::Cbor)
        } else {
            None
        }
    }

    /// `v` with `status`, encoded for this protocol.
    pub fn response(self, status: u16, v: &Value) -> Response {
        match self {
            Protocol::Json => Response::json(status, v).with_header("Content-Type", CONTENT_TYPE),
            Protocol::Cbor => Response::bytes(
                status,
                CBOR_CONTENT_TYPE,
                cbor::encode(v, TIMESTAMP_MEMBERS),
            )
            .with_header("smithy-protocol", "rpc-v2-cbor"),
        }
    }

    /// The service's error shape, `{"__type": kind, "Message": …, "message": …}`.
    pub fn error(self, status: u16, kind: &str, message: &str) -> Response {
        self.response(
            status,
            &json!({"__type": kind, "Message": message, "message": message}),
        )
    }
}
/// `PaginationMaxResults`.
const MAX_RESULTS: i64 = 100;

/// An error in the service's shape: `{"__type": kind, "message": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: &'static str,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: "InvalidRequestException",
            status: 400,
            message: message.into(),
        }
    }

    fn serialization(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: "SerializationException",
            status: 400,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: "ResourceNotFoundException",
            status: 400,
            message: message.into(),
        }
    }

    pub fn response(&self, protocol: Protocol) -> Response {
        protocol.error(self.status, self.kind, &self.message)
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> ApiError {
        ApiError {
            kind: e.aws_type(),
            status: e.aws_status(),
            message: e.message().to_string(),
        }
    }
}

/// The resource actions' view of the appliance ([`crate::resources`]).
#[derive(Clone, Copy)]
pub struct Resources<'a> {
    pub mgr: &'a ResourceManager,
    pub host: &'a dyn PolicyHost,
}

/// One AWS API request (either protocol), flow operations only (resource actions answer
/// `UnknownOperationException`): see [`handle_with`].
pub fn handle(
    ops: &OpsManager,
    cfg: &Config,
    req: &Request,
    caller: &str,
    audit: &Audit,
    protocol: Protocol,
) -> Response {
    handle_with(ops, cfg, req, caller, audit, protocol, None)
}

/// One AWS API request (either protocol). Actions that change something and every refused
/// call are audited.
pub fn handle_with(
    ops: &OpsManager,
    cfg: &Config,
    req: &Request,
    caller: &str,
    audit: &Audit,
    protocol: Protocol,
    resources: Option<Resources<'_>>,
) -> Response {
    let action = action_name(req, protocol);
    let mutating = matches!(action, "StartFlowCapture" | "StartFlowFlush")
        || crate::resources::actions::is_mutating(action);
    let audit_action = match (action.is_empty(), protocol) {
        (false, _) => action,
        (true, Protocol::Json) => "(no X-Amz-Target)",
        (true, Protocol::Cbor) => "(no operation in path)",
    };
    match dispatch(ops, cfg, req, caller, protocol, resources) {
        Ok((body, created)) => {
            if mutating {
                audit.record(
                    caller,
                    req.peer,
                    audit_action,
                    created.as_deref(),
                    "ok",
                    None,
                    None,
                );
            } else {
                audit.read(caller, req.peer, audit_action);
            }
            protocol.response(200, &body)
        }
        Err(e) => {
            let outcome = if e.status >= 500 { "error" } else { "refused" };
            audit.record(
                caller,
                req.peer,
                audit_action,
                None,
                outcome,
                Some(e.kind),
                Some(&e.message),
            );
            e.response(protocol)
        }
    }
}

/// The action a request names: after the target prefix (JSON) or the path prefix (CBOR);
/// the raw header or path when the prefix is missing, so errors and audit can name it.
pub fn action_name(req: &Request, protocol: Protocol) -> &str {
    action_of(req, protocol).unwrap_or_else(|raw| raw)
}

/// The action after the protocol's prefix, or the raw header/path without it.
fn action_of(req: &Request, protocol: Protocol) -> Result<&str, &str> {
    let (raw, prefix) = match protocol {
        Protocol::Json => (req.header("x-amz-target").unwrap_or(""), TARGET_PREFIX),
        Protocol::Cbor => (req.path.as_str(), CBOR_PATH_PREFIX),
    };
    raw.strip_prefix(prefix).ok_or(raw)
}

/// The action a request names, or `UnknownOperationException` saying what was expected.
pub fn action(req: &Request, protocol: Protocol) -> Result<&str, ApiError> {
    action_of(req, protocol).map_err(|raw| {
        unknown(match protocol {
            Protocol::Json if raw.is_empty() => {
                "missing X-Amz-Target header (expected NetworkFirewall_20201112.<Action>)".into()
            }
            Protocol::Json => format!("unknown operation '{raw}'"),
            Protocol::Cbor => {
                format!("unknown service path '{raw}' (expected {CBOR_PATH_PREFIX}<Action>)")
            }
        })
    })
}

/// The request's body as a JSON object (decoded from JSON or CBOR; an empty body is `{}`),
/// after checking that the call is a `POST`.
pub fn body(req: &Request, protocol: Protocol) -> Result<Value, ApiError> {
    if req.method != "POST" {
        return Err(ApiError::invalid(format!(
            "AWS API requests use POST, not {}",
            req.method
        )));
    }
    let body: Value = match protocol {
        _ if req.body.iter().all(u8::is_ascii_whitespace) => Value::Object(Map::new()),
        Protocol::Json => serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::serialization(format!("request body is not valid JSON: {e}")))?,
        Protocol::Cbor => cbor::decode(&req.body)
            .map_err(|e| ApiError::serialization(format!("request body is not valid CBOR: {e}")))?,
    };
    if !body.is_object() {
        return Err(ApiError::serialization("request body must be an object"));
    }
    Ok(body)
}

/// Runs one action; returns the response body and the id of an operation it created.
fn dispatch(
    ops: &OpsManager,
    cfg: &Config,
    req: &Request,
    caller: &str,
    protocol: Protocol,
    resources: Option<Resources<'_>>,
) -> Result<(Value, Option<String>), ApiError> {
    let action = action(req, protocol)?;
    let resource_action =
        resources.filter(|_| crate::resources::actions::ACTIONS.contains(&action));
    if resource_action.is_none()
        && !matches!(
            action,
            "StartFlowCapture"
                | "StartFlowFlush"
                | "DescribeFlowOperation"
                | "ListFlowOperations"
                | "ListFlowOperationResults"
        )
    {
        return Err(unknown(format!("unknown operation '{action}'")));
    }
    let body = body(req, protocol)?;
    if let Some(r) = resource_action {
        return crate::resources::actions::dispatch(r.mgr, r.host, action, &body, caller);
    }
    let obj = Fields::root(
        body.as_object()
            .ok_or_else(|| ApiError::serialization("request body must be an object"))?,
    );
    let scope = Scope::check(cfg, &obj)?;
    match action {
        "StartFlowCapture" => start(ops, &obj, &scope, OpKind::Capture, caller),
        "StartFlowFlush" => start(ops, &obj, &scope, OpKind::Flush, caller),
        "DescribeFlowOperation" => describe(ops, &obj, &scope).map(|v| (v, None)),
        "ListFlowOperations" => list(ops, &obj).map(|v| (v, None)),
        _ => results(ops, &obj, &scope).map(|v| (v, None)),
    }
}

fn unknown(message: String) -> ApiError {
    ApiError {
        kind: "UnknownOperationException",
        status: 400,
        message,
    }
}

/// Typed access to a JSON object's members, naming the member path in errors.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    fn root(map: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            map,
            path: String::new(),
        }
    }

    fn name(&self, member: &str) -> String {
        if self.path.is_empty() {
            member.to_string()
        } else {
            format!("{}.{member}", self.path)
        }
    }

    fn get(&self, member: &str) -> Option<&'a Value> {
        self.map.get(member).filter(|v| !v.is_null())
    }

    fn str(&self, member: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::serialization(format!(
                "{}: expected a string",
                self.name(member)
            ))),
        }
    }

    fn required_str(&self, member: &str) -> Result<&'a str, ApiError> {
        self.str(member)?.ok_or_else(|| {
            ApiError::invalid(format!("{}: missing required parameter", self.name(member)))
        })
    }

    fn int(&self, member: &str) -> Result<Option<i64>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                ApiError::serialization(format!("{}: expected an integer", self.name(member)))
            }),
        }
    }

    fn list(&self, member: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(ApiError::serialization(format!(
                "{}: expected a list",
                self.name(member)
            ))),
        }
    }

    fn object(&self, member: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(v) => Ok(Some(Fields::at(v, self.name(member))?)),
        }
    }

    fn at(v: &'a Value, path: String) -> Result<Fields<'a>, ApiError> {
        match v {
            Value::Object(map) => Ok(Fields { map, path }),
            _ => Err(ApiError::serialization(format!(
                "{path}: expected a structure"
            ))),
        }
    }
}

/// `ResourceArn`: length 1–256, starts with `arn:aws`.
fn check_arn(member: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > 256 || !v.starts_with("arn:aws") {
        return Err(ApiError::invalid(format!(
            "{member}: '{v}' is not a valid ARN (1 to 256 characters starting with 'arn:aws')"
        )));
    }
    Ok(())
}

/// `VpcEndpointId`: `^vpce-[a-zA-Z0-9]*$`, 5 to 256 characters.
fn is_vpc_endpoint_id(v: &str) -> bool {
    (5..=256).contains(&v.len())
        && v.strip_prefix("vpce-")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The scoping members every request carries, checked against this appliance.
struct Scope {
    firewall_arn: String,
    zone: String,
    zone_id: Option<String>,
    vpc_endpoint_id: Option<String>,
    vpc_endpoint_association_arn: Option<String>,
}

impl Scope {
    fn check(cfg: &Config, obj: &Fields<'_>) -> Result<Scope, ApiError> {
        let arn = obj.required_str("FirewallArn")?;
        check_arn("FirewallArn", arn)?;
        let a = &cfg.appliance;
        if arn != a.firewall_arn {
            return Err(ApiError::not_found(format!(
                "firewall '{arn}' not found: this appliance is '{}'",
                a.firewall_arn
            )));
        }
        match (obj.str("AvailabilityZone")?, obj.str("AvailabilityZoneId")?) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "AvailabilityZone and AvailabilityZoneId: specify one or the other, not both",
                ))
            }
            (Some(z), None) if z != a.zone => {
                return Err(ApiError::invalid(format!(
                    "AvailabilityZone: '{z}' is not this firewall's availability zone ('{}')",
                    a.zone
                )))
            }
            (None, Some(z)) if a.zone_id.as_deref() != Some(z) => {
                return Err(ApiError::invalid(match &a.zone_id {
                    Some(id) => format!(
                        "AvailabilityZoneId: '{z}' is not this firewall's availability zone id ('{id}')"
                    ),
                    None => format!(
                        "AvailabilityZoneId: '{z}' is not this firewall's availability zone id \
                         (none is configured; name the zone with AvailabilityZone '{}')",
                        a.zone
                    ),
                }))
            }
            _ => {}
        }
        let vpce = obj.str("VpcEndpointId")?;
        if let Some(v) = vpce {
            if !is_vpc_endpoint_id(v) {
                return Err(ApiError::invalid(format!(
                    "VpcEndpointId: '{}' must match ^vpce-[a-zA-Z0-9]*$ (5 to 256 characters)",
                    v.chars().take(64).collect::<String>()
                )));
            }
        }
        let assoc = obj.str("VpcEndpointAssociationArn")?;
        if let Some(v) = assoc {
            check_arn("VpcEndpointAssociationArn", v)?;
        }
        Ok(Scope {
            firewall_arn: arn.to_string(),
            zone: a.zone.clone(),
            zone_id: a.zone_id.clone(),
            vpc_endpoint_id: vpce.map(str::to_string),
            vpc_endpoint_association_arn: assoc.map(str::to_string),
        })
    }

    /// `FirewallArn`, `AvailabilityZone`, `AvailabilityZoneId` (when configured) and the
    /// echoed endpoint members.
    fn echo(&self, out: &mut Map<String, Value>) {
        out.insert("FirewallArn".into(), json!(self.firewall_arn));
        out.insert("AvailabilityZone".into(), json!(self.zone));
        if let Some(id) = &self.zone_id {
            out.insert("AvailabilityZoneId".into(), json!(id));
        }
        if let Some(v) = &self.vpc_endpoint_id {
            out.insert("VpcEndpointId".into(), json!(v));
        }
        if let Some(v) = &self.vpc_endpoint_association_arn {
            out.insert("VpcEndpointAssociationArn".into(), json!(v));
        }
    }
}

fn parse_filters(obj: &Fields<'_>) -> Result<Vec<FilterSpec>, ApiError> {
    let list = obj
        .list("FlowFilters")?
        .ok_or_else(|| ApiError::invalid("FlowFilters: missing required parameter"))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let f = Fields::at(v, format!("FlowFilters[{i}]"))?;
            let address = |member: &str| -> Result<Option<String>, ApiError> {
                match f.object(member)? {
                    None => Ok(None),
                    Some(a) => Ok(Some(a.required_str("AddressDefinition")?.to_string())),
                }
            };
            let protocols = match f.list("Protocols")? {
                None => Vec::new(),
                Some(ps) => ps
                    .iter()
                    .enumerate()
                    .map(|(j, p)| {
                        p.as_str().map(str::to_string).ok_or_else(|| {
                            ApiError::serialization(format!(
                                "FlowFilters[{i}].Protocols[{j}]: expected a string"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            Ok(FilterSpec {
                source: address("SourceAddress")?,
                destination: address("DestinationAddress")?,
                source_port: f.str("SourcePort")?.map(str::to_string),
                destination_port: f.str("DestinationPort")?.map(str::to_string),
                protocols,
            })
        })
        .collect()
}

fn start(
    ops: &OpsManager,
    obj: &Fields<'_>,
    scope: &Scope,
    kind: OpKind,
    caller: &str,
) -> Result<(Value, Option<String>), ApiError> {
    let filters = parse_filters(obj)?;
    let min_age = obj.int("MinimumFlowAgeInSeconds")?.unwrap_or(0);
    let summary = ops.start(StartRequest::new(kind, filters, min_age), caller)?;
    Ok((
        json!({
            "FirewallArn": scope.firewall_arn,
            "FlowOperationId": summary.id,
            "FlowOperationStatus": summary.status.as_str(),
        }),
        Some(summary.id),
    ))
}

fn operation_id<'a>(obj: &Fields<'a>) -> Result<&'a str, ApiError> {
    let id = obj.required_str("FlowOperationId")?;
    if !crate::ops::is_operation_id(id) {
        return Err(ApiError::invalid(format!(
            "FlowOperationId: '{id}' does not match ^([0-9a-f]{{8}})-([0-9a-f]{{4}}-){{3}}([0-9a-f]{{12}})$"
        )));
    }
    Ok(id)
}

fn max_results(obj: &Fields<'_>) -> Result<usize, ApiError> {
    match obj.int("MaxResults")? {
        None => Ok(MAX_RESULTS as usize),
        Some(n) if (1..=MAX_RESULTS).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid(format!(
            "MaxResults: {n} is out of range: use 1 to {MAX_RESULTS}"
        ))),
    }
}

/// `PaginationToken`: 1–4096 characters of `[0-9A-Za-z:/+=]`.
fn next_token<'a>(obj: &Fields<'a>) -> Result<Option<&'a str>, ApiError> {
    let t = obj.str("NextToken")?;
    if let Some(t) = t {
        let shape_ok = !t.is_empty()
            && t.len() <= 4096
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/+=".contains(&b));
        if !shape_ok {
            return Err(ApiError::invalid(
                "NextToken: invalid pagination token (1 to 4096 characters of [0-9A-Za-z:/+=])",
            ));
        }
    }
    Ok(t)
}

fn address(ip: std::net::IpAddr) -> Value {
    json!({"AddressDefinition": FlowResult::host_cidr(ip)})
}

/// `FlowOperation` as the caller gave it.
fn flow_operation(op: &Operation) -> Value {
    let filters: Vec<Value> = op
        .request
        .filters
        .iter()
        .map(|f| {
            let mut m = Map::new();
            if let Some(s) = &f.source {
                m.insert("SourceAddress".into(), json!({"AddressDefinition": s}));
            }
            if let Some(d) = &f.destination {
                m.insert("DestinationAddress".into(), json!({"AddressDefinition": d}));
            }
            if let Some(p) = &f.source_port {
                m.insert("SourcePort".into(), json!(p));
            }
            if let Some(p) = &f.destination_port {
                m.insert("DestinationPort".into(), json!(p));
            }
            if !f.protocols.is_empty() {
                m.insert("Protocols".into(), json!(f.protocols));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "MinimumFlowAgeInSeconds": op.request.min_age_seconds,
        "FlowFilters": filters,
    })
}

fn describe(ops: &OpsManager, obj: &Fields<'_>, scope: &Scope) -> Result<Value, ApiError> {
    let op = ops.describe(operation_id(obj)?)?;
    let mut out = Map::new();
    scope.echo(&mut out);
    out.insert("FlowOperationId".into(), json!(op.id));
    out.insert("FlowOperationType".into(), json!(op.kind.aws_name()));
    out.insert("FlowOperationStatus".into(), json!(op.status.as_str()));
    if let Some(m) = &op.message {
        out.insert("StatusMessage".into(), json!(m));
    }
    out.insert("FlowRequestTimestamp".into(), json!(op.requested_at_secs()));
    out.insert("FlowOperation".into(), flow_operation(&op));
    Ok(Value::Object(out))
}

fn list(ops: &OpsManager, obj: &Fields<'_>) -> Result<Value, ApiError> {
    let kind = match obj.str("FlowOperationType")? {
        None => None,
        Some(k) => Some(
            OpKind::ALL
                .into_iter()
                .find(|x| x.aws_name() == k)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "FlowOperationType: '{k}' is not one of FLOW_FLUSH, FLOW_CAPTURE"
                    ))
                })?,
        ),
    };
    let max = max_results(obj)?;
    let (items, next) = ops.list(kind, max, next_token(obj)?)?;
    let items: Vec<Value> = items
        .iter()
        .map(|s| {
            json!({
                "FlowOperationId": s.id,
                "FlowOperationType": s.kind.aws_name(),
                "FlowRequestTimestamp": s.requested_at_secs(),
                "FlowOperationStatus": s.status.as_str(),
            })
        })
        .collect();
    let mut out = json!({ "FlowOperations": items });
    if let Some(t) = next {
        out["NextToken"] = json!(t);
    }
    Ok(out)
}

/// One `Flow`.
pub fn flow_json(f: &FlowResult) -> Value {
    json!({
        "SourceAddress": address(f.src_ip()),
        "DestinationAddress": address(f.dst_ip()),
        "SourcePort": f.src_port.to_string(),
        "DestinationPort": f.dst_port.to_string(),
        "Protocol": f.protocol.to_string(),
        "Age": f.age_i32(),
        "PacketCount": f.packet_count(),
        "ByteCount": f.byte_count(),
    })
}

fn results(ops: &OpsManager, obj: &Fields<'_>, scope: &Scope) -> Result<Value, ApiError> {
    let id = operation_id(obj)?;
    let max = max_results(obj)?;
    let (page, next) = ops.results(id, max, next_token(obj)?)?;
    let op = &page.operation;
    let mut out = Map::new();
    scope.echo(&mut out);
    out.insert("FlowOperationId".into(), json!(op.id));
    out.insert("FlowOperationStatus".into(), json!(op.status.as_str()));
    if let Some(m) = &op.message {
        out.insert("StatusMessage".into(), json!(m));
    }
    out.insert("FlowRequestTimestamp".into(), json!(op.requested_at_secs()));
    out.insert(
        "Flows".into(),
        Value::Array(page.flows.iter().map(flow_json).collect()),
    );
    if let Some(t) = next {
        out.insert("NextToken".into(), json!(t));
    }
    Ok(Value::Object(out))
}
