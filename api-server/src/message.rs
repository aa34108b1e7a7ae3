//! The request and response the API handlers see: a whole request (body collected under the
//! listener's limit) and a whole response. The transport ([`super::Server`]) converts them
//! from and to hyper's types, so handlers stay plain synchronous functions.

use std::net::SocketAddr;

/// A request with its whole body.
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

/// A response. The transport owns framing (`Content-Length`, `Date`, `Connection`) and adds
/// `x-amzn-RequestId` unless the handler set one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The request passed authentication (a valid signature, or `auth = "none"`): its
    /// connection is no longer held to the deadlines of unauthenticated clients.
    pub authenticated: bool,
}

impl Response {
    /// An empty response.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            authenticated: false,
        }
    }

    /// `body` as `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            ..Response::new(status)
        }
    }

    /// `value` serialized as `application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::bytes(status, "application/json", value.to_string().into_bytes())
    }

    /// `text` as `text/plain; charset=utf-8`.
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        Response::bytes(
            status,
            "text/plain; charset=utf-8",
            text.into().into_bytes(),
        )
    }

    /// Sets header `name`, replacing any value it had (names compare case-insensitively).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Marks the response as answering an authenticated request.
    pub fn authenticated(mut self) -> Response {
        self.authenticated = true;
        self
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A request the transport refused or could not complete; the application renders it in
/// the request's protocol (see [`super::Handler::on_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Body above the listener's `max_body_bytes`.
    BodyTooLarge,
    /// Body not received within the deadline.
    BodyTimeout,
    /// The client's address already holds its share of connections, or the listener is full.
    TooManyConnections,
    /// The handler panicked.
    HandlerPanicked,
    /// The handler did not finish within the request deadline.
    HandlerTimeout,
}

impl LimitKind {
    /// The HTTP status this condition calls for.
    pub fn status(self) -> u16 {
        match self {
            LimitKind::BodyTooLarge => 413,
            LimitKind::BodyTimeout => 408,
            LimitKind::TooManyConnections => 503,
            LimitKind::HandlerPanicked => 500,
            LimitKind::HandlerTimeout => 503,
        }
    }

    /// A message fit to show the client.
    pub fn message(self) -> &'static str {
        match self {
            LimitKind::BodyTooLarge => "request body too large",
            LimitKind::BodyTimeout => "timed out receiving the request body",
            LimitKind::TooManyConnections => "too many connections, retry later",
            LimitKind::HandlerPanicked => "internal error",
            LimitKind::HandlerTimeout => "the request took too long, retry later",
        }
    }
}

/// The application behind a listener. Called concurrently from the runtime's blocking pool.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Request) -> Response;

    /// Answers a request the transport refused (see [`LimitKind`]); `path` is the request's
    /// path so the answer can be in its protocol. The default is plain text.
    fn on_limit(&self, kind: LimitKind, path: &str) -> Response {
        let _ = path;
        Response::text(kind.status(), kind.message())
    }
}
