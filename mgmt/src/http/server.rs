//! A small HTTP/1.1 server on `std::net` for the management API, built to face untrusted
//! clients: a hard cap on connections (excess ones get 503 at once, nothing queues), bounded
//! heads and bodies, deadlines enforced with socket timeouts (a slowloris client is cut at
//! `header_timeout` however it trickles), keep-alive with an idle limit, refusal of
//! ambiguous framing, and a handler panic answered with 500 while the server keeps serving.
//!
//! One thread per connection, at most `max_connections` of them, plus one accept thread.
//!
//! [`Server::bind_with_kill_switch`] ties the server to its application's life: once the
//! switch is set (fault injection: the management side died) nothing more is answered,
//! and the accept thread drops the listener on its next wake-up, as a crashed server would.

use super::conn::{
    find_header, framing, has_token, head_lines, is_token, parse_header_lines, Framing,
    FramingError, InputBuffer, ReadError,
};
use super::date::http_date;
use super::uuid_v4;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// Resource limits of the server. All deadlines are totals, not per-read.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Connections served at once; beyond it a connection gets 503 and is closed.
    pub max_connections: usize,
    /// Request line plus headers.
    pub max_header_bytes: usize,
    /// Decoded request body.
    pub max_body_bytes: usize,
    /// Time to receive a whole request head, from connection start (first request) or from
    /// its first byte (later requests).
    pub header_timeout: Duration,
    /// Time to receive a whole request body; also bounds writing a response.
    pub body_timeout: Duration,
    /// Time a keep-alive connection may sit idle between requests.
    pub idle_keepalive: Duration,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_conn: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 64,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_keepalive: Duration::from_secs(30),
            max_requests_per_conn: 1000,
        }
    }
}

/// A parsed request with its whole body.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path as sent (still percent-encoded), without the query.
    pub path: String,
    /// Query as sent, without the `?`; empty when absent.
    pub query: String,
    /// In arrival order; names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response. The server owns framing: it adds `Content-Length`, `Date`, `Connection` and,
/// unless the handler set one, `x-amzn-RequestId`; framing headers set here are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `value` serialized as `application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    /// `body` as `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// `text` as `text/plain; charset=utf-8`.
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: text.into().into_bytes(),
        }
    }

    /// Sets header `name`, replacing any value it had (names compare case-insensitively).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A request the server refused or could not complete; the application renders it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Unparseable request line or headers, or ambiguous framing; says why.
    BadRequest(&'static str),
    /// Request head above `max_header_bytes`.
    HeadersTooLarge,
    /// Body above `max_body_bytes`.
    BodyTooLarge,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
    /// Head not received within `header_timeout`.
    HeaderTimeout,
    /// Body not received within `body_timeout`.
    BodyTimeout,
    /// `max_connections` already being served.
    TooManyConnections,
    /// The handler panicked.
    HandlerPanicked,
}

impl LimitKind {
    /// The HTTP status this condition calls for.
    pub fn status(self) -> u16 {
        match self {
            LimitKind::BadRequest(_) => 400,
            LimitKind::HeadersTooLarge => 431,
            LimitKind::BodyTooLarge => 413,
            LimitKind::UnsupportedTransferEncoding => 501,
            LimitKind::HeaderTimeout | LimitKind::BodyTimeout => 408,
            LimitKind::TooManyConnections => 503,
            LimitKind::HandlerPanicked => 500,
        }
    }

    /// A message fit to show the client.
    pub fn message(self) -> &'static str {
        match self {
            LimitKind::BadRequest(why) => why,
            LimitKind::HeadersTooLarge => "request headers too large",
            LimitKind::BodyTooLarge => "request body too large",
            LimitKind::UnsupportedTransferEncoding => {
                "only the chunked transfer coding is supported"
            }
            LimitKind::HeaderTimeout => "timed out receiving the request headers",
            LimitKind::BodyTimeout => "timed out receiving the request body",
            LimitKind::TooManyConnections => "too many connections, retry later",
            LimitKind::HandlerPanicked => "internal error",
        }
    }
}

