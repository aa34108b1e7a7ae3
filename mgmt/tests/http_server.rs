//! The management HTTP server over real sockets on 127.0.0.1: normal traffic, keep-alive
//! and pipelining, every limit (body, headers, slowloris, connection cap, idle), framing
//! refusals, `Expect: 100-continue`, handler panics, and that it keeps serving throughout.

use mgmt::http::{request, uuid_v4, Handler, LimitKind, Request, Response, Server, ServerLimits};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Echoes the request as JSON; `/panic` panics; `/slow` sleeps a little.
struct Echo;

impl Handler for Echo {
    fn handle(&self, req: &Request) -> Response {
        match req.path.as_str() {
            "/panic" => panic!("handler bug (expected by the test)"),
            "/slow" => thread::sleep(Duration::from_millis(200)),
            _ => {}
        }
        Response::json(
            200,
            &json!({
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "body": String::from_utf8_lossy(&req.body),
                "x_test": req.header("X-Test"),
                "peer_port": req.peer.port(),
                "header_count": req.headers.len(),
            }),
        )
        .with_header("Content-Type", "application/x-amz-json-1.0")
    }

    fn on_limit(&self, kind: LimitKind, _peer: SocketAddr) -> Response {
        Response::json(
            kind.status(),
            &json!({"__type": "LimitExceeded", "message": kind.message()}),
        )
    }
}

fn start(limits: ServerLimits) -> Server {
    Server::bind("127.0.0.1:0", limits, Arc::new(Echo)).unwrap()
}

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.local_addr())
}

fn get(server: &Server, path: &str) -> mgmt::http::ClientResponse {
    request("GET", &url(server, path), &[], b"", Duration::from_secs(5)).unwrap()
}

fn body_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

/// A raw client reading responses one at a time from a kept-alive connection.
struct Raw {
    reader: BufReader<TcpStream>,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    fn connect(server: &Server) -> Raw {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one response (Content-Length framed, as the server always frames).
    fn read_response(&mut self) -> Option<RawResponse> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.to_owned(), v.trim().to_owned()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = response
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        response.body = vec![0; len];
        self.reader.read_exact(&mut response.body).ok()?;
        Some(response)
    }

