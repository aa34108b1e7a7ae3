//! A minimal blocking HTTP/1.1 client (plain `http://`, one connection per request) for
//! `flowgatectl` and tests. The whole exchange, connect included, is bounded by one timeout
//! and the response by [`MAX_RESPONSE_BYTES`]; every error names the URL it concerns.

use super::conn::{
    find_header, framing, head_lines, parse_header_lines, Framing, FramingError, InputBuffer,
    ReadError,
};
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response head or body accepted.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    /// In arrival order; names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("cannot resolve the host of {url}: {source}")]
    Resolve { url: String, source: io::Error },
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: io::Error },
    #[error("no response from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("connection to {url} failed: {source}")]
    Io { url: String, source: io::Error },
    #[error("{url} closed the connection before the response was complete")]
    ConnectionClosed { url: String },
    #[error("malformed response from {url}: {reason}")]
    MalformedResponse { url: String, reason: &'static str },
    #[error("response from {url} exceeds {limit} bytes")]
    ResponseTooLarge { url: String, limit: usize },
}

/// The parts of an `http://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// `host[:port]` exactly as written, which is what goes into the `Host` header (and so
    /// what a SigV4 signature must cover).
    pub authority: String,
    /// Path as written, `/` when absent.
    pub path: String,
    /// Query without `?`, empty when absent.
    pub query: String,
}

impl Url {
    /// Parses an `http://` URL. No userinfo, no fragment, no TLS.
    pub fn parse(url: &str) -> Result<Url, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let scheme_end = url
            .find("://")
            .ok_or_else(|| invalid("missing http:// scheme"))?;
        if !url[..scheme_end].eq_ignore_ascii_case("http") {
            return Err(invalid("only plain http:// is supported"));
        }
        let rest = &url[scheme_end + 3..];
        let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '[' in host"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("garbage after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().map_err(|_| invalid("invalid port"))?,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("invalid host"));
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path.chars().any(|c| c.is_whitespace() || c.is_control())
            || query.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "spaces or control characters must be percent-encoded",
            ));
        }
        Ok(Url {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_owned()
            },
            query: query.to_owned(),
        })
    }
}