/// The application behind the server. Called concurrently from connection threads.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Request) -> Response;

    /// Answers a request the server refused (see [`LimitKind`]); the connection is closed
    /// after it. The default is a plain-text body with [`LimitKind::status`].
    fn on_limit(&self, kind: LimitKind, peer: SocketAddr) -> Response {
        let _ = peer;
        Response::text(kind.status(), kind.message())
    }
}

/// After the last response on a connection, how long to keep reading (and discarding) what
/// the client still sends, so that closing does not reset the connection before the client
/// has read the response (RFC 9112 §9.6 "lingering close").
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 1 << 20;

/// A running server; [`Server::shutdown`] (or dropping it) stops it.
pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    limits: ServerLimits,
    handler: Arc<dyn Handler>,
    stopping: AtomicBool,
    /// The application died: answer nothing more (see [`Server::bind_with_kill_switch`]).
    killed: Arc<AtomicBool>,
    active: AtomicUsize,
    /// Live connections, so that shutdown can close their sockets and join their threads.
    connections: Mutex<HashMap<u64, LiveConnection>>,
}

struct LiveConnection {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (e.g. `127.0.0.1:8080`, port 0 for any) and starts accepting.
    pub fn bind(addr: &str, limits: ServerLimits, handler: Arc<dyn Handler>) -> io::Result<Server> {
        Self::bind_with_kill_switch(addr, limits, handler, Arc::new(AtomicBool::new(false)))
    }

