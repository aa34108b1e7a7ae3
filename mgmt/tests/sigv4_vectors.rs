//! SigV4 against outside references: the AWS SigV4 test suite (canonical request, string to
//! sign, signature; verified and reproduced), requests signed by botocore
//! (`scripts/gen_sigv4_fixtures.py`), and tampered variants that must each fail the right way.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sigv4::{
    canonical_request, sign, string_to_sign, verify, AuthError, Credentials, KeyStore,
    VerifyRequest,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SUITE_TIME: u64 = 1_440_938_160; // 20150830T123600Z

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A request as the HTTP server hands it over: names lowercased, values trimmed.
struct Wire {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn view(&self) -> VerifyRequest<'_> {
        VerifyRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| n != name);
    }
}

fn lowered(name: &str, value: &str) -> (String, String) {
    (name.to_ascii_lowercase(), value.trim().to_owned())
}

struct SuiteVector {
    name: String,
    wire: Wire,
    creq: String,
    sts: String,
    authz: String,
}

fn suite_vectors() -> Vec<SuiteVector> {
    let mut dirs = vec![fixtures().join("aws-sig-v4-test-suite")];
    let mut vectors = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "req") {
                let read = |ext: &str| fs::read_to_string(path.with_extension(ext)).unwrap();
                let req = read("req");
                let (head, body) = req.split_once("\n\n").unwrap_or((&req, ""));
                let mut lines = head.split('\n');
                let request_line = lines.next().unwrap();
                let (method, rest) = request_line.split_once(' ').unwrap();
                let target = rest.rsplit_once(' ').unwrap().0;
                let (path_part, query) = target.split_once('?').unwrap_or((target, ""));
                let headers = lines
                    .map(|l| {
                        let (n, v) = l.split_once(':').unwrap();
                        lowered(n, v)
                    })
                    .collect();
                vectors.push(SuiteVector {
                    name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                    wire: Wire {
                        method: method.into(),
                        path: path_part.into(),
                        query: query.into(),
                        headers,
                        body: body.as_bytes().to_vec(),
                    },
                    creq: read("creq"),
                    sts: read("sts"),
                    authz: read("authz"),
                });
            }
        }
    }
    assert!(
        vectors.len() >= 25,
        "only {} suite vectors found",
        vectors.len()
    );
    vectors
}

fn suite_keys() -> KeyStore {
    KeyStore::new(vec![suite_creds()])
}

fn suite_creds() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    }
}

fn signed_headers_of(authz: &str) -> &str {
    authz
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
}

#[test]
fn suite_canonical_requests_and_strings_to_sign_match() {
    for v in suite_vectors() {
        let creq = canonical_request(
            &v.wire.view(),
            signed_headers_of(&v.authz),
            &hex_sha256(&v.wire.body),
        );
        assert_eq!(creq, v.creq, "canonical request of {}", v.name);
        let scope = "20150830/us-east-1/service/aws4_request";
        assert_eq!(
            string_to_sign("20150830T123600Z", scope, &creq),
            v.sts,
            "string to sign of {}",
            v.name
        );
    }
}

#[test]
fn suite_signatures_verify() {
    for v in suite_vectors() {
        let mut wire = v.wire;
        wire.headers.push(("authorization".into(), v.authz.clone()));
        let result = verify(
            &wire.view(),
            &suite_keys(),
            "us-east-1",
            "service",
            at(SUITE_TIME),
        );
        if wire.header("x-amz-security-token").is_some() {
            // Correctly signed, but we issue no session tokens.
            assert_eq!(
                result,
                Err(AuthError::SessionTokenUnsupported),
                "{}",
                v.name
            );
        } else {
            assert_eq!(result, Ok("AKIDEXAMPLE".into()), "{}", v.name);
        }
    }
}

#[test]
fn sign_reproduces_suite_authorizations() {
    for v in suite_vectors() {
        let mut headers: Vec<(String, String)> = v
            .wire
            .headers
            .iter()
            .filter(|(n, _)| n != "x-amz-date")
            .cloned()
            .collect();
        sign(
            &v.wire.method,
            "example.amazonaws.com",
            &v.wire.path,
            &v.wire.query,
            &mut headers,
            &v.wire.body,
            &suite_creds(),
            "us-east-1",
            "service",
            at(SUITE_TIME),
        );
        let authz = headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(authz, Some(v.authz.as_str()), "{}", v.name);
    }
}

struct Botocore {
    keys: KeyStore,
    creds: Credentials,
    signed_at: u64,
    requests: Vec<(String, String, String, Wire)>, // name, region, service, request
}

fn botocore() -> Botocore {
    let text = fs::read_to_string(fixtures().join("botocore_sigv4.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    let creds = Credentials {
        access_key_id: s(&doc["access_key_id"]),
        secret_access_key: s(&doc["secret_access_key"]),
    };
    let requests: Vec<_> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let headers = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| lowered(h[0].as_str().unwrap(), h[1].as_str().unwrap()))
                .collect();
            let wire = Wire {
                method: s(&r["method"]),
                path: s(&r["path"]),
                query: s(&r["query"]),
                headers,
                body: s(&r["body"]).into_bytes(),
            };
            (s(&r["name"]), s(&r["region"]), s(&r["service"]), wire)
        })
        .collect();
    assert!(requests.len() >= 6);
    Botocore {
        keys: KeyStore::new(vec![creds.clone()]),
        creds,
        signed_at: doc["signed_at_unix"].as_u64().unwrap(),
        requests,
    }
}

