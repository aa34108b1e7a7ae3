//! AWS Signature Version 4 (`AWS4-HMAC-SHA256` in the `Authorization` header): verifying
//! requests signed by the AWS CLI and SDKs against the configured access keys, and signing
//! requests for `flowgatectl`.
//!
//! The canonical request follows AWS's rules for services other than S3: the path is
//! normalised (dot segments removed, empty segments collapsed) and URI-encoded once more
//! as received (so `%20` on the wire is signed as `%2520`, as botocore does); the query is
//! decoded, re-encoded and sorted; header values are trimmed with inner runs of spaces
//! collapsed and repeated headers joined with `,`.
//!
//! Beyond AWS's own checks, verification insists that the headers that select or date the
//! call (`host`, the date header, `x-amz-target` when present) are signed, so a captured
//! request cannot be replayed as another action or with a fresher date. Not supported, and
//! refused: presigned URLs (query-string auth), session tokens (`X-Amz-Security-Token`: we
//! issue none), `UNSIGNED-PAYLOAD` and streaming payloads.

mod dates;

pub use dates::{amz_timestamp, parse_amz_timestamp, utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

type HmacSha256 = Hmac<Sha256>;

/// The only signing algorithm supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's date may be from the verifier's clock, either way (AWS: 15 minutes).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// Headers a signer leaves out: hop-by-hop, or rewritten by proxies and clients.
const UNSIGNED_HEADERS: [&str; 6] = [
    "authorization",
    "connection",
    "content-length",
    "expect",
    "transfer-encoding",
    "user-agent",
];

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The access keys allowed to call the API: access key id → secret.
#[derive(Clone, Default)]
pub struct KeyStore {
    secrets: HashMap<String, String>,
}

impl KeyStore {
    /// Later entries with the same id replace earlier ones.
    pub fn new(credentials: Vec<Credentials>) -> KeyStore {
        KeyStore {
            secrets: credentials
                .into_iter()
                .map(|c| (c.access_key_id, c.secret_access_key))
                .collect(),
        }
    }

    /// The secret of access key `id`.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.secrets.get(id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("KeyStore")
            .field("access_key_ids", &ids)
            .finish()
    }
}

/// The parts of a received request that a signature covers.
#[derive(Clone, Copy, Debug)]
pub struct VerifyRequest<'a> {
    pub method: &'a str,
    /// Path as received, still percent-encoded, without the query.
    pub path: &'a str,
    /// Query as received, without `?`.
    pub query: &'a str,
    /// All request headers; names compare case-insensitively.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Why a request's signature was refused. `Display` is the message AWS would send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    MissingAuthentication,
    /// The `Authorization` header is not a well-formed SigV4 header.
    #[error("{0}")]
    MalformedAuthorization(String),
    #[error(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )]
    MissingDate,
    #[error("Date must be in ISO-8601 'basic format'. Got '{0}'. See http://en.wikipedia.org/wiki/ISO_8601")]
    MalformedDate(String),
    /// A header that must be signed is not in `SignedHeaders`.
    #[error("'{0}' must be a 'SignedHeader' in the AWS Authorization.")]
    HeaderNotSigned(&'static str),
    /// `SignedHeaders` names a header the request does not carry.
    #[error("Header '{0}' is listed in SignedHeaders but is not present in the request.")]
    SignedHeaderAbsent(String),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// An `X-Amz-Security-Token` was sent; no temporary credentials are issued here.
    #[error("The security token included in the request is invalid.")]
    SessionTokenUnsupported,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    SignatureMismatch,
    /// The request's date is more than [`MAX_CLOCK_SKEW`] away from now.
    #[error("{0}")]
    SignatureExpired(String),
    /// The credential scope names another region, service, date or terminator.
    #[error("{0}")]
    WrongScope(String),
    /// `x-amz-content-sha256` does not match the body (or is `UNSIGNED-PAYLOAD`).
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    PayloadHashMismatch,
}

