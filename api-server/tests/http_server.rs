//! The management HTTP transport (hyper + rustls) over real sockets on loopback: TLS round
//! trips, every limit (body, slowloris, per-address cap, eviction of unauthenticated
//! connections, their deadline), malformed requests, handler panics, the kill switch — and
//! that it keeps serving throughout.

use api_server::{runtime, tls, Handler, LimitKind, Request, Response, Server, ServerConfig};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Echoes the request as JSON; `/panic` panics; `/signed` counts as authenticated.
struct Echo;

impl Handler for Echo {
    fn handle(&self, req: &Request) -> Response {
        if req.path == "/panic" {
            panic!("handler bug (expected by the test)");
        }
        let response = Response::json(
            200,
            &json!({
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "body": String::from_utf8_lossy(&req.body),
                "x_test": req.header("X-Test"),
            }),
        );
        if req.path == "/signed" {
            response.authenticated()
        } else {
            response
        }
    }

    fn on_limit(&self, kind: LimitKind, path: &str) -> Response {
        Response::json(
            kind.status(),
            &json!({"__type": "LimitExceeded", "message": kind.message(), "path": path}),
        )
    }
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<Arc<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| runtime::pinned(2, Vec::new()).unwrap())
}

/// The test CA's PEM and a server configuration for a leaf it signed.
fn test_tls() -> &'static (String, Arc<rustls::ServerConfig>) {
    static TLS: OnceLock<(String, Arc<rustls::ServerConfig>)> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fg-http-tls-{}", std::process::id()));
        let pair = tls::generate_pair(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), &pair.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &pair.key_pem).unwrap();
        let server = tls::from_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (pair.ca_pem, server.config)
    })
}

fn start_with(config: ServerConfig, tls: bool, killed: Arc<AtomicBool>) -> Server {
    let tls = tls.then(|| Arc::clone(&test_tls().1));
    Server::bind(
        rt().handle(),
        "127.0.0.1:0",
        config,
        tls,
        Arc::new(Echo),
        killed,
    )
    .unwrap()
}

fn start(config: ServerConfig) -> Server {
    start_with(config, false, Arc::new(AtomicBool::new(false)))
}

fn https_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(test_tls().0.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn plain_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends `wire` on a fresh connection from `from` and returns everything the server sends
/// back before closing (or within 5 s).
fn raw_exchange(addr: SocketAddr, wire: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(wire).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Connects from the loopback address `127.0.0.<last>`.
fn connect_from(last: u8, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, last], 0)))?;
    let stream = rt().block_on(socket.connect(addr))?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn https_round_trip_with_keep_alive_and_request_ids() {
    let server = start_with(
        ServerConfig::default(),
        true,
        Arc::new(AtomicBool::new(false)),
    );
    let client = https_client();
    let url = format!(
        "https://localhost:{}/v1/x?a=1&b=%20",
        server.local_addr().port()
    );
    for i in 0..3 {
        let r = client
            .post(&url)
            .header("X-Test", format!("t{i}"))
            .body("hello")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 36, "{id}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(
            v,
            json!({"method": "POST", "path": "/v1/x", "query": "a=1&b=%20", "body": "hello", "x_test": format!("t{i}")})
        );
    }
    // One connection served all three.
    assert_eq!(server.connections(), 1);
}

#[test]
fn tls_listener_refuses_plain_http_and_untrusted_clients() {
    let server = start_with(
        ServerConfig::default(),
        true,
        Arc::new(AtomicBool::new(false)),
    );
    let reply = raw_exchange(server.local_addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!reply.contains("200"), "{reply}");
    let untrusting = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .build()
        .unwrap();
    let e = untrusting
        .get(format!("https://localhost:{}/", server.local_addr().port()))
        .send()
        .unwrap_err();
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
}

#[test]
fn oversized_bodies_get_the_handlers_413_declared_or_chunked() {
    let server = start(ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    });
    let url = format!("http://{}/service/x", server.local_addr());
    let r = plain_client()
        .post(&url)
        .body(vec![b'a'; 4096])
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["__type"], "LimitExceeded");
    assert_eq!(
        v["path"], "/service/x",
        "refusal rendered for the request's path"
    );
    let chunked = raw_exchange(
        server.local_addr(),
        format!(
            "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
            "a".repeat(0x800)
        )
        .as_bytes(),
    );
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    let r = plain_client()
        .post(&url)
        .body(vec![b'a'; 1024])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn malformed_requests_are_refused_and_the_server_keeps_serving() {
    let server = start(ServerConfig::default());
    for wire in [
        &b"HELLO\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ] {
        let reply = raw_exchange(server.local_addr(), wire);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
            "{:?} -> {reply:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // Both framings: chunked wins (RFC 9112 §6.3) and the connection is not reused, so
    // nothing can be smuggled after it.
    let reply = raw_exchange(
        server.local_addr(),
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    );
    assert!(reply.contains("connection: close"), "{reply}");
    assert!(!reply.contains("smuggled"), "{reply}");
    let big_head = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000));
    let reply = raw_exchange(server.local_addr(), big_head.as_bytes());
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
    let url = format!("http://{}/", server.local_addr());
    assert_eq!(plain_client().get(url).send().unwrap().status(), 200);
}