    /// True once the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

#[test]
fn get_and_post_round_trip_with_framing_headers() {
    let server = start(ServerLimits::default());
    let r = get(&server, "/v1/stats?a=1&b=%20");
    assert_eq!(r.status, 200);
    let body = body_json(&r.body);
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/v1/stats");
    assert_eq!(body["query"], "a=1&b=%20");
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.0"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(r.header("x-amzn-requestid").map(str::len), Some(36));

    let headers = vec![("X-Test".to_string(), "  spaced value ".to_string())];
    let r = request(
        "POST",
        &url(&server, "/"),
        &headers,
        b"{\"k\":1}",
        Duration::from_secs(5),
    )
    .unwrap();
    let body = body_json(&r.body);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body"], "{\"k\":1}");
    assert_eq!(body["x_test"], "spaced value");

    // Each response gets its own request id.
    let a = get(&server, "/")
        .header("x-amzn-requestid")
        .unwrap()
        .to_owned();
    let b = get(&server, "/")
        .header("x-amzn-requestid")
        .unwrap()
        .to_owned();
    assert_ne!(a, b);
    server.shutdown();
}

#[test]
fn keep_alive_serves_sequential_and_pipelined_requests_on_one_connection() {
    let server = start(ServerLimits::default());
    let mut raw = Raw::connect(&server);
    let mut ports = Vec::new();
    for i in 0..3 {
        raw.send(format!("GET /seq/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let r = raw.read_response().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        let body = body_json(&r.body);
        assert_eq!(body["path"], format!("/seq/{i}"));
        ports.push(body["peer_port"].as_u64().unwrap());
    }
    // Two requests in one write, the second with a body: both answered, in order.
    raw.send(b"POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let first = raw.read_response().unwrap();
    assert_eq!(body_json(&first.body)["body"], "abc");
    let second = raw.read_response().unwrap();
    assert_eq!(body_json(&second.body)["path"], "/p2");
    assert_eq!(second.header("connection"), Some("close"));
    assert!(raw.closed());
    ports.dedup();
    assert_eq!(ports.len(), 1, "all on one connection");
    server.shutdown();
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    let server = start(ServerLimits {
        max_requests_per_conn: 2,
        ..ServerLimits::default()
    });
    let mut raw = Raw::connect(&server);
    raw.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        raw.read_response().unwrap().header("connection"),
        Some("keep-alive")
    );
    raw.send(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        raw.read_response().unwrap().header("connection"),
        Some("close")
    );
    assert!(raw.closed());
}

#[test]
fn oversized_body_gets_the_handlers_413_and_the_server_keeps_serving() {
    let server = start(ServerLimits {
        max_body_bytes: 1024,
        ..ServerLimits::default()
    });
    let big = vec![b'x'; 4096];
    let r = request(
        "POST",
        &url(&server, "/"),
        &[],
        &big,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(body_json(&r.body)["__type"], "LimitExceeded");
    assert_eq!(r.header("connection"), Some("close"));

    // Even when the client is still pushing a much larger body, it gets to read the 413.
    let huge = vec![b'x'; 4 << 20];
    let r = request(
        "POST",
        &url(&server, "/"),
        &[],
        &huge,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 413);

    // A chunked body over the limit is refused the same way.
    let mut raw = Raw::connect(&server);
    raw.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n");
    raw.send(&[b'y'; 0x400]);
    raw.send(b"\r\n1\r\nz\r\n0\r\n\r\n");
    assert_eq!(raw.read_response().unwrap().status, 413);

    // A body exactly at the limit is fine, and so is everyone else.
    let r = request(
        "POST",
        &url(&server, "/"),
        &[],
        &big[..1024],
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(get(&server, "/after").status, 200);
}

#[test]
fn header_flood_gets_431() {
    let server = start(ServerLimits {
        max_header_bytes: 2048,
        ..ServerLimits::default()
    });
    let mut raw = Raw::connect(&server);
    let mut flood = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        flood.push_str(&format!("X-Flood-{i}: {}\r\n", "v".repeat(20)));
    }
    flood.push_str("\r\n");
    raw.send(flood.as_bytes());
    let r = raw.read_response().unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(body_json(&r.body)["__type"], "LimitExceeded");
    // A head just under the limit passes.
    let headers: Vec<(String, String)> = (0..20)
        .map(|i| (format!("X-H{i}"), "v".repeat(20)))
        .collect();
    let r = request(
        "GET",
        &url(&server, "/"),
        &headers,
        b"",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r.body)["header_count"], 20 + 3); // + host, content-length, connection
}

#[test]
fn slowloris_is_cut_at_header_timeout_while_others_are_served() {
    let header_timeout = Duration::from_millis(1500);
    let server = start(ServerLimits {
        header_timeout,
        ..ServerLimits::default()
    });
    let addr = server.local_addr();
    let started = Instant::now();
    let slow = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut response = Vec::new();
        // One byte every 250 ms of a request that would never end in time.
        for byte in
            b"GET /slow-loris HTTP/1.1\r\nHost: x\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                .iter()
                .cycle()
        {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
            thread::sleep(Duration::from_millis(250));
        }
        // Collect whatever is left of the 408.
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = stream.read_to_end(&mut response);
        (
            started.elapsed(),
            String::from_utf8_lossy(&response).into_owned(),
        )
    });
    // Meanwhile, other clients are served promptly.
    thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(&server, "/").status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    let (elapsed, response) = slow.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 408 "), "{response:?}");
    assert!(elapsed >= header_timeout, "cut too early: {elapsed:?}");
    assert!(
        elapsed < header_timeout + Duration::from_secs(2),
        "cut too late: {elapsed:?}"
    );
}

#[test]
fn connection_cap_answers_503_without_queueing_and_recovers() {
    let server = start(ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    });
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.active_connections() < 2 {
        assert!(
            Instant::now() < deadline,
            "idle connections never registered"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let r = request("GET", &url(&server, "/"), &[], b"", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(body_json(&r.body)["__type"], "LimitExceeded");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "503 must be immediate"
    );

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.active_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "closed connections never released"
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(get(&server, "/").status, 200);
}

#[test]
fn malformed_requests_get_400_and_framing_refusals() {
    let server = start(ServerLimits::default());
    for (wire, status) in [
        (&b"HELLO\r\n\r\n"[..], 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400), // a TLS hello
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"GET / HTTP/3.0\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ] {
        let mut raw = Raw::connect(&server);
        raw.send(wire);
        let r = raw
            .read_response()
            .unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(wire)));
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(wire));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(raw.closed());
    }
    assert_eq!(get(&server, "/").status, 200);
}

