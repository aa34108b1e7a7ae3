//! The management API's HTTP transport: hyper 1 (HTTP/1.1) over rustls on a small tokio
//! runtime whose threads are pinned to the management core(s) ([`runtime`]).
//!
//! It faces untrusted clients. Each connection is a task, not a thread, and holds a
//! [`admission::Ticket`]: a per-address cap and a listener cap where the oldest
//! *unauthenticated* connection is evicted to make room. A connection that has not sent an
//! authenticated request within `unauthenticated_timeout` is closed, the TLS handshake and
//! every request head have `header_timeout` (slowloris), an idle keep-alive connection is
//! closed after `idle_timeout`. Requests pass tower layers for the request deadline and the
//! number of handlers running at once; bodies are collected under `max_body_bytes` (a
//! larger one is read to its end and dropped, within bounds, so its 413 reaches the client).
//! Handlers are synchronous and run on the runtime's blocking pool; a panic is answered 500.
//!
//! Once the kill switch is set (fault injection: the management side died) nothing more is
//! answered and the listener is closed.

mod admission;
mod message;
pub mod runtime;
pub mod tls;

pub use admission::{Admission, Refusal, Ticket};
pub use message::{Handler, LimitKind, Request, Response};

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{watch, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{ServiceBuilder, ServiceExt};

/// Limits and deadlines of one listener.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Connections held at once; when full, the oldest unauthenticated one is evicted.
    pub max_connections: usize,
    /// Connections one client address may hold.
    pub max_connections_per_ip: usize,
    /// Decoded request body.
    pub max_body_bytes: usize,
    /// TLS handshake, and each request head from its first byte.
    pub header_timeout: Duration,
    /// A connection without an authenticated request is closed this long after accept.
    pub unauthenticated_timeout: Duration,
    /// A keep-alive connection idle this long is closed.
    pub idle_timeout: Duration,
    /// Receiving a request body.
    pub body_timeout: Duration,
    /// Receiving a body and running its handler.
    pub request_timeout: Duration,
    /// Handlers running at once (more wait their turn).
    pub max_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 4096,
            max_connections_per_ip: 64,
            max_body_bytes: 1 << 20,
            header_timeout: Duration::from_secs(10),
            unauthenticated_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            max_in_flight: 32,
        }
    }
}

/// Headers received per request at most (hyper's buffer bounds their total size).
const MAX_HEADERS: usize = 100;
/// hyper's read buffer, which bounds a request head.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A running listener; [`Server::shutdown`] (or dropping it) stops it.
pub struct Server {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    shared: Arc<Shared>,
    runtime: Handle,
}

struct Shared {
    config: ServerConfig,
    handler: Arc<dyn Handler>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    killed: Arc<AtomicBool>,
    admission: Arc<Admission>,
    in_flight: Arc<Semaphore>,
    /// Connection tasks alive, so shutdown can wait for them.
    tasks: AtomicUsize,
    /// Refused connections being answered (bounded: beyond it they are just closed).
    refusing: AtomicUsize,
}

/// Refused connections answered at once; more are closed without a word.
const MAX_REFUSING: usize = 256;

