//! What the fleet's listener answers. The listener itself is the appliance's
//! ([`api_server`]: hyper over rustls, per-address connection caps, fair-share eviction
//! of unauthenticated connections, deadlines, body limits); this module is its
//! [`Handler`]: `/healthz`, `/metrics` and the web console's files (`/console/`, with the
//! zones for its selector) unauthenticated; the AWS API in both of the service's protocols —
//! AWS JSON 1.0 (`POST /`, `X-Amz-Target`) and Smithy RPC v2 CBOR
//! (`POST /service/…/operation/<Action>`) — and the console's reads of one zone's appliance
//! (`GET /v1/…`, [`crate::console_proxy`]), each request verified with SigV4 against the
//! fleet's own keys before the [`Router`] sees it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use api_server::{Handler, LimitKind, Request, Response};
use mgmt::aws_api::Protocol;
use mgmt::console::ConsoleSettings;
use serde_json::{json, Value};
use sigv4::KeyStore;
use tokio::runtime::Handle;

use crate::router::{ApiError, Router};
use crate::upstream::SERVICE;

/// The fleet's application behind [`api_server::Server`].
pub struct FleetApi {
    pub router: Arc<Router>,
    pub keys: KeyStore,
    pub region: String,
    /// The runtime the router's upstream calls run on: handlers are synchronous (they run
    /// on the listener's blocking pool), the router is async.
    pub runtime: Handle,
    /// The console's `config.json`: the fleet's region and zones, `fleet: true`.
    pub console: ConsoleSettings,
}

impl Handler for FleetApi {
    fn handle(&self, req: &Request) -> Response {
        if mgmt::console::owns(&req.path) {
            return mgmt::console::handle(req, &self.console);
        }
        if req.path.starts_with("/v1/") {
            return match self.verify(req) {
                Ok(_) => self
                    .runtime
                    .block_on(crate::console_proxy::forward(&self.router, req))
                    .authenticated(),
                Err(e) => Protocol::Json.error(e.status, &e.kind, &e.message),
            };
        }
        let Some(protocol) = Protocol::of_path(&req.path) else {
            return match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/healthz") => Response::text(200, "ok\n"),
                ("GET", "/metrics") => Response::text(200, self.router.metrics.render())
                    .with_header("Content-Type", "text/plain; version=0.0.4"),
                _ => Response::json(
                    404,
                    &json!({"error": "NotFound", "message": format!("no route for {} {}", req.method, req.path)}),
                ),
            };
        };
        let started = Instant::now();
        let caller = match self.verify(req) {
            Ok(caller) => caller,
            Err(e) => return protocol.error(e.status, &e.kind, &e.message),
        };
        let (action, out) = self.call(req, protocol);
        let outcome = match &out {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        self.router
            .metrics
            .observe_request(&action, outcome, started.elapsed());
        if out.is_ok() && is_mutating(&action) {
            // The appliances audit the fleet's key; this line names the fleet's caller.
            eprintln!("flowgate-fleet: {caller} from {}: {action} ok", req.peer);
        }
        match out {
            Ok(v) => protocol.response(200, &v),
            Err(e) => protocol.error(e.status, &e.kind, &e.message),
        }
        // A signed request: its connection is no longer one the listener may evict.
        .authenticated()
    }

    fn on_limit(&self, kind: LimitKind, path: &str) -> Response {
        mgmt::router::aws_limit_response(kind, path)
    }
}

impl FleetApi {
    /// The caller's access key id when the request carries a valid signature by a fleet key.
    fn verify(&self, req: &Request) -> Result<String, ApiError> {
        sigv4::verify(
            &mgmt::auth::signed_parts(req),
            &self.keys,
            &self.region,
            SERVICE,
            SystemTime::now(),
        )
        .map_err(|e| ApiError::new(e.aws_type(), e.http_status(), e.to_string()))
    }

    /// Decodes and routes one authenticated API request; returns the action it named.
    fn call(&self, req: &Request, protocol: Protocol) -> (String, Result<Value, ApiError>) {
        let action = match mgmt::aws_api::action(req, protocol) {
            Ok(a) => a.to_string(),
            Err(e) => return (String::new(), Err(e.into())),
        };
        let out = match mgmt::aws_api::body(req, protocol) {
            Ok(body) => self.runtime.block_on(self.router.handle(&action, body)),
            Err(e) => Err(e.into()),
        };
        (action, out)
    }
}

fn is_mutating(action: &str) -> bool {
    action.starts_with("Start") || crate::policy_sync::CHANGE_ACTIONS.contains(&action)
}
