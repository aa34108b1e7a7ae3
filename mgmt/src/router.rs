//! What answers which request: the web console's static assets, health, readiness and metrics (anonymous),
//! the AWS protocols (`POST /`, `POST /service/…`) and the native `/v1/` API (both
//! authenticated), and the refusals the transport makes, in the request's protocol.

use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::auth::authenticate;
use crate::aws_api::Protocol;
use api_server::{Handler, LimitKind, Request, Response};

fn not_found(req: &Request) -> Response {
    Response::json(
        404,
        &json!({"error": "NotFound", "message": format!("no route for {} {}", req.method, req.path)}),
    )
}

impl App {
    fn route(&self, req: &Request) -> Response {
        if crate::console::owns(&req.path) {
            return crate::console::handle(req, &self.console);
        }
        if let Some(protocol) = Protocol::of_path(&req.path) {
            return match authenticate(&self.cfg, &self.keys, &self.audit, req, protocol) {
                Ok(caller) => crate::aws_api::handle_with(
                    &self.ops,
                    &self.cfg,
                    req,
                    &caller,
                    &self.audit,
                    protocol,
                    Some(crate::aws_api::Resources {
                        mgr: &self.resources,
                        host: self,
                    }),
                )
                .authenticated(),
                Err(r) => r,
            };
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/healthz" | "/readyz" | "/metrics") => self.route_monitoring(req),
            (_, p) if p.starts_with("/v1/") => {
                match authenticate(&self.cfg, &self.keys, &self.audit, req, Protocol::Json) {
                    Ok(caller) => self.route_v1(req, &caller).authenticated(),
                    Err(r) => r,
                }
            }
            _ => not_found(req),
        }
    }

    fn route_monitoring(&self, req: &Request) -> Response {
        match req.path.as_str() {
            "/healthz" => Response::text(200, "ok\n"),
            "/readyz" => match self.ready() {
                Ok(()) => Response::text(200, "ready\n"),
                Err(why) => Response::text(503, format!("not ready: {why}\n")),
            },
            "/metrics" => Response::text(200, crate::metrics::scrape(self))
                .with_header("Content-Type", "text/plain; version=0.0.4"),
            _ => not_found(req),
        }
    }

    fn route_v1(&self, req: &Request, caller: &str) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/stats") => {
                self.audit.read(caller, req.peer, "GET /v1/stats");
                Response::json(200, &crate::stats::stats_json(self))
            }
            ("POST", "/v1/policy/reload") => match self.reload_policy(caller, Some(req.peer)) {
                Ok(v) => Response::json(200, &v),
                Err(e) => Response::json(400, &json!({"error": "InvalidPolicy", "message": e})),
            },
            ("GET", "/v1/policy") => {
                self.audit.read(caller, req.peer, "GET /v1/policy");
                Response::json(200, &self.policy.describe_json())
            }
            (_, p) if p.starts_with("/v1/debug/") => crate::debug_api::handle(self, req)
                .unwrap_or_else(|| {
                    Response::json(
                        404,
                        &json!({"error": "NotFound", "message": "fault injection is disabled"}),
                    )
                }),
            _ => crate::native_api::handle(&self.ops, req, caller, &self.audit)
                .unwrap_or_else(|| not_found(req)),
        }
    }
}

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        self.route(req)
    }

    fn on_limit(&self, kind: LimitKind, path: &str) -> Response {
        aws_limit_response(kind, path)
    }
}

/// A listener refusal in the AWS error shape, in the protocol the request's path names
/// (JSON 1.0 by default): what every AWS-compatible listener (the appliance's, the fleet's)
/// answers when the transport refuses a request.
pub fn aws_limit_response(kind: LimitKind, path: &str) -> Response {
    let ty = match kind {
        LimitKind::BodyTooLarge | LimitKind::BodyTimeout => "InvalidRequestException",
        LimitKind::TooManyConnections | LimitKind::HandlerTimeout => "ThrottlingException",
        LimitKind::HandlerPanicked => "InternalServerError",
    };
    Protocol::of_path(path)
        .unwrap_or(Protocol::Json)
        .error(kind.status(), ty, kind.message())
}

/// What the separate `metrics_listen` listener serves: health, readiness and metrics only,
/// so monitoring never competes with API callers and exposes nothing else.
pub struct MonitoringHandler(pub Arc<App>);

impl Handler for MonitoringHandler {
    fn handle(&self, req: &Request) -> Response {
        if req.method == "GET" {
            self.0.route_monitoring(req)
        } else {
            not_found(req)
        }
    }
}
