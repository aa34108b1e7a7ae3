//! Fault injection for reliability tests (`/v1/debug/*`), answered only when the config
//! sets `[debug] fault_injection = true`; otherwise these routes do not exist (404).
//!
//! * `POST /v1/debug/stall?worker=N&millis=M`: worker N stops polling for M ms (its
//!   heartbeat stops: `/readyz` 503, `flowgate_worker_stalled 1`).
//! * `POST /v1/debug/fill_ring?worker=N`: fills worker N's command ring with no-op
//!   `Stats` commands; with the worker stalled, the next command (an operation start, a
//!   policy reload) finds the ring full and must fail cleanly instead of hanging.
//! * `POST /v1/debug/panic`: the handler panics, proving a management bug answers 500
//!   and kills neither the API server nor the data plane.
//! * `POST /v1/debug/kill_mgmt`: answers 200, then the management side dies as if its
//!   threads had crashed ([`crate::control::Control::kill_mgmt`]): the collector exits
//!   without draining the workers' rings again, and the HTTP listeners (API and metrics)
//!   answer nothing more and close, so `/healthz` is refused. The process and the worker
//!   lcores live on: the workers are told nothing and keep forwarding with the policy they
//!   hold, their event rings fill and overflow (counted per worker), stats snapshots
//!   overwrite each other, and nothing blocks. There is no way back short of a restart;
//!   SIGHUP no longer reloads, SIGTERM still shuts down cleanly.

use std::time::Duration;

use serde_json::json;

use crate::app::App;
use api_server::{Request, Response};
use dataplane::worker::Command;

/// Upper bound on commands `fill_ring` pushes (rings are far smaller; a guard, not a size).
const FILL_LIMIT: usize = 1 << 20;

fn query_u64(q: &str, key: &str) -> Option<u64> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn bad_request(message: String) -> Response {
    Response::json(400, &json!({"error": "InvalidRequest", "message": message}))
}

/// The `worker` query parameter (default 0), checked against the worker count.
fn worker_of(app: &App, req: &Request) -> Result<usize, Response> {
    let worker = query_u64(&req.query, "worker").unwrap_or(0);
    usize::try_from(worker)
        .ok()
        .filter(|w| *w < app.control.workers())
        .ok_or_else(|| bad_request(format!("no worker {worker}")))
}

pub fn handle(app: &App, req: &Request) -> Option<Response> {
    if !app.cfg.debug.fault_injection {
        return None;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/debug/stall") => Some(stall(app, req).unwrap_or_else(|e| e)),
        ("POST", "/v1/debug/fill_ring") => Some(fill_ring(app, req).unwrap_or_else(|e| e)),
        ("POST", "/v1/debug/panic") => panic!("fault injection: /v1/debug/panic"),
        ("POST", "/v1/debug/kill_mgmt") => Some(kill_mgmt(app)),
        _ => None,
    }
}

fn stall(app: &App, req: &Request) -> Result<Response, Response> {
    let worker = worker_of(app, req)?;
    let millis = query_u64(&req.query, "millis").unwrap_or(3000).min(600_000) as u32;
    let sent = app
        .control
        .send(worker, Command::Stall { millis }, Duration::from_secs(1));
    Ok(match sent {
        Ok(()) => Response::json(200, &json!({"worker": worker, "stall_millis": millis})),
        Err(e) => Response::json(
            503,
            &json!({"error": "Unavailable", "message": e.to_string()}),
        ),
    })
}

fn fill_ring(app: &App, req: &Request) -> Result<Response, Response> {
    let worker = worker_of(app, req)?;
    let pushed = (0..FILL_LIMIT)
        .take_while(|_| {
            app.control
                .send(worker, Command::Stats, Duration::ZERO)
                .is_ok()
        })
        .count();
    Ok(Response::json(
        200,
        &json!({"worker": worker, "commands_pushed": pushed}),
    ))
}

fn kill_mgmt(app: &App) -> Response {
    let epoch = app.policy.current().epoch();
    eprintln!(
        "flowgate: fault injection: management killed; workers keep forwarding with policy epoch {epoch}"
    );
    // The flag goes up before the answer is written: the server still sends this response
    // (its last) and answers nothing after it.
    app.control.kill_mgmt();
    Response::json(
        200,
        &json!({"mgmt": "killed", "workers": app.control.workers(), "policy_epoch": epoch}),
    )
}
