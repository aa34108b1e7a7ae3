//! The fleet's HTTPS listener (hyper 1 over tokio-rustls): `/healthz` and `/metrics`
//! unauthenticated, and the AWS API in both of the service's protocols — AWS JSON 1.0
//! (`POST /`, `X-Amz-Target`) and Smithy RPC v2 CBOR (`POST /service/…/operation/<Action>`)
//! — each request verified with SigV4 against the fleet's own keys before it is routed.
//! Connections are capped, TLS handshakes and request headers have deadlines, bodies a
//! size limit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use mgmt::sigv4::{self, KeyStore};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::router::{ApiError, Router};
use crate::upstream::{JSON_CONTENT_TYPE, SERVICE, TARGET_PREFIX};

const CBOR_PATH_PREFIX: &str = "/service/NetworkFirewall_20201112/operation/";
const CBOR_CONTENT_TYPE: &str = "application/cbor";
/// Response members that are timestamps (CBOR carries them as epoch-time tags).
const TIMESTAMP_MEMBERS: &[&str] = &["FlowRequestTimestamp", "LastModifiedTime"];
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Json,
    Cbor,
}

/// What the listener needs besides the router.
pub struct Server {
    pub router: Arc<Router>,
    pub keys: KeyStore,
    pub region: String,
    pub max_body_bytes: usize,
}

type Body = Full<Bytes>;

impl Server {
    /// Accepts connections on `listener` until the task is dropped.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        max_connections: usize,
    ) {
        let acceptor = TlsAcceptor::from(tls);
        let slots = Arc::new(Semaphore::new(max_connections));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("flowgate-fleet: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let server = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let svc = service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.serve(req, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    }

    async fn serve(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path().to_string();
        let protocol = if path == "/" {
            Protocol::Json
        } else if path.starts_with("/service/") {
            Protocol::Cbor
        } else {
            return match (req.method(), path.as_str()) {
                (&Method::GET, "/healthz") => text(200, "ok\n".into()),
                (&Method::GET, "/metrics") => text(200, self.router.metrics.render()),
                _ => json_response(
                    404,
                    &json!({"error": "NotFound", "message": format!("no route for {} {path}", req.method())}),
                ),
            };
        };
        let started = Instant::now();
        let (action, out) = self.api(req, protocol, peer).await;
        let outcome = match &out {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        self.router
            .metrics
            .observe_request(&action, outcome, started.elapsed());
        match out {
            Ok(v) => encode(protocol, 200, &v),
            Err(e) => encode(
                protocol,
                e.status,
                &json!({"__type": e.kind, "message": e.message}),
            ),
        }
    }

    /// Authenticates, decodes and routes one API request; returns the action it named.
    async fn api(
        &self,
        req: Request<Incoming>,
        protocol: Protocol,
        peer: SocketAddr,
    ) -> (String, Result<Value, ApiError>) {
        let (parts, body) = req.into_parts();
        let mut headers = Vec::with_capacity(parts.headers.len());
        for (name, value) in &parts.headers {
            let Ok(v) = value.to_str() else {
                return (
                    String::new(),
                    Err(ApiError::invalid(format!(
                        "header {name}: not visible ASCII"
                    ))),
                );
            };
            headers.push((name.as_str().to_string(), v.to_string()));
        }
        let action = match protocol {
            Protocol::Json => parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            Protocol::Cbor => parts.uri.path().to_string(),
        };
        let body = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return (
                    String::new(),
                    Err(ApiError::new(
                        "SerializationException",
                        413,
                        format!("request body larger than {} bytes", self.max_body_bytes),
                    )),
                )
            }
        };
        let vr = sigv4::VerifyRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        let caller = match sigv4::verify(&vr, &self.keys, &self.region, SERVICE, SystemTime::now())
        {
            Ok(c) => c,
            Err(e) => {
                let err = ApiError::new(e.aws_type(), e.http_status(), e.to_string());
                return (String::new(), Err(err));
            }
        };
        let stripped = match protocol {
            Protocol::Json => action.strip_prefix(TARGET_PREFIX),
            Protocol::Cbor => action.strip_prefix(CBOR_PATH_PREFIX),
        };
        let Some(action) = stripped.map(str::to_string) else {
            let err = ApiError::new(
                "UnknownOperationException",
                400,
                match protocol {
                    Protocol::Json if action.is_empty() => {
                        "missing X-Amz-Target header (expected NetworkFirewall_20201112.<Action>)"
                            .to_string()
                    }
                    Protocol::Json => format!("unknown operation '{action}'"),
                    Protocol::Cbor => format!(
                        "unknown service path '{action}' (expected {CBOR_PATH_PREFIX}<Action>)"
                    ),
                },
            );
            return (String::new(), Err(err));
        };
        if parts.method != Method::POST {
            let err = ApiError::invalid(format!("AWS API requests use POST, not {}", parts.method));
            return (action, Err(err));
        }
        let decoded: Result<Value, ApiError> = if body.iter().all(u8::is_ascii_whitespace) {
            Ok(json!({}))
        } else {
            match protocol {
                Protocol::Json => serde_json::from_slice(&body).map_err(|e| {
                    ApiError::new(
                        "SerializationException",
                        400,
                        format!("request body is not valid JSON: {e}"),
                    )
                }),
                Protocol::Cbor => mgmt::cbor::decode(&body).map_err(|e| {
                    ApiError::new(
                        "SerializationException",
                        400,
                        format!("request body is not valid CBOR: {e}"),
                    )
                }),
            }
        };
        let out = match decoded {
            Ok(v) => self.router.handle(&action, v).await,
            Err(e) => Err(e),
        };
        if out.is_ok() && is_mutating(&action) {
            // The appliances audit the fleet's key; this line names the fleet's caller.
            eprintln!("flowgate-fleet: {caller} from {peer}: {action} ok");
        }
        (action, out)
    }
}

fn is_mutating(action: &str) -> bool {
    action.starts_with("Start") || crate::policy_sync::CHANGE_ACTIONS.contains(&action)
}

fn text(status: u16, body: String) -> Response<Body> {
    build(status, "text/plain; charset=utf-8", Bytes::from(body), None)
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    build(
        status,
        "application/json",
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        None,
    )
}

fn encode(protocol: Protocol, status: u16, v: &Value) -> Response<Body> {
    match protocol {
        Protocol::Json => build(
            status,
            JSON_CONTENT_TYPE,
            Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None,
        ),
        Protocol::Cbor => build(
            status,
            CBOR_CONTENT_TYPE,
            Bytes::from(mgmt::cbor::encode(v, TIMESTAMP_MEMBERS)),
            Some(("smithy-protocol", "rpc-v2-cbor")),
        ),
    }
}

fn build(
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: Option<(&str, &str)>,
) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string());
    if let Some((k, v)) = extra {
        b = b.header(k, v);
    }
    b.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
