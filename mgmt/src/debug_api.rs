//! Fault injection for reliability tests (`/v1/debug/*`), answered only when the config
//! sets `[debug] fault_injection = true`; otherwise these routes do not exist (404).

use std::time::Duration;

use serde_json::json;

use crate::app::App;
use crate::http::server::{Request, Response};
use dataplane::worker::Command;

fn query_u64(q: &str, key: &str) -> Option<u64> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// `POST /v1/debug/stall?worker=N&millis=M`: worker N stops polling for M ms.
pub fn handle(app: &App, req: &Request) -> Option<Response> {
    if !app.cfg.debug.fault_injection {
        return None;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/debug/stall") => {
            let worker = query_u64(&req.query, "worker").unwrap_or(0) as usize;
            let millis = query_u64(&req.query, "millis").unwrap_or(3000).min(600_000) as u32;
            if worker >= app.control.workers() {
                return Some(Response::json(
                    400,
                    &json!({"error": "InvalidRequest", "message": format!("no worker {worker}")}),
                ));
            }
            let sent = app
                .control
                .send(worker, Command::Stall { millis }, Duration::from_secs(1));
            Some(match sent {
                Ok(()) => Response::json(200, &json!({"worker": worker, "stall_millis": millis})),
                Err(e) => Response::json(
                    503,
                    &json!({"error": "Unavailable", "message": e.to_string()}),
                ),
            })
        }
        _ => None,
    }
}
