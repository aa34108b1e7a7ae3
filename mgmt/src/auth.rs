//! Authentication of API requests: SigV4 (service `network-firewall`) against the
//! configured keys, or nobody when `auth = "none"` (labs). Refusals are audited (tallied,
//! see [`crate::audit`]) and answered in the request's protocol.

use std::time::SystemTime;

use crate::audit::Audit;
use crate::aws_api::Protocol;
use crate::config::{AuthMode, Config};
use api_server::{Request, Response};
use sigv4::{Credentials, KeyStore};

/// The keys requests may be signed with.
pub fn key_store(cfg: &Config) -> KeyStore {
    KeyStore::new(
        cfg.mgmt
            .keys
            .iter()
            .map(|k| Credentials {
                access_key_id: k.access_key_id.clone(),
                secret_access_key: k.secret_access_key.clone(),
            })
            .collect(),
    )
}

/// The parts of a request its signature covers.
pub fn signed_parts(req: &Request) -> sigv4::VerifyRequest<'_> {
    sigv4::VerifyRequest {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        body: &req.body,
    }
}

/// The caller's access key id, or the response refusing the request.
pub fn authenticate(
    cfg: &Config,
    keys: &KeyStore,
    audit: &Audit,
    req: &Request,
    protocol: Protocol,
) -> Result<String, Response> {
    if cfg.mgmt.auth == Some(AuthMode::None) {
        return Ok("anonymous".into());
    }
    sigv4::verify(
        &signed_parts(req),
        keys,
        &cfg.mgmt.region,
        "network-firewall",
        SystemTime::now(),
    )
    .map_err(|e| {
        let action = match crate::aws_api::action_name(req, protocol) {
            "" => req.path.as_str(),
            a => a,
        };
        // The claimed key id only: the rest of the header is the caller's to forge.
        let key = req
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .unwrap_or("-");
        audit.record(
            key,
            req.peer,
            action,
            None,
            "refused",
            Some(e.aws_type()),
            None,
        );
        protocol.error(e.http_status(), e.aws_type(), &e.to_string())
    })
}