impl AuthError {
    /// The AWS error code, for the `__type` of an AWS JSON error.
    pub fn aws_type(&self) -> &'static str {
        match self {
            AuthError::MissingAuthentication => "MissingAuthenticationTokenException",
            AuthError::MalformedAuthorization(_)
            | AuthError::MissingDate
            | AuthError::MalformedDate(_)
            | AuthError::HeaderNotSigned(_)
            | AuthError::SignedHeaderAbsent(_) => "IncompleteSignatureException",
            AuthError::UnrecognizedClient | AuthError::SessionTokenUnsupported => {
                "UnrecognizedClientException"
            }
            AuthError::SignatureMismatch
            | AuthError::SignatureExpired(_)
            | AuthError::WrongScope(_)
            | AuthError::PayloadHashMismatch => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn http_status(&self) -> u16 {
        match self.aws_type() {
            "IncompleteSignatureException" => 400,
            _ => 403,
        }
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let malformed = |what: String| AuthError::MalformedAuthorization(what);
    let (algorithm, params) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(malformed(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is supported."
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = param.split_once('=').ok_or_else(|| {
            malformed(format!(
                "'{param}' not a valid key=value pair (missing equal-sign) in Authorization header: '{value}'."
            ))
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val).is_some() {
            return Err(malformed(format!(
                "Authorization header has a duplicate '{key}' parameter."
            )));
        }
    }
    let mut missing = String::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if slot.is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed(format!("{missing}Authorization={value}")));
    };
    if !missing.is_empty() {
        return Err(malformed(format!("{missing}Authorization={value}")));
    }
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(malformed(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if signed_headers.split(';').any(str::is_empty) {
        return Err(malformed(format!(
            "SignedHeaders '{signed_headers}' has an empty header name."
        )));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        terminator,
        signed_headers,
        signature,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Verifies `req`'s signature for `region`/`service` at time `now` and returns the access
/// key id that signed it. The signature comparison is constant-time.
pub fn verify(
    req: &VerifyRequest<'_>,
    keys: &KeyStore,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<String, AuthError> {
    let value = header(req.headers, "authorization").ok_or(AuthError::MissingAuthentication)?;
    let auth = parse_authorization(value)?;

    if auth.terminator != "aws4_request" {
        return Err(AuthError::WrongScope(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            auth.terminator
        )));
    }
    if auth.service != service {
        return Err(AuthError::WrongScope(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if auth.region != region {
        return Err(AuthError::WrongScope(format!(
            "Credential should be scoped to a valid region, not '{}'. Expected '{region}'.",
            auth.region
        )));
    }

    let (date_header, signed_at) = request_time(req.headers)?;
    let timestamp = amz_timestamp(signed_at);
    let day = timestamp.get(..8).unwrap_or_default();
    if auth.date != day {
        return Err(AuthError::WrongScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{day}', from '{timestamp}'.",
            auth.date
        )));
    }
    check_skew(signed_at, &timestamp, now)?;

    let signed = |name: &str| {
        auth.signed_headers
            .split(';')
            .any(|h| h.eq_ignore_ascii_case(name))
    };
    if !signed("host") {
        return Err(AuthError::HeaderNotSigned("Host"));
    }
    if !signed(date_header) {
        return Err(AuthError::HeaderNotSigned(if date_header == "date" {
            "Date"
        } else {
            "X-Amz-Date"
        }));
    }
    if header(req.headers, "x-amz-target").is_some() && !signed("x-amz-target") {
        return Err(AuthError::HeaderNotSigned("X-Amz-Target"));
    }
    if let Some(absent) = auth
        .signed_headers
        .split(';')
        .find(|name| header(req.headers, name).is_none())
    {
        return Err(AuthError::SignedHeaderAbsent(absent.to_owned()));
    }
    if header(req.headers, "x-amz-security-token").is_some() {
        return Err(AuthError::SessionTokenUnsupported);
    }

    let payload_hash = hex(&Sha256::digest(req.body));
    if let Some(claimed) = header(req.headers, "x-amz-content-sha256") {
        if !claimed.eq_ignore_ascii_case(&payload_hash) {
            return Err(AuthError::PayloadHashMismatch);
        }
    }

    let secret = keys
        .get(auth.access_key_id)
        .ok_or(AuthError::UnrecognizedClient)?;
    let scope = format!("{}/{region}/{service}/aws4_request", auth.date);
    let creq = canonical_request(req, auth.signed_headers, &payload_hash);
    let sts = string_to_sign(&timestamp, &scope, &creq);
    let provided = decode_signature(auth.signature).ok_or(AuthError::SignatureMismatch)?;
    let mut mac = HmacSha256::new_from_slice(&signing_key(secret, auth.date, region, service))
        .map_err(|_| AuthError::SignatureMismatch)?;
    mac.update(sts.as_bytes());
    // `verify_slice` compares in constant time (via `subtle`).
    mac.verify_slice(&provided)
        .map_err(|_| AuthError::SignatureMismatch)?;
    Ok(auth.access_key_id.to_owned())
}

/// The request's signing time: `X-Amz-Date`, or else `Date`, with the header used.
fn request_time(headers: &[(String, String)]) -> Result<(&'static str, SystemTime), AuthError> {
    if let Some(value) = header(headers, "x-amz-date") {
        let t =
            parse_amz_timestamp(value).ok_or_else(|| AuthError::MalformedDate(value.to_owned()))?;
        return Ok(("x-amz-date", t));
    }
    let value = header(headers, "date").ok_or(AuthError::MissingDate)?;
    let t = httpdate::parse_http_date(value)
        .ok()
        .or_else(|| parse_amz_timestamp(value))
        .ok_or_else(|| AuthError::MalformedDate(value.to_owned()))?;
    Ok(("date", t))
}

fn check_skew(signed_at: SystemTime, timestamp: &str, now: SystemTime) -> Result<(), AuthError> {
    let now_ts = amz_timestamp(now);
    if signed_at
        .checked_add(MAX_CLOCK_SKEW)
        .is_some_and(|latest| latest < now)
    {
        let earliest = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(now);
        return Err(AuthError::SignatureExpired(format!(
            "Signature expired: {timestamp} is now earlier than {} ({now_ts} - 15 min.)",
            amz_timestamp(earliest)
        )));
    }
    if now
        .checked_add(MAX_CLOCK_SKEW)
        .is_some_and(|latest| signed_at > latest)
    {
        let latest = now.checked_add(MAX_CLOCK_SKEW).unwrap_or(now);
        return Err(AuthError::SignatureExpired(format!(
            "Signature not yet current: {timestamp} is still later than {} ({now_ts} + 15 min.)",
            amz_timestamp(latest)
        )));
    }
    Ok(())
}

/// Signs a request the way botocore does for non-S3 services: sets `host` (unless present),
/// `x-amz-date` and `authorization` in `headers`. Every other header present is signed,
/// except the hop-by-hop ones an HTTP client or proxy may rewrite (`content-length`,
/// `connection`, `expect`, `transfer-encoding`, `user-agent`). The payload hash is always
/// computed from `body`; a caller-supplied `x-amz-content-sha256` is kept and signed (the
/// verifier checks it against the body). `path` and `query` are as they will be sent
/// (percent-encoded).
#[allow(clippy::too_many_arguments)] // the signature is fixed by the API contract
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) {
    let timestamp = amz_timestamp(now);
    let day = timestamp.get(..8).unwrap_or_default().to_owned();
    let payload_hash = hex(&Sha256::digest(body));
    headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("x-amz-date")
    });
    if header(headers, "host").is_none() {
        headers.push(("host".into(), host.into()));
    }
    headers.push(("x-amz-date".into(), timestamp.clone()));
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !UNSIGNED_HEADERS.contains(&n.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let req = VerifyRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    let creq = canonical_request(&req, &signed_headers, &payload_hash);
    let sts = string_to_sign(&timestamp, &scope, &creq);
    let signature = hex(&hmac(
        &signing_key(&creds.secret_access_key, &day, region, service),
        sts.as_bytes(),
    ));
    headers.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
}

/// The canonical request for `req` given the `SignedHeaders` list (`;`-separated, in the
/// order given) and the hex SHA-256 of the payload.
pub fn canonical_request(
    req: &VerifyRequest<'_>,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed_headers.split(';') {
        out.push_str(&name.to_ascii_lowercase());
        out.push(':');
        let mut first = true;
        for (_, value) in req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            if !first {
                out.push(',');
            }
            first = false;
            push_trimmed_collapsed(&mut out, value);
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// Trims a header value and collapses each inner run of spaces/tabs into one space.
fn push_trimmed_collapsed(out: &mut String, value: &str) {
    let mut words = value.split([' ', '\t']).filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.push_str(first);
        for word in words {
            out.push(' ');
            out.push_str(word);
        }
    }
}

/// The canonical URI of a path as received: normalised, then each byte outside the
/// unreserved set (and `/`) percent-encoded, which double-encodes escapes already present.
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    normalized.push('/');
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    let mut out = String::with_capacity(normalized.len());
    for &b in normalized.as_bytes() {
        if b == b'/' {
            out.push('/');
        } else {
            push_uri_encoded(&mut out, b);
        }
    }
    out
}

/// The canonical query string: each `key=value` pair decoded, re-encoded with SigV4's
/// rules (space as `%20`, a literal `+` as `%2B`), and sorted by key then value. Empty pairs
/// (`a=1&&b=2`) are dropped.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(key)),
                uri_encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// `%XX` → byte and `+` → space (form encoding, which botocore's HTTP layer uses for query
/// parameters it signed as `%20`); a `%` not followed by two hex digits stays literal.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_value(*hi).zip(hex_value(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        push_uri_encoded(&mut out, b);
    }
    out
}

/// RFC 3986 unreserved characters stay; everything else becomes `%XX` (uppercase).
fn push_uri_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
        out.push(char::from(b));
    } else {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// `AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(timestamp: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// A 64-hex-digit signature → 32 bytes; `None` for any other shape.
fn decode_signature(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    const SUITE_TIME: u64 = 1_440_938_160; // 20150830T123600Z

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    #[test]
    fn signing_key_matches_the_aws_documentation_example() {
        // AWS General Reference, "Examples of how to derive a signing key": secret
        // wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam.
        assert_eq!(
            hex(&signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20120215",
                "us-east-1",
                "iam"
            )),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn canonical_uri_normalises_and_double_encodes() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("//example//"), "/example/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("/../.."), "/");
        assert_eq!(canonical_uri("/example space/"), "/example%20space/");
        assert_eq!(canonical_uri("/example%20space/"), "/example%2520space/");
        assert_eq!(canonical_uri("/\u{1234}"), "/%E1%88%B4");
    }

    #[test]
    fn canonical_query_decodes_encodes_and_sorts() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(
            canonical_query("k&x=a%20b&y=a+b&z=a%2Bb"),
            "k=&x=a%20b&y=a%20b&z=a%2Bb"
        );
        assert_eq!(canonical_query("%7e=%zz"), "~=%25zz");
        assert_eq!(canonical_query("a=1&&b"), "a=1&b=");
    }

    #[test]
    fn header_values_are_trimmed_collapsed_and_joined() {
        let headers = vec![
            ("Host".to_string(), "h".to_string()),
            ("my-header".to_string(), "  a   b\t c ".to_string()),
            ("MY-HEADER".to_string(), "d".to_string()),
        ];
        let req = VerifyRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            canonical_request(&req, "host;my-header", "e3"),
            "GET\n/\n\nhost:h\nmy-header:a b c,d\n\nhost;my-header\ne3"
        );
    }