#[test]
fn handler_panic_becomes_500_and_the_server_survives() {
    let server = start(ServerConfig::default());
    let client = plain_client();
    let base = format!("http://{}", server.local_addr());
    let r = client.get(format!("{base}/panic")).send().unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(client.get(format!("{base}/")).send().unwrap().status(), 200);
}

#[test]
fn slowloris_is_cut_at_header_timeout_while_others_are_served() {
    let header_timeout = Duration::from_millis(1500);
    let server = start(ServerConfig {
        header_timeout,
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    let started = Instant::now();
    let slow = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        // One byte every 100 ms of a request head that would never end in time.
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: "
            .iter()
            .chain([b'a'; 200].iter())
        {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    });
    let client = plain_client();
    for _ in 0..5 {
        let r = client.get(format!("http://{addr}/")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    let elapsed = slow.join().unwrap();
    assert!(elapsed >= header_timeout, "cut too early: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "never cut: {elapsed:?}");
}

#[test]
fn per_address_cap_refuses_that_address_only_in_the_requests_protocol() {
    let server = start(ServerConfig {
        max_connections_per_ip: 3,
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    let _held: Vec<TcpStream> = (0..3).map(|_| connect_from(7, addr).unwrap()).collect();
    wait_until("three connections", 5, || server.connections() == 3);
    let mut over = connect_from(7, addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    over.write_all(b"POST /service/NetworkFirewall/operation/X HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = over.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(
        reply.contains("\"path\":\"/service/NetworkFirewall/operation/X\""),
        "{reply}"
    );
    // Another address is served.
    let mut other = connect_from(8, addr).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = other.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn a_full_listener_evicts_unauthenticated_connections_never_authenticated_ones() {
    let server = start(ServerConfig {
        max_connections: 8,
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    // An authenticated keep-alive connection first (the oldest of all).
    let mut signed = TcpStream::connect(addr).unwrap();
    signed
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = b"GET /signed HTTP/1.1\r\nHost: x\r\n\r\n";
    signed.write_all(request).unwrap();
    let mut buf = [0u8; 4096];
    let n = signed.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The supervisor notes the authentication at its next tick.
    wait_until("the signed connection to count as authenticated", 5, || {
        server.anonymous_connections() == 0
    });
    // Then far more anonymous sockets than the listener holds, from many addresses.
    let anonymous: Vec<TcpStream> = (0..40)
        .map(|i| connect_from(20 + i as u8, addr).unwrap())
        .collect();
    // A newcomer still gets in and is served.
    let r = plain_client()
        .get(format!("http://{addr}/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The authenticated connection was never evicted.
    signed.write_all(request).unwrap();
    let n = signed.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(anonymous);
}

#[test]
fn unauthenticated_connections_are_closed_at_their_deadline() {
    let server = start(ServerConfig {
        unauthenticated_timeout: Duration::from_millis(800),
        ..ServerConfig::default()
    });
    let addr = server.local_addr();
    let mut anonymous = TcpStream::connect(addr).unwrap();
    anonymous
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    anonymous
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut signed = TcpStream::connect(addr).unwrap();
    signed
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    signed
        .write_all(b"GET /signed HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(signed.read(&mut buf).unwrap() > 0);
    // The anonymous one gets its answer, then the connection is closed.
    let started = Instant::now();
    let mut all = Vec::new();
    let _ = anonymous.read_to_end(&mut all);
    assert!(all.starts_with(b"HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The authenticated one outlives the deadline.
    thread::sleep(Duration::from_millis(1200));
    signed
        .write_all(b"GET /signed HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let n = signed.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[test]
fn killed_server_answers_nothing_and_closes_its_listener() {
    let killed = Arc::new(AtomicBool::new(false));
    let server = start_with(ServerConfig::default(), false, Arc::clone(&killed));
    let addr = server.local_addr();
    let wire = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(raw_exchange(addr, wire).starts_with("HTTP/1.1 200"));
    killed.store(true, Ordering::Release);
    wait_until("the listener to close", 5, || {
        TcpStream::connect(addr).is_err()
    });
    drop(server);
}