/// Sends one request and reads the whole response. Adds `Host` (unless given),
/// `Content-Length` and `Connection: close`; skips interim `1xx` responses.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    let parsed = Url::parse(url)?;
    let deadline = Instant::now() + timeout;
    let owned_url = || url.to_owned();
    let timed_out = || ClientError::Timeout {
        url: url.to_owned(),
        timeout,
    };
    let addrs: Vec<_> = (parsed.host.as_str(), parsed.port)
        .to_socket_addrs()
        .map_err(|source| ClientError::Resolve {
            url: owned_url(),
            source,
        })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    let mut stream = None;
    for addr in addrs {
        let remaining = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)?;
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let mut stream = stream.ok_or_else(|| match last_error.kind() {
        io::ErrorKind::TimedOut => timed_out(),
        _ => ClientError::Connect {
            url: owned_url(),
            source: last_error,
        },
    })?;
    let _ = stream.set_nodelay(true);

    let mut message = format!("{method} {}", parsed.path);
    if !parsed.query.is_empty() {
        message.push('?');
        message.push_str(&parsed.query);
    }
    message.push_str(" HTTP/1.1\r\n");
    if find_header(headers, "host").is_none() {
        message.push_str(&format!("Host: {}\r\n", parsed.authority));
    }
    for (name, value) in headers {
        let framing_header = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        if !framing_header {
            message.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    message.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut wire = message.into_bytes();
    wire.extend_from_slice(body);
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timed_out(),
        _ => ClientError::Io {
            url: owned_url(),
            source,
        },
    };
    let remaining = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(timed_out)?;
    stream
        .set_write_timeout(Some(remaining))
        .map_err(io_error)?;
    // A server may answer early (413, 503) and stop reading; its response is then worth
    // more than the write error, so try to read it before giving up.
    let write_result = stream.write_all(&wire);

    let read_error = |e: ReadError| match e {
        ReadError::Timeout => timed_out(),
        ReadError::Closed => ClientError::ConnectionClosed { url: owned_url() },
        ReadError::TooLarge => ClientError::ResponseTooLarge {
            url: owned_url(),
            limit: MAX_RESPONSE_BYTES,
        },
        ReadError::Malformed(reason) => ClientError::MalformedResponse {
            url: owned_url(),
            reason,
        },
        ReadError::Io(source) => io_error(source),
    };
    let malformed = |reason| ClientError::MalformedResponse {
        url: owned_url(),
        reason,
    };
    let mut input = InputBuffer::default();
    loop {
        let head_len = match input.read_head(&mut stream, deadline, MAX_RESPONSE_HEAD) {
            Ok(len) => len,
            Err(e) => {
                return Err(match write_result {
                    Err(write_error) => io_error(write_error),
                    Ok(()) => read_error(e),
                })
            }
        };
        let (status, headers) =
            parse_response_head(input.bytes().get(..head_len).unwrap_or_default())
                .map_err(malformed)?;
        input.consume(head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let bodiless = method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304;
        let body = if bodiless {
            Vec::new()
        } else {
            match framing(&headers, Framing::UntilClose) {
                Ok(Framing::Length(len)) if len > MAX_RESPONSE_BYTES => {
                    return Err(read_error(ReadError::TooLarge))
                }
                Ok(Framing::Length(len)) => input
                    .read_body(&mut stream, len, deadline)
                    .map_err(read_error)?,
                Ok(Framing::Chunked) => input
                    .read_chunked(&mut stream, MAX_RESPONSE_BYTES, MAX_RESPONSE_HEAD, deadline)
                    .map_err(read_error)?,
                Ok(Framing::UntilClose) => loop {
                    match input.fill(&mut stream, deadline) {
                        Ok(()) if input.bytes().len() > MAX_RESPONSE_BYTES => {
                            return Err(read_error(ReadError::TooLarge))
                        }
                        Ok(()) => {}
                        Err(ReadError::Closed) => break input.take_all(),
                        Err(e) => return Err(read_error(e)),
                    }
                },
                Err(FramingError::Malformed(reason)) => return Err(malformed(reason)),
                Err(FramingError::UnsupportedTransferEncoding) => {
                    return Err(malformed("unsupported Transfer-Encoding"))
                }
            }
        };
        return Ok(ClientResponse {
            status,
            headers,
            body,
        });
    }
}

/// Status code and headers of a response head.
type ResponseHead = (u16, Vec<(String, String)>);

fn parse_response_head(head: &[u8]) -> Result<ResponseHead, &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "response head is not valid UTF-8")?;
    let mut lines = head_lines(head);
    let status_line = lines.next().ok_or("empty response head")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err("not an HTTP/1.x status line");
    }
    let code = parts.next().unwrap_or_default();
    let status = (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| code.parse::<u16>().ok())
        .flatten()
        .ok_or("invalid status code")?;
    Ok((status, parse_header_lines(lines)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://127.0.0.1:8080/v1/ops?limit=5").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.authority.as_str(),
                u.path.as_str(),
                u.query.as_str()
            ),
            ("127.0.0.1", 8080, "127.0.0.1:8080", "/v1/ops", "limit=5")
        );
        let u = Url::parse("HTTP://[::1]:9/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 9, "[::1]:9")
        );
        let u = Url::parse("http://localhost?x").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.query.as_str()), (80, "/", "x"));
    }

    #[test]
    fn refuses_bad_urls_naming_them() {
        for bad in [
            "https://h/",
            "h:1/",
            "http:///x",
            "http://u:p@h/",
            "http://h:99999/",
            "http://[::1/",
            "http://h/a b",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert!(matches!(err, ClientError::InvalidUrl { .. }), "{bad}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn response_head_parsing() {
        let (status, headers) =
            parse_response_head(b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\n\r\n").unwrap();
        assert_eq!(status, 404);
        assert_eq!(headers, [("x-a".to_string(), "1".to_string())]);
        assert!(parse_response_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"SPDY/3 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn connection_refused_names_the_url() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/healthz");
        let err = request("GET", &url, &[], b"", Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
    }
}
