//! Calls to one zone's appliance: AWS JSON 1.0 over HTTPS (its CA from the inventory),
//! signed with SigV4 using that zone's credentials. Distinguishes the appliance's own
//! refusals (passed through to the caller unchanged) from the zone being unreachable
//! (its operations then fail with a clear error while the other zones keep working).

use std::time::{Instant, SystemTime};

use serde_json::Value;
use sigv4::Credentials;

use crate::inventory::{Fleet, Zone};
use crate::metrics::Metrics;

pub const TARGET_PREFIX: &str = "NetworkFirewall_20201112.";
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// SigV4 service name of the AWS API (the appliance verifies for it too).
pub const SERVICE: &str = "network-firewall";
/// Largest appliance answer the fleet reads (a results page of 100 flows is ~30 KiB).
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Why a call to a zone did not return a result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The appliance answered with an error in the service's shape: passed on as it is.
    #[error("{kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    /// No answer: connection refused, TLS failure, timeout, or a body that is not the API's.
    #[error("zone {zone}: appliance unreachable: {reason}")]
    Unreachable { zone: String, reason: String },
}

/// One AWS JSON 1.0 call, signed with SigV4: the body and the headers to send with it (the
/// fleet's async calls to zones and `flowgatectl --zone`'s blocking calls build it alike).
pub struct SignedCall {
    pub payload: Vec<u8>,
    /// Without `host`: the HTTP client sends the URL's, the same value the signature covers.
    pub headers: Vec<(String, String)>,
}

impl SignedCall {
    /// `action` with `body` to `url`, whose `host[:port]` is `host`.
    pub fn new(
        url: &reqwest::Url,
        host: &str,
        action: &str,
        body: &Value,
        creds: &Credentials,
        region: &str,
    ) -> SignedCall {
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let mut headers = vec![
            ("content-type".to_string(), JSON_CONTENT_TYPE.to_string()),
            (
                "x-amz-target".to_string(),
                format!("{TARGET_PREFIX}{action}"),
            ),
        ];
        let path = match url.path() {
            "" => "/",
            p => p,
        };
        sigv4::sign(
            "POST",
            host,
            path,
            "",
            &mut headers,
            &payload,
            creds,
            region,
            SERVICE,
            SystemTime::now(),
        );
        headers.retain(|(name, _)| name != "host");
        SignedCall { payload, headers }
    }
}

/// The error type (without its namespace) and message of an AWS JSON error body.
pub fn api_error(value: &Value) -> (String, String) {
    let kind = value
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "InternalServerError".into());
    let message = value
        .get("message")
        .or_else(|| value.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (kind, message)
}

/// One appliance's API, ready to call.
pub struct ZoneClient {
    pub name: String,
    pub id: String,
    pub firewall_arn: String,
    pub subnet_id: String,
    pub endpoint_id: String,
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
    creds: Credentials,
    region: String,
}

impl ZoneClient {
    pub fn new(zone: &Zone, fleet: &Fleet) -> Result<ZoneClient, String> {
        let url = reqwest::Url::parse(&zone.api).map_err(|e| format!("{}: {e}", zone.api))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(format!("{}: no host", zone.api)),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(fleet.upstream_timeout())
            .connect_timeout(
                fleet
                    .upstream_timeout()
                    .min(std::time::Duration::from_secs(3)),
            )
            .use_rustls_tls()
            .https_only(url.scheme() == "https");
        if let Some(ca) = &zone.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| format!("zone {}: HTTP client: {e}", zone.name))?;
        Ok(ZoneClient {
            name: zone.name.clone(),
            id: zone.id.clone(),
            firewall_arn: zone.firewall_arn(fleet).to_string(),
            subnet_id: zone.subnet_id(),
            endpoint_id: zone.endpoint_id(),
            http,
            url,
            host,
            creds: Credentials {
                access_key_id: zone.access_key_id.clone(),
                secret_access_key: zone.secret_access_key.clone(),
            },
            region: zone.region(fleet).to_string(),
        })
    }

    /// Calls `action` with `body` (AWS JSON 1.0) and returns the appliance's answer.
    pub async fn call(
        &self,
        action: &str,
        body: &Value,
        metrics: &Metrics,
    ) -> Result<Value, UpstreamError> {
        let started = Instant::now();
        let out = self.call_inner(action, body).await;
        metrics.observe_upstream(&self.name, action, started.elapsed(), &out);
        out
    }

    async fn call_inner(&self, action: &str, body: &Value) -> Result<Value, UpstreamError> {
        let signed = SignedCall::new(
            &self.url,
            &self.host,
            action,
            body,
            &self.creds,
            &self.region,
        );
        let mut req = self.http.post(self.url.clone()).body(signed.payload);
        for (name, value) in &signed.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let (status, bytes) = self.send(req).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            self.unreachable(format!(
                "HTTP {status} with a body that is not the AWS API's JSON"
            ))
        })?;
        if status == 200 {
            return Ok(value);
        }
        let (kind, message) = api_error(&value);
        Err(UpstreamError::Api {
            status,
            kind,
            message,
        })
    }

    /// A GET of the appliance's native API (`path` and `query` as the console sent them),
    /// signed with this zone's credentials; the appliance's status and body, whatever they
    /// are (its refusals are the console's to show).
    pub async fn get_native(
        &self,
        path: &str,
        query: &str,
    ) -> Result<(u16, Vec<u8>), UpstreamError> {
        let mut url = self
            .url
            .join(path)
            .map_err(|e| self.unreachable(format!("{path}: {e}")))?;
        url.set_query((!query.is_empty()).then_some(query));
        let mut headers = Vec::new();
        sigv4::sign(
            "GET",
            &self.host,
            url.path(),
            url.query().unwrap_or(""),
            &mut headers,
            b"",
            &self.creds,
            &self.region,
            SERVICE,
            SystemTime::now(),
        );
        let mut req = self.http.get(url);
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            req = req.header(name.as_str(), value.as_str());
        }
        self.send(req).await
    }

    fn unreachable(&self, reason: String) -> UpstreamError {
        UpstreamError::Unreachable {
            zone: self.name.clone(),
            reason,
        }
    }

    /// Sends `req`; the answer's status and body (at most [`MAX_ANSWER_BYTES`]).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), UpstreamError> {
        let resp = req
            .send()
            .await
            .map_err(|e| self.unreachable(ctl::error_chain(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            self.unreachable(format!("reading the answer: {}", ctl::error_chain(&e)))
        })?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(self.unreachable(format!(
                "answer of {} bytes is larger than {MAX_ANSWER_BYTES}",
                bytes.len()
            )));
        }
        Ok((status, bytes.to_vec()))
    }

    /// Whether the appliance answers HTTP at all (its unauthenticated `/healthz`).
    pub async fn probe(&self) -> Result<(), String> {
        let url = self
            .url
            .join("/healthz")
            .map_err(|e| format!("health URL: {e}"))?;
        self.http
            .get(url)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ctl::error_chain(&e))
    }
}