impl Server {
    /// Binds `addr` on `runtime` and starts accepting; `tls` `None` serves plain HTTP.
    /// Once `killed` is set the listener behaves as if the application had crashed.
    pub fn bind(
        runtime: &Handle,
        addr: &str,
        config: ServerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Arc<dyn Handler>,
        killed: Arc<AtomicBool>,
    ) -> io::Result<Server> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let shared = Arc::new(Shared {
            admission: Admission::new(config.max_connections, config.max_connections_per_ip),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            handler,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            killed,
            tasks: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        runtime.spawn(accept_loop(listener, Arc::clone(&shared), stop_rx));
        Ok(Server {
            local_addr,
            stop,
            shared,
            runtime: runtime.clone(),
        })
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections held right now.
    pub fn connections(&self) -> usize {
        self.shared.admission.connections()
    }

    /// Connections held now that have not yet sent an authenticated request.
    pub fn anonymous_connections(&self) -> usize {
        self.shared.admission.anonymous_connections()
    }

    /// Stops accepting, closes every connection and waits (briefly) for their tasks.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        // Called from outside the runtime (main thread, tests): poll the task count.
        if Handle::try_current().is_err() {
            while self.shared.tasks.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = &self.runtime;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    shared.tasks.fetch_add(1, Ordering::AcqRel);
    let mut killed_check = tokio::time::interval(Duration::from_millis(50));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            _ = killed_check.tick() => {
                if shared.killed.load(Ordering::Acquire) { break; }
                continue;
            }
            a = listener.accept() => a,
        };
        if shared.killed.load(Ordering::Acquire) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // Out of descriptors and the like: back off a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared2 = Arc::clone(&shared);
        let stop2 = stop.clone();
        match shared.admission.admit(peer.ip()) {
            Ok(ticket) => {
                shared.tasks.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(async move {
                    serve_connection(&shared2, stream, peer, ticket, stop2).await;
                    shared2.tasks.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Err(_) if shared.refusing.load(Ordering::Acquire) < MAX_REFUSING => {
                shared.refusing.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(async move {
                    refuse_connection(&shared2, stream, peer).await;
                    shared2.refusing.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Err(_) => drop(stream),
        }
    }
    // Dropping the listener here closes it: later connections are refused by the kernel.
    drop(listener);
    shared.tasks.fetch_sub(1, Ordering::AcqRel);
}

/// What the service shares with its connection's supervisor.
#[derive(Default)]
struct ConnState {
    authenticated: AtomicBool,
    in_flight: AtomicUsize,
    last_activity: Mutex<Option<Instant>>,
}

impl ConnState {
    fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn idle_since(&self) -> Option<Instant> {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn serve_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    stop: watch::Receiver<bool>,
) {
    match &shared.tls {
        None => serve_http(shared, stream, peer, ticket, stop).await,
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(shared.config.header_timeout, acceptor.accept(stream));
            let evicted = ticket.evicted();
            let tls = tokio::select! {
                r = handshake => r,
                _ = evicted => return,
            };
            if let Ok(Ok(tls)) = tls {
                serve_http(shared, tls, peer, ticket, stop).await
            }
        }
    }
}

async fn serve_http<I>(
    shared: &Arc<Shared>,
    io: I,
    peer: SocketAddr,
    ticket: Ticket,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let accepted = Instant::now();
    let state = Arc::new(ConnState::default());
    state.touch();
    // Tower layers: the request deadline around a slot among the handlers running at once.
    let stack = {
        let shared = Arc::clone(shared);
        let state = Arc::clone(&state);
        ServiceBuilder::new()
            .timeout(shared.config.request_timeout)
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(Arc::clone(
                &shared.in_flight,
            )))
            .service_fn(move |req| answer(Arc::clone(&shared), peer, Arc::clone(&state), req))
    };
    let handler = Arc::clone(&shared.handler);
    let service = hyper::service::service_fn(move |req| {
        let call = stack.clone().oneshot(req);
        let handler = Arc::clone(&handler);
        async move {
            match call.await {
                // Past the deadline the caller gets 503 (the handler, on the blocking pool,
                // finishes on its own). Other errors close the connection unanswered.
                Err(e) if e.is::<tower::timeout::error::Elapsed>() => {
                    Ok(limit_response(&*handler, LimitKind::HandlerTimeout, ""))
                }
                Err(e) => Err(Closed(e)),
                Ok(r) => Ok(r),
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed() => return,
            _ = ticket.evicted(), if !closing => {
                if state.in_flight.load(Ordering::Acquire) == 0 { return; }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tick.tick() => {
                if state.authenticated.load(Ordering::Acquire) {
                    ticket.authenticated();
                }
                // Dead management side: stop reading requests, but let hyper finish writing
                // an answer already produced (kill_mgmt's own) before the connection closes.
                if shared.killed.load(Ordering::Acquire) && !closing {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                let busy = state.in_flight.load(Ordering::Acquire) > 0;
                let anonymous_expired = !state.authenticated.load(Ordering::Acquire)
                    && accepted.elapsed() >= shared.config.unauthenticated_timeout;
                let idle_expired = state
                    .idle_since()
                    .is_some_and(|t| t.elapsed() >= shared.config.idle_timeout);
                if (anonymous_expired || idle_expired) && !busy {
                    return;
                }
                if anonymous_expired && !closing {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// An error out of the service stack: hyper closes the connection. (A concrete type: a
/// bare boxed error here trips a higher-ranked lifetime limitation of the compiler.)
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Closed(tower::BoxError);

/// Why a request gets no answer: the connection is closed instead.
#[derive(Debug, thiserror::Error)]
enum Unanswered {
    /// The kill switch is set (the management side is dead).
    #[error("the management side is dead")]
    Killed,
    /// The client went away or broke the body's framing.
    #[error("reading the request body: {0}")]
    Body(#[from] hyper::Error),
}

async fn answer(
    shared: Arc<Shared>,
    peer: SocketAddr,
    state: Arc<ConnState>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Unanswered> {
    if shared.killed.load(Ordering::Acquire) {
        return Err(Unanswered::Killed);
    }
    state.in_flight.fetch_add(1, Ordering::AcqRel);
    let result = answer_inner(&shared, peer, &state, req).await;
    state.in_flight.fetch_sub(1, Ordering::AcqRel);
    state.touch();
    result
}

async fn answer_inner(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    state: &ConnState,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Unanswered> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let handler = &*shared.handler;
    let max = shared.config.max_body_bytes;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let expects_continue = parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let drain_max = max.saturating_mul(4).min(MAX_DRAIN_BYTES);
    // A body declared too large is refused before it is read: a client waiting for
    // `100 Continue` sends nothing, and one far too large is not worth reading.
    if declared.is_some_and(|n| n > max as u64 && (expects_continue || n > drain_max as u64)) {
        return Ok(closing(limit_response(
            handler,
            LimitKind::BodyTooLarge,
            &path,
        )));
    }
    let body =
        match tokio::time::timeout(shared.config.body_timeout, read_body(body, max, drain_max))
            .await
        {
            Ok(Ok(body)) => body,
            // Read to its end and dropped: the connection stays usable.
            Ok(Err(BodyError::TooLarge { drained: true })) => {
                return Ok(limit_response(handler, LimitKind::BodyTooLarge, &path))
            }
            Ok(Err(BodyError::TooLarge { drained: false })) => {
                return Ok(closing(limit_response(
                    handler,
                    LimitKind::BodyTooLarge,
                    &path,
                )))
            }
            Err(_) => {
                return Ok(closing(limit_response(
                    handler,
                    LimitKind::BodyTimeout,
                    &path,
                )))
            }
            // The client went away or sent broken framing: nothing to answer.
            Ok(Err(BodyError::Transport(e))) => return Err(Unanswered::Body(e)),
        };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
                )
            })
            .collect(),
        body,
        peer,
    };
    let app = Arc::clone(&shared.handler);
    let run = tokio::task::spawn_blocking(move || {
        let response = app.handle(&request);
        (response, request.path)
    });
    let response = match run.await {
        Ok((response, _)) => response,
        Err(_) => handler.on_limit(LimitKind::HandlerPanicked, ""),
    };
    // A request whose handler was already running when the application died (kill_mgmt's
    // own, above all) is still answered; [`answer`] refuses every later one.
    if response.authenticated {
        state.authenticated.store(true, Ordering::Release);
    }
    Ok(to_hyper(response))
}

/// Bodies above the limit are still read (and dropped) up to this size, so that the
/// refusal reaches a client that sent its body without waiting (closing with unread data
/// would reset the connection under the response).
const MAX_DRAIN_BYTES: usize = 16 << 20;

enum BodyError {
    TooLarge { drained: bool },
    Transport(hyper::Error),
}

/// The whole body if it is at most `max` bytes; a larger one is read on to its end (when
/// at most `drain_max`) and dropped.
async fn read_body(mut body: Incoming, max: usize, drain_max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Transport)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            out.extend_from_slice(&data);
        } else if seen > drain_max {
            return Err(BodyError::TooLarge { drained: false });
        }
    }
    if seen > max {
        return Err(BodyError::TooLarge { drained: true });
    }
    Ok(out)
}

fn limit_response(
    handler: &dyn Handler,
    kind: LimitKind,
    path: &str,
) -> hyper::Response<Full<Bytes>> {
    to_hyper(handler.on_limit(kind, path))
}

/// Asks hyper to close the connection after this response (its body was not read).
fn closing(mut resp: hyper::Response<Full<Bytes>>) -> hyper::Response<Full<Bytes>> {
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

/// Converts a handler's response. Framing headers are hyper's; headers whose name or value
/// is not valid HTTP are dropped rather than sent.
fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(response.body)));
    *out.status_mut() = http::StatusCode::from_u16(response.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (name, value) in &response.headers {
        let framing = ["content-length", "transfer-encoding", "connection", "date"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        if framing {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    if !headers.contains_key("x-amzn-requestid") {
        if let Ok(v) = http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            headers.insert("x-amzn-requestid", v);
        }
    }
    out
}

/// A connection over its address's or the listener's cap: one request is read (briefly) so
/// the refusal is in its protocol, then the connection is closed.
async fn refuse_connection(shared: &Arc<Shared>, stream: TcpStream, _peer: SocketAddr) {
    let deadline = Duration::from_secs(2).min(shared.config.header_timeout);
    let handler = Arc::clone(&shared.handler);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let resp = closing(limit_response(
            &*handler,
            LimitKind::TooManyConnections,
            req.uri().path(),
        ));
        async move { Ok::<_, Infallible>(resp) }
    });
    let serve = async {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(deadline)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(false);
        match &shared.tls {
            None => {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
            Some(acceptor) => {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(deadline * 2, serve).await;
}