#[test]
fn botocore_signed_requests_verify() {
    let b = botocore();
    for (name, region, service, wire) in &b.requests {
        // A minute of clock difference either way is fine.
        for now in [b.signed_at - 60, b.signed_at + 60] {
            assert_eq!(
                verify(&wire.view(), &b.keys, region, service, at(now)),
                Ok(b.creds.access_key_id.clone()),
                "{name}"
            );
        }
    }
}

#[test]
fn sign_reproduces_botocore() {
    let b = botocore();
    for (name, region, service, wire) in &b.requests {
        let mut headers: Vec<(String, String)> = wire
            .headers
            .iter()
            .filter(|(n, _)| n != "authorization" && n != "x-amz-date")
            .cloned()
            .collect();
        let host = wire.header("host").unwrap().to_owned();
        sign(
            &wire.method,
            &host,
            &wire.path,
            &wire.query,
            &mut headers,
            &wire.body,
            &b.creds,
            region,
            service,
            at(b.signed_at),
        );
        let ours = headers.iter().find(|(n, _)| n == "authorization").unwrap();
        assert_eq!(
            Some(ours.1.as_str()),
            wire.header("authorization"),
            "{name}"
        );
    }
}

fn flush_request(b: &Botocore) -> Wire {
    let (_, _, _, wire) = b
        .requests
        .iter()
        .find(|(n, ..)| n == "start-flow-flush")
        .unwrap();
    Wire {
        method: wire.method.clone(),
        path: wire.path.clone(),
        query: wire.query.clone(),
        headers: wire.headers.clone(),
        body: wire.body.clone(),
    }
}

fn check(b: &Botocore, wire: &Wire) -> Result<String, AuthError> {
    verify(
        &wire.view(),
        &b.keys,
        "us-east-1",
        "network-firewall",
        at(b.signed_at),
    )
}