#[test]
fn chunked_request_bodies_are_decoded() {
    let server = start(ServerLimits::default());
    let mut raw = Raw::connect(&server);
    raw.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    let r = raw.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r.body)["body"], "hello world");
    // The connection stays usable after a chunked body.
    raw.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        body_json(&raw.read_response().unwrap().body)["path"],
        "/next"
    );
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = start(ServerLimits::default());
    let mut raw = Raw::connect(&server);
    raw.send(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = raw.read_response().unwrap();
    assert_eq!(interim.status, 100);
    raw.send(b"12345");
    let r = raw.read_response().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r.body)["body"], "12345");

    // Over the limit: the client is refused instead of being told to continue.
    let server = start(ServerLimits {
        max_body_bytes: 10,
        ..ServerLimits::default()
    });
    let mut raw = Raw::connect(&server);
    raw.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(raw.read_response().unwrap().status, 413);
}

#[test]
fn handler_panic_becomes_500_and_the_server_survives() {
    let server = start(ServerLimits::default());
    let r = get(&server, "/panic");
    assert_eq!(r.status, 500);
    assert_eq!(body_json(&r.body)["__type"], "LimitExceeded");
    for _ in 0..3 {
        assert_eq!(get(&server, "/ok").status, 200);
    }
    // On a kept-alive connection too.
    let mut raw = Raw::connect(&server);
    raw.send(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw.read_response().unwrap().status, 500);
    raw.send(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw.read_response().unwrap().status, 200);
}

#[test]
fn slow_bodies_are_cut_at_body_timeout() {
    let server = start(ServerLimits {
        body_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    });
    let mut raw = Raw::connect(&server);
    let t = Instant::now();
    raw.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part");
    let r = raw.read_response().unwrap();
    assert_eq!(r.status, 408);
    assert!(t.elapsed() >= Duration::from_millis(500) && t.elapsed() < Duration::from_secs(3));
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = start(ServerLimits {
        idle_keepalive: Duration::from_millis(300),
        ..ServerLimits::default()
    });
    let mut raw = Raw::connect(&server);
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw.read_response().unwrap().status, 200);
    let t = Instant::now();
    assert!(raw.closed());
    assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(3));
}

#[test]
fn http10_closes_unless_keep_alive_and_head_has_no_body() {
    let server = start(ServerLimits::default());
    let mut raw = Raw::connect(&server);
    raw.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = raw.read_response().unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(raw.closed());

    let mut raw = Raw::connect(&server);
    raw.send(b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut rest = Vec::new();
    raw.reader.read_to_end(&mut rest).unwrap();
    let text = String::from_utf8(rest).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("Content-Length: "));
    assert!(
        text.ends_with("\r\n\r\n"),
        "HEAD must not carry a body: {text:?}"
    );
}

#[test]
fn shutdown_closes_idle_connections_and_returns_promptly() {
    let server = start(ServerLimits::default());
    let addr = server.local_addr();
    let mut raw = Raw::connect(&server);
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw.read_response().unwrap().status, 200);
    let _half_open = TcpStream::connect(addr).unwrap();
    thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    server.shutdown();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(raw.closed());
    assert!(request(
        "GET",
        &format!("http://{addr}/"),
        &[],
        b"",
        Duration::from_secs(1)
    )
    .is_err());
}

#[test]
fn concurrent_clients_are_all_served() {
    let server = Arc::new(start(ServerLimits::default()));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let target = url(&server, &format!("/c/{i}"));
            thread::spawn(move || {
                for _ in 0..10 {
                    let r = request("GET", &target, &[], b"", Duration::from_secs(5)).unwrap();
                    assert_eq!(r.status, 200);
                    assert!(r.header("x-amzn-requestid").is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let _ = uuid_v4();
}