    #[test]
    fn authorization_parsing_reports_what_is_missing() {
        let err = parse_authorization("AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request")
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("requires 'Signature'") && msg.contains("requires 'SignedHeaders'"),
            "{msg}"
        );
        assert!(!msg.contains("requires 'Credential'"), "{msg}");
        assert!(matches!(
            parse_authorization("Basic dXNlcjpwdw=="),
            Err(AuthError::MalformedAuthorization(_))
        ));
        assert!(parse_authorization(
            "AWS4-HMAC-SHA256 Credential=A/r/s/aws4_request, SignedHeaders=host, Signature=00"
        )
        .is_err());
        let ok = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/svc/aws4_request,SignedHeaders=host;x-amz-date,  Signature=ab",
        )
        .unwrap();
        assert_eq!(
            (ok.access_key_id, ok.date, ok.region, ok.service),
            ("AKID", "20150830", "us-east-1", "svc")
        );
        assert_eq!((ok.signed_headers, ok.signature), ("host;x-amz-date", "ab"));
    }

    #[test]
    fn error_types_and_statuses_follow_aws() {
        assert_eq!(
            AuthError::MissingAuthentication.aws_type(),
            "MissingAuthenticationTokenException"
        );
        assert_eq!(AuthError::MissingAuthentication.http_status(), 403);
        assert_eq!(
            AuthError::MissingDate.aws_type(),
            "IncompleteSignatureException"
        );
        assert_eq!(AuthError::MissingDate.http_status(), 400);
        assert_eq!(AuthError::HeaderNotSigned("Host").http_status(), 400);
        assert_eq!(
            AuthError::UnrecognizedClient.aws_type(),
            "UnrecognizedClientException"
        );
        assert_eq!(AuthError::UnrecognizedClient.http_status(), 403);
        assert_eq!(
            AuthError::SignatureMismatch.aws_type(),
            "InvalidSignatureException"
        );
        assert_eq!(AuthError::SignatureMismatch.http_status(), 403);
        assert_eq!(
            AuthError::UnrecognizedClient.to_string(),
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let shown = format!("{:?} {:?}", creds(), KeyStore::new(vec![creds()]));
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalr"), "{shown}");
    }

    proptest! {
        /// Whatever we sign, we verify; and flipping any body byte breaks it.
        #[test]
        fn sign_then_verify_round_trips(
            path in "(/[a-zA-Z0-9 %._~-]{0,12}){1,4}",
            query in "[a-z]{1,5}=[a-zA-Z0-9%+ ]{0,8}(&[a-z]{1,5}=[a-z0-9]{0,4}){0,3}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            value in "[ -~]{0,20}",
            offset in 0u64..3600,
        ) {
            let now = UNIX_EPOCH + Duration::from_secs(SUITE_TIME);
            let signed_at = now - Duration::from_secs(1800) + Duration::from_secs(offset);
            let mut headers = vec![
                ("X-Custom".to_string(), value.clone()),
                ("x-amz-content-sha256".to_string(), hex(&Sha256::digest(&body))),
            ];
            sign("POST", "example.com:8080", &path, &query, &mut headers, &body, &creds(), "us-east-1", "svc", signed_at);
            let keys = KeyStore::new(vec![creds()]);
            let req = VerifyRequest { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
            let within = (900..=2700).contains(&offset);
            let result = verify(&req, &keys, "us-east-1", "svc", now);
            if within {
                prop_assert_eq!(result, Ok("AKIDEXAMPLE".to_string()));
            } else {
                prop_assert!(matches!(result, Err(AuthError::SignatureExpired(_))), "{:?}", result);
            }
            if within && !body.is_empty() {
                let mut tampered = body.clone();
                tampered[0] ^= 1;
                let result = verify(&VerifyRequest { body: &tampered, ..req }, &keys, "us-east-1", "svc", now);
                prop_assert_eq!(result, Err(AuthError::PayloadHashMismatch));
                // Even with a matching content hash header, the signature catches it.
                let mut forged = headers.clone();
                for (n, v) in &mut forged {
                    if n == "x-amz-content-sha256" {
                        *v = hex(&Sha256::digest(&tampered));
                    }
                }
                let req = VerifyRequest { body: &tampered, headers: &forged, ..req };
                prop_assert_eq!(verify(&req, &keys, "us-east-1", "svc", now), Err(AuthError::SignatureMismatch));
            }
        }

        #[test]
        fn verify_never_panics_on_arbitrary_authorization(auth in "\\PC{0,200}", date in "\\PC{0,20}") {
            let headers = vec![
                ("authorization".to_string(), auth),
                ("x-amz-date".to_string(), date),
                ("host".to_string(), "h".to_string()),
            ];
            let req = VerifyRequest { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
            let _ = verify(&req, &KeyStore::new(vec![creds()]), "us-east-1", "svc", SystemTime::now());
        }
    }
}