    /// [`Server::bind`], and once `killed` is set the server behaves as if its threads had
    /// died: requests not yet answered get no answer (the connection is closed), the
    /// response being written is the last one on its connection, and the accept thread
    /// returns on its next wake-up, closing the listener so later connections are refused.
    /// [`Server::shutdown`] still stops it promptly.
    pub fn bind_with_kill_switch(
        addr: &str,
        limits: ServerLimits,
        handler: Arc<dyn Handler>,
        killed: Arc<AtomicBool>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            limits,
            handler,
            stopping: AtomicBool::new(false),
            killed,
            active: AtomicUsize::new(0),
            connections: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name("mgmt-http-accept".into())
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        Ok(Server {
            local_addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served right now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Stops accepting, closes every connection and joins all threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        // `accept` has no timeout: wake it with a connection of our own.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = accept_thread.join();
        }
        // Otherwise the accept thread stays detached and exits on its next connection.
        let live: Vec<LiveConnection> = lock(&self.shared.connections)
            .drain()
            .map(|(_, c)| c)
            .collect();
        for conn in &live {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        for conn in live {
            if let Some(thread) = conn.thread {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread cannot leave the map inconsistent: every mutation is a
    // single insert/remove.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_id: u64 = 0;
    loop {
        let accepted = listener.accept();
        // Killed: returning drops the listener (and the connection just accepted, unanswered).
        if shared.stopping.load(Ordering::Acquire) || shared.is_killed() {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(_) => {
                // Typically EMFILE/ENFILE or a connection reset before accept: back off a
                // little instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.active.load(Ordering::Acquire) >= shared.limits.max_connections {
            reject_over_capacity(shared, stream, peer);
            continue;
        }
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        next_id = next_id.wrapping_add(1);
        let id = next_id;
        shared.active.fetch_add(1, Ordering::AcqRel);
        lock(&shared.connections).insert(
            id,
            LiveConnection {
                stream: registered,
                thread: None,
            },
        );
        let conn_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("mgmt-http-conn".into())
            .spawn(move || {
                let _guard = ActiveGuard {
                    shared: &conn_shared,
                    id,
                };
                Connection::new(&conn_shared, stream, peer).run();
            });
        match spawned {
            Ok(handle) => {
                // The thread may already have finished and unregistered itself; then the
                // handle is simply dropped (detached).
                if let Some(conn) = lock(&shared.connections).get_mut(&id) {
                    conn.thread = Some(handle);
                }
            }
            Err(_) => {
                lock(&shared.connections).remove(&id);
                shared.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Releases a connection's slot however its thread ends (including by panic).
struct ActiveGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.connections).remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers 503 on the accept thread without blocking it: drain what already arrived (so
/// closing does not send a reset that destroys the 503 in flight), write, close.
fn reject_over_capacity(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    let response = shared.limit_response(LimitKind::TooManyConnections, peer);
    let bytes = encode_response(&response, false, false);
    let mut scratch = [0u8; 4096];
    if stream.set_nonblocking(true).is_ok() {
        for _ in 0..16 {
            if !matches!(stream.read(&mut scratch), Ok(n) if n > 0) {
                break;
            }
        }
    }
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&bytes);
    let _ = stream.shutdown(Shutdown::Write);
}

impl Shared {
    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn dispatch(&self, req: &Request) -> Response {
        catch_unwind(AssertUnwindSafe(|| self.handler.handle(req)))
            .unwrap_or_else(|_| self.limit_response(LimitKind::HandlerPanicked, req.peer))
    }

    fn limit_response(&self, kind: LimitKind, peer: SocketAddr) -> Response {
        catch_unwind(AssertUnwindSafe(|| self.handler.on_limit(kind, peer)))
            .unwrap_or_else(|_| Response::text(kind.status(), kind.message()))
    }
}

/// The parts of a request head the server acts on.
struct RequestHead {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

fn parse_request_head(head: &[u8]) -> Result<RequestHead, &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "request head is not valid UTF-8")?;
    let mut lines = head_lines(head);
    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if !is_token(method) {
        return Err("invalid method");
    }
    if !target.starts_with('/') || target.chars().any(char::is_control) {
        return Err("invalid request target");
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err("unsupported HTTP version"),
    };
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        http10,
        headers: parse_header_lines(lines)?,
    })
}

/// Why serving a connection ended.
enum Outcome {
    /// Close without a word (peer gone, idle, shutting down).
    Close,
    /// Answer with the application's rendering of the limit, then close.
    Refuse(LimitKind),
}

struct Connection<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    peer: SocketAddr,
    input: InputBuffer,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, stream: TcpStream, peer: SocketAddr) -> Self {
        // Responses go out in one write; Nagle would only add delayed-ACK stalls.
        let _ = stream.set_nodelay(true);
        Connection {
            shared,
            stream,
            peer,
            input: InputBuffer::default(),
        }
    }

    fn run(mut self) {
        let timeout = self.shared.limits.body_timeout;
        let _ = self.stream.set_write_timeout(Some(timeout));
        match self.serve_requests() {
            Outcome::Refuse(kind) if !self.shared.is_killed() => {
                let response = self.shared.limit_response(kind, self.peer);
                if self
                    .stream
                    .write_all(&encode_response(&response, false, false))
                    .is_ok()
                {
                    self.linger();
                }
            }
            Outcome::Close | Outcome::Refuse(_) => {}
        }
    }

    fn serve_requests(&mut self) -> Outcome {
        let limits = &self.shared.limits;
        let opened = Instant::now();
        let mut served = 0usize;
        loop {
            if self.shared.stopping.load(Ordering::Acquire) || self.shared.is_killed() {
                return Outcome::Close;
            }
            let head_deadline = if served == 0 {
                opened + limits.header_timeout
            } else {
                if self.input.is_empty() {
                    let idle_deadline = Instant::now() + limits.idle_keepalive;
                    if self.input.fill(&mut self.stream, idle_deadline).is_err() {
                        return Outcome::Close;
                    }
                }
                Instant::now() + limits.header_timeout
            };
            let head_len =
                match self
                    .input
                    .read_head(&mut self.stream, head_deadline, limits.max_header_bytes)
                {
                    Ok(len) => len,
                    Err(ReadError::TooLarge) => return Outcome::Refuse(LimitKind::HeadersTooLarge),
                    // A connection that never sent a byte is closed quietly, like an idle one.
                    Err(ReadError::Timeout) if !self.input.is_empty() => {
                        return Outcome::Refuse(LimitKind::HeaderTimeout)
                    }
                    Err(ReadError::Malformed(why)) => {
                        return Outcome::Refuse(LimitKind::BadRequest(why))
                    }
                    Err(_) => return Outcome::Close,
                };
            let head =
                match parse_request_head(self.input.bytes().get(..head_len).unwrap_or_default()) {
                    Ok(head) => head,
                    Err(why) => return Outcome::Refuse(LimitKind::BadRequest(why)),
                };
            self.input.consume(head_len);
            let body = match self.read_body(&head) {
                Ok(body) => body,
                Err(outcome) => return outcome,
            };
            served += 1;
            let keep_alive = if head.http10 {
                has_token(&head.headers, "connection", "keep-alive")
            } else {
                !has_token(&head.headers, "connection", "close")
            } && served < limits.max_requests_per_conn
                && !self.shared.stopping.load(Ordering::Acquire);
            let head_only = head.method == "HEAD";
            let (path, query) = match head.target.split_once('?') {
                Some((path, query)) => (path.to_owned(), query.to_owned()),
                None => (head.target, String::new()),
            };
            let request = Request {
                method: head.method,
                path,
                query,
                headers: head.headers,
                body,
                peer: self.peer,
            };
            // A request that arrived as the application died is not answered, like one
            // caught in a crash.
            if self.shared.is_killed() {
                return Outcome::Close;
            }
            let response = self.shared.dispatch(&request);
            // The request that killed the application still gets its answer, the last one.
            let keep_alive = keep_alive && !self.shared.is_killed();
            if self
                .stream
                .write_all(&encode_response(&response, head_only, keep_alive))
                .is_err()
            {
                return Outcome::Close;
            }
            if !keep_alive {
                self.linger();
                return Outcome::Close;
            }
        }
    }

    fn read_body(&mut self, head: &RequestHead) -> Result<Vec<u8>, Outcome> {
        let limits = &self.shared.limits;
        let framing = match framing(&head.headers, Framing::Length(0)) {
            Ok(Framing::Chunked) if head.http10 => {
                return Err(Outcome::Refuse(LimitKind::BadRequest(
                    "Transfer-Encoding in an HTTP/1.0 request",
                )))
            }
            Ok(framing) => framing,
            Err(FramingError::Malformed(why)) => {
                return Err(Outcome::Refuse(LimitKind::BadRequest(why)))
            }
            Err(FramingError::UnsupportedTransferEncoding) => {
                return Err(Outcome::Refuse(LimitKind::UnsupportedTransferEncoding))
            }
        };
        if let Framing::Length(len) = framing {
            if len > limits.max_body_bytes {
                return Err(Outcome::Refuse(LimitKind::BodyTooLarge));
            }
            if len == 0 {
                return Ok(Vec::new());
            }
        }
        // The AWS CLI asks before sending larger bodies; it gets the go-ahead only once the
        // declared size has passed the limit check above.
        let body_pending = match framing {
            Framing::Length(len) => self.input.bytes().len() < len,
            _ => true,
        };
        let wants_continue =
            !head.http10 && body_pending && has_token(&head.headers, "expect", "100-continue");
        if wants_continue
            && self
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
        {
            return Err(Outcome::Close);
        }
        let deadline = Instant::now() + limits.body_timeout;
        let result = match framing {
            Framing::Length(len) => self.input.read_body(&mut self.stream, len, deadline),
            _ => self.input.read_chunked(
                &mut self.stream,
                limits.max_body_bytes,
                limits.max_header_bytes,
                deadline,
            ),
        };
        result.map_err(|e| match e {
            ReadError::Timeout => Outcome::Refuse(LimitKind::BodyTimeout),
            ReadError::TooLarge => Outcome::Refuse(LimitKind::BodyTooLarge),
            ReadError::Malformed(why) => Outcome::Refuse(LimitKind::BadRequest(why)),
            ReadError::Closed | ReadError::Io(_) => Outcome::Close,
        })
    }

    /// Half-closes, then discards what the client still sends for a bounded time.
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            match self.input.fill(&mut self.stream, deadline) {
                Ok(()) => discarded += self.input.take_all().len(),
                Err(_) => break,
            }
        }
    }
}

/// Serializes a response. Handler-set framing headers are dropped (the server frames), as
/// are headers whose name or value could break the response apart.
fn encode_response(response: &Response, head_only: bool, keep_alive: bool) -> Vec<u8> {
    use std::fmt::Write as _;
    let status = response.status;
    let mut head = String::with_capacity(256);
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    let mut has_request_id = false;
    for (name, value) in &response.headers {
        let framing_header = ["content-length", "transfer-encoding", "connection", "date"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        if framing_header || !is_token(name) || value.contains(['\r', '\n', '\0']) {
            continue;
        }
        has_request_id |= name.eq_ignore_ascii_case("x-amzn-requestid");
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "Date: {}\r\n", http_date(SystemTime::now()));
    if !has_request_id {
        let _ = write!(head, "x-amzn-RequestId: {}\r\n", uuid_v4());
    }
    // RFC 9110 §8.6: no Content-Length on 1xx and 204.
    let bodiless = status < 200 || status == 204 || status == 304;
    if !bodiless {
        let _ = write!(head, "Content-Length: {}\r\n", response.body.len());
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = head.into_bytes();
    if !head_only && !bodiless {
        out.extend_from_slice(&response.body);
    }
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_head_parses_target_version_and_headers() {
        let head =
            parse_request_head(b"\r\nPOST /v1/x?a=1 HTTP/1.0\r\nHost: h\r\nX-A:  b \r\n\r\n")
                .unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/v1/x?a=1");
        assert!(head.http10);
        assert_eq!(
            head.headers,
            [("host".into(), "h".into()), ("x-a".into(), "b".into())]
        );
    }

    #[test]
    fn request_head_rejects_garbage() {
        for bad in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: 1\r\n\r\n",
        ] {
            assert!(
                parse_request_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn encoded_response_is_framed_by_the_server() {
        let response = Response::text(200, "hi")
            .with_header("Content-Length", "999")
            .with_header("X-Evil", "a\r\nInjected: 1")
            .with_header("x-amzn-RequestId", "fixed-id");
        let wire = String::from_utf8(encode_response(&response, false, true)).unwrap();
        assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(wire.contains("\r\nContent-Length: 2\r\n"));
        assert!(!wire.contains("999"));
        assert!(!wire.contains("Injected"));
        assert!(wire.contains("x-amzn-RequestId: fixed-id\r\n"));
        assert_eq!(wire.matches("x-amzn-RequestId").count(), 1);
        assert!(wire.contains("Connection: keep-alive\r\n\r\nhi"));
        let head_only = String::from_utf8(encode_response(&response, true, false)).unwrap();
        assert!(head_only.ends_with("Connection: close\r\n\r\n"));
        assert!(head_only.contains("Content-Length: 2\r\n"));
    }

    #[test]
    fn with_header_replaces_case_insensitively() {
        let r = Response::json(200, &serde_json::json!({"a": 1}))
            .with_header("content-type", "application/x-amz-json-1.0");
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.header("Content-Type"), Some("application/x-amz-json-1.0"));
        assert_eq!(r.body, br#"{"a":1}"#);
    }

    struct Ok200;

    impl Handler for Ok200 {
        fn handle(&self, _: &Request) -> Response {
            Response::text(200, "ok")
        }
    }

    /// What a client gets for `GET /`: the whole reply, empty when none came.
    fn get(addr: SocketAddr) -> io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn killed_server_answers_nothing_and_closes_its_listener() {
        let killed = Arc::new(AtomicBool::new(false));
        let server = Server::bind_with_kill_switch(
            "127.0.0.1:0",
            ServerLimits {
                idle_keepalive: Duration::from_millis(200),
                ..ServerLimits::default()
            },
            Arc::new(Ok200),
            Arc::clone(&killed),
        )
        .unwrap();
        let addr = server.local_addr();
        assert!(get(addr).unwrap().starts_with("HTTP/1.1 200"));
        killed.store(true, Ordering::Release);
        // The connection that wakes the accept thread is closed unanswered...
        let reply = get(addr).unwrap_or_default();
        assert!(reply.is_empty(), "answered after the kill: {reply}");
        // ...and the listener went with it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "listener still open");
            thread::sleep(Duration::from_millis(10));
        }
        server.shutdown();
    }

    proptest! {
        #[test]
        fn request_head_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_request_head(&bytes);
        }
    }
}
