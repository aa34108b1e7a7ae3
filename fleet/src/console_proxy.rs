//! The web console's per-appliance reads through the fleet. The console (the appliance's,
//! served by the fleet too) shows statistics, charts, the policy and the operations of one
//! zone at a time; it reads them from the appliance's native `/v1/` API. On the fleet it
//! names the zone in the [`ZONE_HEADER`] header of a request signed with a fleet key; the
//! fleet checks that signature (before this module), then makes the same GET on that
//! zone's appliance signed with the zone's credentials. The browser never talks to an
//! appliance. Only the console's reads are forwarded: the fleet's keys must not reach any
//! other native call (policy reload, fault injection) of an appliance.

use api_server::{Request, Response};
use serde_json::json;

use crate::router::Router;
use crate::upstream::UpstreamError;

/// The header naming the zone a `/v1/` request is for (the console signs it).
pub const ZONE_HEADER: &str = "x-flowgate-zone";

/// True for the native reads the console makes: statistics, policy, the operation list,
/// an operation and its results.
pub fn is_console_read(method: &str, path: &str) -> bool {
    if method != "GET" {
        return false;
    }
    match path {
        "/v1/stats" | "/v1/policy" | "/v1/operations" => true,
        _ => {
            let Some(rest) = path.strip_prefix("/v1/operations/") else {
                return false;
            };
            let id = rest.strip_suffix("/results").unwrap_or(rest);
            // Operation ids are UUIDs: nothing that could step to another path.
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        }
    }
}

fn refusal(status: u16, error: &str, message: String) -> Response {
    Response::json(status, &json!({"error": error, "message": message}))
}

/// Forwards an authenticated console read to the zone its [`ZONE_HEADER`] names.
pub async fn forward(router: &Router, req: &Request) -> Response {
    if !is_console_read(&req.method, &req.path) {
        return refusal(
            404,
            "NotFound",
            format!(
                "no route for {} {} on the fleet (it forwards the console's reads only)",
                req.method, req.path
            ),
        );
    }
    let Some(name) = req.header(ZONE_HEADER) else {
        return refusal(
            400,
            "InvalidRequestException",
            format!("{ZONE_HEADER}: required on the fleet (the zone whose appliance to read)"),
        );
    };
    let Some(zone) = router.inv.zone_by_name(name).map(|z| &router.zones[z]) else {
        return refusal(
            400,
            "InvalidRequestException",
            format!("{ZONE_HEADER}: '{name}' is not one of this firewall's availability zones"),
        );
    };
    match zone.get_native(&req.path, &req.query).await {
        Ok((status, body)) => Response::bytes(status, "application/json", body),
        Err(e @ UpstreamError::Unreachable { .. }) => {
            refusal(503, "InternalServerError", e.to_string())
        }
        Err(e) => refusal(502, "InternalServerError", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_consoles_reads_are_forwarded() {
        for p in [
            "/v1/stats",
            "/v1/policy",
            "/v1/operations",
            "/v1/operations/0b4c9a3e-8f8e-4e52-9d3c-6f1e2f0a9b11",
            "/v1/operations/0b4c9a3e-8f8e-4e52-9d3c-6f1e2f0a9b11/results",
        ] {
            assert!(is_console_read("GET", p), "{p}");
        }
        for (m, p) in [
            ("POST", "/v1/policy/reload"),
            ("GET", "/v1/policy/reload"),
            ("GET", "/v1/debug/kill_mgmt"),
            ("POST", "/v1/operations"),
            ("GET", "/v1/operations/"),
            ("GET", "/v1/operations/../debug/x"),
            ("GET", "/v1/operations/abc/results/x"),
            ("GET", "/v1/operations/abc%2F..%2Fdebug"),
            ("GET", "/v1/stats/"),
        ] {
            assert!(!is_console_read(m, p), "{m} {p}");
        }
    }
}