#[test]
fn tampered_requests_fail_with_the_right_error() {
    let b = botocore();
    assert!(check(&b, &flush_request(&b)).is_ok());

    let mut w = flush_request(&b);
    w.body = w.body.replace_range_str("10.0.1.0/24", "0.0.0.0/0");
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignatureMismatch),
        "body changed"
    );

    let mut w = flush_request(&b);
    w.set_header("x-amz-target", "NetworkFirewall_20201112.StartFlowCapture");
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignatureMismatch),
        "signed header changed"
    );

    let mut w = flush_request(&b);
    w.path = "/v1/other".into();
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignatureMismatch),
        "path changed"
    );

    let mut w = flush_request(&b);
    w.query = "x=1".into();
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignatureMismatch),
        "query added"
    );

    let mut w = flush_request(&b);
    w.set_header("user-agent", "something-else/1.0");
    assert!(check(&b, &w).is_ok(), "an unsigned header may change");

    let w = flush_request(&b);
    let mut other_key = b.creds.clone();
    other_key.access_key_id = "AKIAOTHERKEY".into();
    let keys = KeyStore::new(vec![other_key]);
    assert_eq!(
        verify(
            &w.view(),
            &keys,
            "us-east-1",
            "network-firewall",
            at(b.signed_at)
        ),
        Err(AuthError::UnrecognizedClient),
        "unknown key id"
    );

    let mut wrong_secret = b.creds.clone();
    wrong_secret.secret_access_key.push('x');
    let keys = KeyStore::new(vec![wrong_secret]);
    assert_eq!(
        verify(
            &w.view(),
            &keys,
            "us-east-1",
            "network-firewall",
            at(b.signed_at)
        ),
        Err(AuthError::SignatureMismatch),
        "wrong secret"
    );

    let mut w = flush_request(&b);
    let authz = w.header("authorization").unwrap().to_owned();
    w.set_header("authorization", &authz[..authz.len() - 2]);
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignatureMismatch),
        "signature truncated"
    );

    let mut w = flush_request(&b);
    let flipped = match authz.pop_last_char() {
        (rest, '0') => format!("{rest}1"),
        (rest, _) => format!("{rest}0"),
    };
    w.set_header("authorization", &flipped);
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignatureMismatch),
        "signature altered"
    );

    let w = flush_request(&b);
    for (now, what) in [
        (b.signed_at + 16 * 60, "expired"),
        (b.signed_at - 16 * 60, "not yet current"),
    ] {
        let err = verify(&w.view(), &b.keys, "us-east-1", "network-firewall", at(now)).unwrap_err();
        assert!(
            matches!(err, AuthError::SignatureExpired(_)),
            "{what}: {err:?}"
        );
        assert_eq!(
            (err.aws_type(), err.http_status()),
            ("InvalidSignatureException", 403)
        );
    }
    let err = verify(
        &w.view(),
        &b.keys,
        "us-east-1",
        "network-firewall",
        at(b.signed_at + 16 * 60),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Signature expired: 20240301T093015Z is now earlier than 20240301T093115Z (20240301T094615Z - 15 min.)"
    );
    // The boundary itself is still accepted.
    assert!(verify(
        &w.view(),
        &b.keys,
        "us-east-1",
        "network-firewall",
        at(b.signed_at + 15 * 60)
    )
    .is_ok());

    let err = verify(
        &w.view(),
        &b.keys,
        "eu-west-1",
        "network-firewall",
        at(b.signed_at),
    )
    .unwrap_err();
    assert!(
        matches!(err, AuthError::WrongScope(ref m) if m.contains("'us-east-1'")),
        "{err:?}"
    );
    assert_eq!(
        (err.aws_type(), err.http_status()),
        ("InvalidSignatureException", 403)
    );
    let err = verify(&w.view(), &b.keys, "us-east-1", "flowgate", at(b.signed_at)).unwrap_err();
    assert!(
        matches!(err, AuthError::WrongScope(ref m) if m.contains("'flowgate'")),
        "{err:?}"
    );

    let mut w = flush_request(&b);
    w.remove_header("authorization");
    let err = check(&b, &w).unwrap_err();
    assert_eq!(err, AuthError::MissingAuthentication, "unsigned");
    assert_eq!(
        (err.aws_type(), err.http_status(), err.to_string().as_str()),
        (
            "MissingAuthenticationTokenException",
            403,
            "Missing Authentication Token"
        )
    );

    let mut w = flush_request(&b);
    w.set_header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAFLOWGATEEXAMPLE1/20240301/us-east-1/network-firewall/aws4_request");
    let err = check(&b, &w).unwrap_err();
    assert!(
        matches!(err, AuthError::MalformedAuthorization(_)),
        "{err:?}"
    );
    assert_eq!(
        (err.aws_type(), err.http_status()),
        ("IncompleteSignatureException", 400)
    );

    let mut w = flush_request(&b);
    w.remove_header("x-amz-date");
    assert_eq!(check(&b, &w), Err(AuthError::MissingDate));

    let mut w = flush_request(&b);
    w.set_header("x-amz-date", "2024-03-01T09:30:15Z");
    assert!(matches!(check(&b, &w), Err(AuthError::MalformedDate(_))));

    let mut w = flush_request(&b);
    w.set_header("x-amz-date", "20240302T093015Z");
    assert!(
        matches!(check(&b, &w), Err(AuthError::WrongScope(ref m)) if m.contains("Date in Credential scope"))
    );

    let mut w = flush_request(&b);
    w.set_header(
        "authorization",
        &authz.replace("content-type;host;", "content-type;"),
    );
    let err = check(&b, &w).unwrap_err();
    assert_eq!(err, AuthError::HeaderNotSigned("Host"));
    assert_eq!(err.http_status(), 400);

    let mut w = flush_request(&b);
    w.set_header("authorization", &authz.replace(";x-amz-target,", ","));
    assert_eq!(
        check(&b, &w),
        Err(AuthError::HeaderNotSigned("X-Amz-Target"))
    );

    let mut w = flush_request(&b);
    w.remove_header("content-type");
    assert_eq!(
        check(&b, &w),
        Err(AuthError::SignedHeaderAbsent("content-type".into()))
    );

    let mut w = flush_request(&b);
    w.set_header("x-amz-security-token", "FQoGZXIvYXdzEXAMPLE");
    let err = check(&b, &w).unwrap_err();
    assert_eq!(err, AuthError::SessionTokenUnsupported);
    assert_eq!(err.aws_type(), "UnrecognizedClientException");
}

#[test]
fn content_sha256_header_must_match_the_body() {
    let b = botocore();
    let (_, region, service, wire) = b
        .requests
        .iter()
        .find(|(n, ..)| n == "content-sha256-header")
        .unwrap();
    assert!(verify(&wire.view(), &b.keys, region, service, at(b.signed_at)).is_ok());
    let tampered = Wire {
        method: wire.method.clone(),
        path: wire.path.clone(),
        query: wire.query.clone(),
        headers: wire.headers.clone(),
        body: b"{\"MaxResults\": 6}".to_vec(),
    };
    assert_eq!(
        verify(&tampered.view(), &b.keys, region, service, at(b.signed_at)),
        Err(AuthError::PayloadHashMismatch)
    );
}

trait TestStrExt {
    fn replace_range_str(&self, from: &str, to: &str) -> Vec<u8>;
}

impl TestStrExt for Vec<u8> {
    fn replace_range_str(&self, from: &str, to: &str) -> Vec<u8> {
        let text = String::from_utf8(self.clone()).unwrap();
        assert!(text.contains(from));
        text.replace(from, to).into_bytes()
    }
}

trait PopLast {
    fn pop_last_char(&self) -> (&str, char);
}

impl PopLast for String {
    fn pop_last_char(&self) -> (&str, char) {
        let c = self.chars().last().unwrap();
        (&self[..self.len() - c.len_utf8()], c)
    }
}
